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
from . import _notify, _settings
from ._jobs import JobControl, JobPanel
from ._session import Session

TEST_CHOICE = "test"
FILE_CHOICE = "file"
TEST_PRESET = "sam2.1_hiera_test"
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
        self.precision = QComboBox()
        self.precision.addItems(PRECISIONS)
        self.precision.setToolTip(
            "auto: bf16/fp16 where the hardware is fast at it, else fp32 (exact)"
        )
        self.load_button = QPushButton("Load model")
        self.load_button.clicked.connect(self.load)
        self.status = QLabel("No model loaded.")
        self.status.setWordWrap(True)
        self.job = JobPanel(unit="MB", scale=1e-6)

        form = QFormLayout()
        form.addRow("Model", self.preset)
        form.addRow("", self.file_row)
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.load_button)
        layout.addWidget(self.job)
        layout.addWidget(self.status)

        self._restore()
        self.preset.currentIndexChanged.connect(self._on_preset)
        self.precision.currentTextChanged.connect(self.session.set_precision)
        self.session.set_precision(self.precision.currentText())
        self._on_preset()

    # ------------------------------------------------------------------ choices

    def choice(self) -> str:
        return str(self.preset.currentData())

    def set_choice(self, value: str) -> None:
        index = self.preset.findData(value)
        if index >= 0:
            self.preset.setCurrentIndex(index)

    def _restore(self) -> None:
        saved = _settings.load()
        self.set_choice(saved.get("model", default_model()))
        self.path.setText(saved.get("checkpoint", ""))
        for combo, key in ((self.device, "device"), (self.precision, "precision")):
            index = combo.findText(saved.get(key, "auto"))
            combo.setCurrentIndex(max(index, 0))

    def _remember(self) -> None:
        _settings.save(
            {
                "model": self.choice(),
                "checkpoint": self.path.text(),
                "device": self.device.currentText(),
                "precision": self.precision.currentText(),
            }
        )

    def _on_preset(self, *_: Any) -> None:
        self.file_row.setVisible(self.choice() == FILE_CHOICE)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "SAM 2 checkpoint", "", "PyTorch checkpoints (*.pt *.pth);;All files (*)"
        )
        if path:
            self.path.setText(path)

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        """Load the chosen model in a worker; the current model stays until the new one is ready."""
        choice, path = self.choice(), self.path.text().strip()
        if choice == FILE_CHOICE and not path:
            _notify.error("Choose a checkpoint file first (Browse…), or pick a preset.")
            return
        if self.job.busy:
            return
        self._remember()
        self.load_button.setEnabled(False)
        self.job.start(
            "Loading the model",
            load_job,
            choice,
            path,
            self.device.currentText(),
            on_return=self._loaded,
            on_finish=lambda outcome: self.load_button.setEnabled(True),
        )

    def _loaded(self, result: tuple[Any, str, dict[str, Any]]) -> None:
        model, name, spec = result
        self.session.set_model(model, name, spec)
        self.status.setText(f"Loaded {name} on {model.device}.")
        self.session.viewer.status = f"SAM 2: loaded {name} on {model.device}"
