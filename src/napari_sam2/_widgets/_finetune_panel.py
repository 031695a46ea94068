"""Fine-tune section: train the loaded model on the labels of the open images, in a worker, with
progress, the loss and the validation score drawn as they come; Stop keeps the state and the next
run resumes it; the result is saved beside the data (with its metadata) and loaded into the dock.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import QObject, QPointF, Qt, Signal
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import (
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..checkpoints.loading import load_model
from ..training import TrainConfig, Trainer
from . import _notify
from ._choice_box import choice_box
from ._finetune_data import LayerData
from ._finetune_sources import TrainingDataTable, labelled_images
from ._jobs import JobControl, JobPanel
from ._session import Session, UserProblem
from ._settings import config_dir

TRAINABLE = (
    ("Mask decoder (fast)", "decoder"),
    ("Decoder and memory", "decoder+memory"),
    ("Everything (slow on a CPU)", "all"),
)
RUN_FOLDER = "sam2-finetuned"


def run_folder(image: Image | None) -> Path:
    """Beside the image's file when it has one, else in the user's napari-sam2 folder."""
    path = getattr(getattr(image, "source", None), "path", None)
    name = image.name if image is not None else "images"
    if path:
        return Path(path).expanduser().resolve().parent / RUN_FOLDER / Path(str(path)).stem
    return config_dir() / RUN_FOLDER / "".join(c if c.isalnum() else "_" for c in name)


def finetune_job(
    control: JobControl,
    model: Any,
    data: LayerData,
    folder: Path,
    config: TrainConfig,
    base: str,
    report: Callable[[int, float, float | None], None],
) -> tuple[Any, Path, dict]:
    """Worker: train a copy of `model` (the dock keeps using the original meanwhile); returns the
    best model loaded from its checkpoint, the checkpoint and its metadata."""
    train, validation = data.split()
    tuned = copy.deepcopy(model).float()
    trainer = Trainer(tuned, train, folder, config, validation=validation, base_model=base)
    control.report(trainer.step, config.steps)
    scores: dict[int, float] = {}

    def progress(step: int, steps: int, stats: dict) -> None:
        control.report(step, steps)
        best = trainer.best if trainer.best_step == step else None
        if best is not None:
            scores[step] = best
        report(step, float(stats.get("loss", float("nan"))), best)

    metadata = trainer.run(progress=progress, should_stop=lambda: control.stop_requested)
    best = folder / "best.pt"
    return load_model(best, device=str(model.device)), best, metadata


def _import_dynamo() -> None:
    """The optimiser's first step imports torch._dynamo, which imports triton when it is
    installed. Triton bundles its own LLVM, and loading it into a process whose OpenGL (napari's
    canvas on a software renderer) already loaded another LLVM crashes it. Without CUDA, triton
    has nothing to do: torch is told it is absent, and dynamo is imported here, on the GUI
    thread, before the worker starts."""
    import sys

    import torch
    import torch.utils._triton as torch_triton

    if "triton" not in sys.modules and not torch.cuda.is_available():
        torch_triton.has_triton_package = lambda: False
    import torch._dynamo  # noqa: F401


class _Relay(QObject):
    step = Signal(int, float, object)  # step, loss, validation score or None


class LossPlot(QWidget):
    """The training loss (grey) and the validation score (green dots, 0-1) by step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.losses: list[tuple[int, float]] = []
        self.scores: list[tuple[int, float]] = []
        self.steps = 1
        self.setMinimumHeight(90)
        self.setToolTip("Loss of each step (grey, scaled to its largest value) and the "
                        "validation score (green, 0-1: mean IoU of clicks, boxes and corrections).")

    def add(self, step: int, loss: float, score: float | None) -> None:
        if np.isfinite(loss):
            self.losses.append((step, loss))
        if score is not None:
            self.scores.append((step, score))
        self.update()

    def paintEvent(self, event: Any) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width() - 8, self.height() - 8
        painter.setPen(QPen(QColor("#666666"), 1))
        painter.drawRect(4, 4, w, h)
        top = max((v for _, v in self.losses), default=1.0) or 1.0

        def point(step: int, value: float) -> QPointF:
            return QPointF(4 + w * step / max(self.steps, 1), 4 + h * (1 - value))

        painter.setPen(QPen(QColor("#bbbbbb"), 1.5))
        line = [point(s, v / top) for s, v in self.losses]
        for a, b in itertools.pairwise(line):
            painter.drawLine(a, b)
        painter.setPen(QPen(QColor("#30e030"), 5))
        for s, v in self.scores:
            painter.drawPoint(point(s, v))
        painter.end()


