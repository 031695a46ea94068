"""Segment everything: SAM 2's automatic mask generator on this plane or on every plane."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine import automatic  # imported here, not in the worker: imports hold the GIL
from ..progress import Cancelled
from . import _notify
from ._choice_box import choice_box
from ._image_source import ImageSource, PlaneIndex
from ._jobs import JobControl, JobPanel
from ._labels import new_labels
from ._session import Session, UserProblem

EVERYTHING_NAME = "SAM2 everything"
SCOPES = (("This plane", "plane"), ("Every plane of the stack", "stack"))
OVERLAPS = (("One label per object", "quality"), ("Nested: small on top of large", "area"))


def everything_job(
    control: JobControl,
    model: Any,
    precision: str,
    source: ImageSource,
    planes: list[PlaneIndex],
    params: dict[str, Any],
    order: str = "quality",
) -> Iterator[tuple[PlaneIndex, np.ndarray]]:
    """Worker: yield (plane, label image) for each plane; ids are unique across planes."""
    generator = automatic.AutomaticMaskGenerator(model, precision=precision, **params)
    normalization = source.normalization()
    n, offset = len(planes), 0
    control.report(0, n)
    for i, index in enumerate(planes):
        if control.stop_requested:
            return
        try:
            labels = generator.generate_labels(
                source.plane(index),
                normalization=normalization,
                progress=lambda done, total, i=i: control.report(i + done / max(total, 1), n),
                should_stop=lambda: control.stop_requested,
                order=order,
            )
        except Cancelled:
            return
        labels = labels.astype(np.uint32, copy=False)
        if offset:
            labels[labels > 0] += offset
        offset = max(offset, int(labels.max()))
        yield index, labels
        control.report(i + 1, n)


class EverythingPanel(QWidget):
    """Parameters, scope and a Run button; results go to a new Labels layer, plane by plane."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.points_per_side = QSpinBox()
        self.points_per_side.setRange(2, 128)
        self.points_per_side.setValue(32)
        self.points_per_side.setToolTip(
            "Grid of single-click prompts (n x n); 16 is four times faster than 32."
        )
        self.pred_iou = _fraction(0.8, "Keep masks whose predicted IoU is at least this.")
        self.stability = _fraction(0.95, "Keep masks that barely change when the threshold moves.")
        self.min_area = QSpinBox()
        self.min_area.setRange(0, 10**7)
        self.min_area.setValue(25)
        self.min_area.setToolTip(
            "Fill holes and remove specks up to this many pixels (low-res mask pixels)."
        )
        self.crop_layers = QSpinBox()
        self.crop_layers.setRange(0, 3)
        self.crop_layers.setToolTip(
            "Also run on zoomed crops (1: 4 crops, 2: 4 + 16): finds small objects, slower."
        )
        self.overlaps = choice_box(
            OVERLAPS,
            "One label per object: best masks first, duplicates and fragments dropped. "
            "Nested: larger masks first, smaller on top (a nucleus inside its cell stays visible).",
        )
        self.scope = choice_box(SCOPES)
        self.button = QPushButton("Segment everything")
        self.button.clicked.connect(self.run)
        self.job = JobPanel(unit="planes")
        self.status = QLabel()
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Points per side", self.points_per_side)
        form.addRow("Predicted IoU ≥", self.pred_iou)
        form.addRow("Stability ≥", self.stability)
        form.addRow("Min. region area", self.min_area)
        form.addRow("Crop layers", self.crop_layers)
        form.addRow("Overlaps", self.overlaps)
        form.addRow("Run on", self.scope)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.button)
        layout.addWidget(self.job)
        layout.addWidget(self.status)
        self.layer: Any = None
        self._filters_of: Any = None  # the model whose own filters the boxes were set to
        session.source_changed.connect(self._enable)
        session.model_changed.connect(self._follow_model)
        session.model_changed.connect(self._enable)
        self._follow_model()
        self._enable()

    def _follow_model(self) -> None:
        """A newly loaded model brings its own mask filters (its metadata's, chosen on validation
        images; the official 0.8 / 0.95 for Meta's weights): a small model rates its masks lower."""
        model = self.session.model
        if model is None or model is self._filters_of:
            return
        self._filters_of = model
        filters = automatic.default_filters(model)
        for box, key in ((self.pred_iou, "pred_iou_thresh"), (self.stability, "stability_score_thresh")):
            box.setValue(filters[key])
            tip = box.toolTip().split(" (")[0]
            box.setToolTip(f"{tip} ({self.session.model_name or 'this model'}'s own: {filters[key]:.2f})")

    def params(self) -> dict[str, Any]:
        return {
            "points_per_side": self.points_per_side.value(),
            "pred_iou_thresh": self.pred_iou.value(),
            "stability_score_thresh": self.stability.value(),
            "min_mask_region_area": self.min_area.value(),
            "crop_n_layers": self.crop_layers.value(),
        }

    def _enable(self) -> None:
        if self.job.busy:
            why = "Segmenting everything is running."
        elif self.session.model is None:
            why = "Load a model first."
        elif self.session.source is None:
            why = "Choose an image first."
        else:
            why = ""
        self.button.setEnabled(not why)
        self.button.setToolTip(why or "Segment every object automatically into a new labels layer.")
        source = self.session.source
        stack = source is not None and source.is_stack
        self.scope.model().item(1).setEnabled(stack)
        if not stack:
            self.scope.setCurrentIndex(0)

    def run(self) -> None:
        if self.job.busy:
            _notify.info(
                "Segment everything is already running: cancel it or wait for it to finish."
            )
            return
        try:
            model = self.session.require_model()
            source = self.session.require_source()
            index = self.session.current_plane()
            if self.scope.currentData() == "stack":
                if not source.is_stack:
                    raise UserProblem("This image has no stack axis: choose 'This plane'.")
                planes = [source.with_frame(index, f) for f in range(source.n_frames)]
            else:
                planes = [index]
        except UserProblem as problem:
            _notify.error(str(problem))
            return
        self.layer = new_labels(
            self.session.viewer, source, self.session.image_layer, EVERYTHING_NAME
        )
        self._source, self._count, self._objects = source, 0, 0
        self.job.start(
            "Segmenting everything",
            everything_job,
            model,
            self.session.precision,
            source,
            planes,
            self.params(),
            self.overlaps.currentData(),
            on_yield=self._write,
            on_finish=self._finished,
        )
        self._enable()

    def _write(self, item: tuple[PlaneIndex, np.ndarray]) -> None:
        index, labels = item
        self.layer.data[self._source.labels_plane_key(index)] = labels
        self.layer.refresh()
        self._count += 1
        self._objects += len(np.unique(labels)) - (1 if (labels == 0).any() else 0)

    def _finished(self, outcome: str) -> None:
        name = self.layer.name if self.layer is not None else EVERYTHING_NAME
        found = f"{self._objects} object(s) on {self._count} plane(s)"
        if outcome == "done":
            text = f"Done: {found} in '{name}'."
            if self._objects == 0:
                text = f"Done, but no object was found on {self._count} plane(s). " + (
                    self.what_to_lower()
                )
        elif outcome == "cancelled":
            text = f"Cancelled; {found} are kept in '{name}'."
        else:
            text = f"Failed after {self._count} plane(s) (see the notification)."
        self.status.setText(text)
        self.session.viewer.status = f"SAM 2: {text}"
        self._enable()

    def what_to_lower(self) -> str:
        """Which filters to loosen when nothing passed them, with their values now."""
        return (
            f"Lower 'Predicted IoU ≥' (now {self.pred_iou.value():.2f}) or 'Stability ≥' (now "
            f"{self.stability.value():.2f}), or 'Min. region area' (now {self.min_area.value()}); "
            f"more 'Points per side' (now {self.points_per_side.value()}) or 'Crop layers' find "
            "smaller objects."
        )


def _fraction(value: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, 1.0)
    box.setSingleStep(0.01)
    box.setDecimals(2)
    box.setValue(value)
    box.setToolTip(tip)
    return box
