"""Model section: preset or checkpoint file, device and precision; loading runs in a worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..checkpoints.cache import cache_dir
from ..checkpoints.download import ensure_checkpoint
from ..checkpoints.loading import build_model, default_model, load_model
from ..checkpoints.registry import OFFICIAL_CHECKPOINTS
from ..checkpoints.shipped import SHIPPED_MODEL, has_shipped_model
from ..engine.embedding_store import precision_name
from ..engine.precision import resolve_precision
from ..engine.orientations import default_orientations
from . import _bind, _notify, _settings
from ._choice_box import choice_box
from ._jobs import JobControl, JobPanel
from ._session import Session

TEST_CHOICE = "test"
FILE_CHOICE = "file"
TEST_PRESET = "sam2.1_hiera_test"
TRAINED_PREFIX = "trained:"  # + the checkpoint of a model fine-tuned in the dock
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_SIZES = {"tiny": "tiny", "small": "small", "base_plus": "base+", "large": "large"}


def preset_choices() -> list[tuple[str, str]]:
    """(label, value) for the combo: the built-in model (when installed), the eight official
    variants, the test model, a file."""
    choices = [("Built-in micro model (offline)", SHIPPED_MODEL)] if has_shipped_model() else []
    for version, prefix in (("2.1", "sam2.1"), ("2", "sam2")):
        for size, label in _SIZES.items():
            preset = f"{prefix}_hiera_{size}"
            choices.append((f"SAM {version} {label}", preset))
    choices.append(("Test model (random weights)", TEST_CHOICE))
    choices.append(("Checkpoint file…", FILE_CHOICE))
    return choices


def weights_present(preset: str) -> bool:
    info = OFFICIAL_CHECKPOINTS.get(preset)
    return info is not None and (cache_dir() / info.filename).is_file()


def load_job(
    control: JobControl, choice: str, path: str, device: str
) -> tuple[Any, str, dict[str, Any]]:
    """Worker: build or load the model, downloading official weights first when they are missing
    (with progress, and Cancel); returns (model, description, how to load it again)."""
    control.report(0, 0)
    spec: dict[str, Any] = {"name": choice, "checkpoint": None}
    if choice == TEST_CHOICE:
        model = build_model(TEST_PRESET, device=device)
        name = f"{TEST_PRESET} (random weights)"
        spec["name"] = TEST_PRESET
    elif choice == SHIPPED_MODEL:
        model = load_model(SHIPPED_MODEL, device=device)
        name = f"{SHIPPED_MODEL} (built-in)"
    elif choice.startswith(TRAINED_PREFIX):
        path = choice.removeprefix(TRAINED_PREFIX)
        model = load_model(Path(path), device=device)
        name = f"{model.config.name} fine-tuned ({Path(path).parent.name})"
        spec = {"name": None, "checkpoint": path}
    elif choice == FILE_CHOICE:
        model = load_model(Path(path), device=device)
        name = f"{model.config.name} from {Path(path).name}"
        spec = {"name": None, "checkpoint": str(Path(path).expanduser().resolve())}
    else:
        weights = ensure_checkpoint(
            choice,
            progress=control.report,
            should_stop=lambda: control.stop_requested,
            strict=False,
        )
        control.report(0, 0)
        model = load_model(choice, checkpoint=weights, device=device)
        name = choice
    return model, name, spec


class ModelPanel(QWidget):
    """Choose and load a model; the choice is remembered between sessions."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.preset = QComboBox()
        for label, value in preset_choices():
            self.preset.addItem(label, value)
            if value == SHIPPED_MODEL:
                tip = (
                    "A small SAM 2 trained on synthetic fluorescence microscopy that ships with the "
                    "plugin: works offline; official weights are more accurate (docs/shipped_model.md)."
                )
            elif value not in (TEST_CHOICE, FILE_CHOICE):
                where = "on this machine" if weights_present(value) else "downloaded when loaded"
                tip = f"{value}: weights {where} ({cache_dir()})"
            elif value == TEST_CHOICE:
                tip = (
                    "A small model with random weights, to try the widget: its masks mean nothing."
                )
            else:
                tip = "A .pt file of any SAM 2 / 2.1 size, official format or a bare state dict."
            self.preset.setItemData(self.preset.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.path = QLineEdit()
        self.path.setPlaceholderText("path to a .pt checkpoint (SAM 2 or 2.1, any size)")
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        self.file_row = QWidget()
        row = QHBoxLayout(self.file_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setToolTip("auto: CUDA, then Apple MPS, then the CPU")
        self.precision = choice_box(
            [(p, p) for p in PRECISIONS],
            "auto: bf16/fp16 where the hardware is fast at it, else fp32 (exact); once a model is "
            "loaded, 'auto' shows what it chose.",
        )
        self.orientations = choice_box(
            [("auto", 0), ("1: the image as it is", 1), ("4: its flips", 4), ("8: flips and transposes", 8)],
            "Each click or box is decoded in this many orientations of the image and the masks "
            "averaged: steadier borders for that many embeddings per plane. auto: the model's own "
            "choice (shown once a model is loaded).",
        )
        self.load_button = QPushButton("Load model")
        self.load_button.clicked.connect(lambda: self.load())
        self.status = QLabel("No model loaded.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.job = JobPanel(unit="MB", scale=1e-6)

        form = QFormLayout()
        form.addRow("Model", self.preset)
        form.addRow("", self.file_row)
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        form.addRow("Orientations", self.orientations)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.load_button)
        layout.addWidget(self.job)
        layout.addWidget(self.status)

        self._restore()
        choices = session.choices
        _bind.combo_data(self.preset, choices, "model")
        _bind.line(self.path, choices, "checkpoint")
        _bind.combo_text(self.device, choices, "device")
        _bind.combo_data(self.precision, choices, "precision")
        _bind.combo_data(self.orientations, choices, "orientations")
        self.preset.currentIndexChanged.connect(self._on_preset)
        session.model_changed.connect(self._show_auto)
        self._on_preset()

    # ------------------------------------------------------------------ choices

    def choice(self) -> str:
        return str(self.preset.currentData())

    def set_choice(self, value: str) -> None:
        index = self.preset.findData(value)
        if index >= 0:
            self.preset.setCurrentIndex(index)

    def add_trained(self, path: Path, label: str = "", select: bool = True) -> None:
        """A model fine-tuned in the dock joins the list (and is remembered for later sessions)."""
        value = TRAINED_PREFIX + str(path)
        if self.preset.findData(value) < 0:
            self.preset.insertItem(
                self.preset.count() - 2, label or f"Fine-tuned: {Path(path).parent.name}", value
            )
            self.preset.setItemData(
                self.preset.findData(value), str(path), Qt.ItemDataRole.ToolTipRole
            )
            trained = [p for p in _settings.load().get("trained", []) if p != str(path)]
            _settings.save({"trained": [*trained, str(path)]})
        if select:
            self.set_choice(value)

    def _restore(self) -> None:
        saved = _settings.load()
        for path in saved.get("trained", []):
            if Path(path).is_file():
                self.add_trained(Path(path), select=False)
        self.set_choice(saved.get("model", default_model()))
        self.path.setText(saved.get("checkpoint", ""))
        self.device.setCurrentIndex(max(self.device.findText(saved.get("device", "auto")), 0))
        self.precision.setCurrentIndex(max(self.precision.findData(saved.get("precision", "auto")), 0))
        self.orientations.setCurrentIndex(max(self.orientations.findData(saved.get("orientations", 0)), 0))

    def _remember(self, choice: str, path: str, device: str) -> None:
        _settings.save(
            {
                "model": choice,
                "checkpoint": path,
                "device": device,
                "precision": self.session.choices.precision,
                "orientations": self.session.choices.orientations,
            }
        )

    def _show_auto(self) -> None:
        """'auto (bf16)', 'auto (8)': what the automatic precision and orientations chose for the
        loaded model."""
        model = self.session.model
        text, turns = "auto", "auto"
        if model is not None:
            dtype = resolve_precision("auto", model.device, model)
            text, turns = f"auto ({precision_name(dtype)})", f"auto ({default_orientations(model)})"
        self.precision.setItemText(self.precision.findData("auto"), text)
        self.orientations.setItemText(self.orientations.findData(0), turns)

    def _on_preset(self, *_: Any) -> None:
        self.file_row.setVisible(self.choice() == FILE_CHOICE)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "SAM 2 checkpoint", "", "PyTorch checkpoints (*.pt *.pth);;All files (*)"
        )
        if path:
            self.path.setText(path)

    # ------------------------------------------------------------------ loading

    def load(self, automatic: bool = False) -> None:
        """Load the chosen model in a worker; the current model stays until the new one is
        ready. automatic (when the dock opens): only if no model is there yet, and the result is
        dropped if a model was set meanwhile. The choice is remembered once it loaded."""
        choices = self.session.choices
        choice, path, device = choices.model, choices.checkpoint.strip(), choices.device
        if automatic and (self.session.model is not None or self.job.busy):
            return
        if choice == FILE_CHOICE and not path:
            self.status.setText("Choose a checkpoint file first (Browse…), or pick a preset.")
            if not automatic:
                _notify.error("Choose a checkpoint file first (Browse…), or pick a preset.")
            return
        if self.job.busy:
            return
        self.load_button.setEnabled(False)
        label = self.preset.currentText()
        self.status.setText(f"Loading {label}…")
        self.session.viewer.status = f"SAM 2: loading {label}…"
        self.job.start(
            "Loading the model",
            load_job,
            choice,
            path,
            device,
            on_return=lambda result: self._loaded(result, automatic, (choice, path, device)),
            on_error=self._failed,
            on_finish=lambda outcome: self.load_button.setEnabled(True),
        )

    def _loaded(
        self, result: tuple[Any, str, dict[str, Any]], automatic: bool, chosen: tuple
    ) -> None:
        model, name, spec = result
        if automatic and self.session.model is not None:
            return  # a model was set while this one loaded: keep it
        self.session.set_model(model, name, spec)
        self._remember(*chosen)
        self.status.setText(f"Loaded {name} on {model.device}.")
        self.session.viewer.status = f"SAM 2: loaded {name} on {model.device}"

    def _failed(self, message: str) -> None:
        """The whole error, kept under the Load button (a notification fades and is cut)."""
        self.status.setText(f"The model was not loaded: {message}")