class FinetunePanel(QWidget):
    """Steps, what to train, where to save; Fine-tune / Stop; the loss plot; the result."""

    def __init__(self, session: Session, on_trained: Callable[[Path, str], None],
                 output: Callable[[], Labels | None] = lambda: None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session, self.on_trained, self.output = session, on_trained, output
        self.steps = QSpinBox()
        self.steps.setRange(1, 100_000)
        self.steps.setValue(50)
        self.steps.setToolTip("Optimiser steps; a few tens adapt the decoder to your images. "
                              "Training again in the same folder resumes and goes on to this many.")
        self.images_per_step = QSpinBox()
        self.images_per_step.setRange(1, 16)
        self.images_per_step.setValue(2)
        self.sources = TrainingDataTable(session.viewer, output)
        self.trainable = choice_box(TRAINABLE, "Which parts of the model learn.")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("where the run and the model are saved")
        self.folder.setToolTip("The run folder: state.pt (to resume), log.csv, best.pt and "
                               "best.json (the model and its metadata).")
        self.button = QPushButton("Fine-tune")
        self.button.clicked.connect(self.run)
        self.job = JobPanel(unit="steps")
        self.plot = LossPlot()
        self.status = QLabel("Trains on the labels of the open images (commit or paint some "
                             "objects first).")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Steps", self.steps)
        form.addRow("Images per step", self.images_per_step)
        form.addRow("Train", self.trainable)
        form.addRow("Save in", self.folder)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Training data"))
        layout.addWidget(self.sources)
        layout.addLayout(form)
        layout.addWidget(self.button)
        layout.addWidget(self.job)
        layout.addWidget(self.plot)
        layout.addWidget(self.status)
        self._relay = _Relay(self)
        self._relay.step.connect(self.plot.add)
        session.source_changed.connect(self._default_folder)
        self._default_folder()

    def _default_folder(self) -> None:
        if not self.folder.isModified():
            self.folder.setText(str(run_folder(self.session.image_layer)))

    def config(self) -> TrainConfig:
        steps = self.steps.value()
        return TrainConfig(
            steps=steps, trainable=self.trainable.currentData(), lr=5e-5, warmup=min(10, steps),
            images_per_step=self.images_per_step.value(), objects_per_image=4,
            video_every=2 if self.trainable.currentData() != "decoder" else 0,
            eval_every=max(5, steps // 4), checkpoint_every=max(5, steps // 4),
        )

    def run(self) -> None:
        if self.job.busy:
            _notify.info("Fine-tuning is running: Cancel stops it (the next run resumes).")
            return
        try:
            model = self.session.require_model()
            self.sources.refresh()  # layers renamed or painted since the rows were made
            images = labelled_images(self.session.viewer, self.output(), self.sources.choices())
            if not images:
                raise UserProblem(
                    "No labels to train on: commit (or paint) objects into a Labels layer of an "
                    "open image's shape first, and choose it under 'Training data'."
                )
            data = LayerData(images)
        except (UserProblem, ValueError) as problem:
            _notify.error(str(problem))
            self.status.setText(str(problem))
            return
        folder = Path(self.folder.text()).expanduser()
        config = self.config()
        _import_dynamo()
        self.plot.losses.clear()
        self.plot.scores.clear()
        self.plot.steps = config.steps
        base = self.session.model_spec.get("checkpoint") or self.session.model_spec.get("name") or ""
        self.status.setText(f"Training on {data.describe()}…")
        self.button.setEnabled(False)
        self.job.start(
            "Fine-tuning", finetune_job, model, data, folder, config, str(base),
            self._relay.step.emit,
            on_return=self._trained, on_error=self._failed, on_finish=self._finished,
        )

    def _trained(self, result: tuple[Any, Path, dict]) -> None:
        model, path, metadata = result
        name = f"fine-tuned {path.parent.name} ({metadata.get('steps_done')} steps)"
        self.session.set_model(model, name, {"name": None, "checkpoint": str(path)})
        self.on_trained(path, name)
        self.status.setText(
            f"Saved {path} (validation score {metadata.get('best_validation_score', 0):.3f} at "
            f"step {metadata.get('best_step')}; metadata in {path.with_suffix('.json').name}); "
            "it is now the dock's model."
        )

    def _failed(self, message: str) -> None:
        self.status.setText(f"Fine-tuning failed: {message}")

    def _finished(self, outcome: str) -> None:
        self.button.setEnabled(True)
        if outcome == "cancelled":
            self.status.setText("Stopped; the state is saved: Fine-tune again resumes it.")
