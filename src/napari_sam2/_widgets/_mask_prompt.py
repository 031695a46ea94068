"""Existing labels as a mask prompt: a label of a Labels layer (or that layer's selected label)
is the mask of the current object on the current plane, refined by SAM 2 together with any
clicks and box (see `napari_sam2.engine.apply_prompts` for how the mask is given to the model)."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QFormLayout, QSpinBox, QWidget

from ._image_source import PlaneIndex
from ._labels import matching_labels
from ._layer_combo import LayerCombo
from ._plane_prompts import PromptProblem
from ._prompt_layers import ROLE
from ._session import Session

SELECTED = 0  # the spin box value that means "the layer's selected label"
MAX_LABEL = 2**31 - 1


class MaskPromptPicker(QWidget):
    """A checkbox, a Labels layer of the image's shape and a label id."""

    changed = Signal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.enabled = QCheckBox("Use a label as mask prompt")
        self.enabled.setToolTip(
            "The chosen label on this plane is a mask prompt of the current object: SAM 2 "
            "refines it (with the clicks and box, if any). For propagation, a mask alone is kept "
            "exactly on its plane."
        )
        self.layer_combo = LayerCombo(
            session.viewer,
            Labels,
            accept=lambda layer: (
                layer.metadata.get(ROLE) is None and matching_labels(session.source, layer)
            ),
        )
        self.layer_combo.setToolTip("Labels layers with the image's shape.")
        self.label = QSpinBox()
        self.label.setRange(SELECTED, MAX_LABEL)
        self.label.setSpecialValueText("selected label")
        self.label.setToolTip("The label id, or the layer's selected label (0).")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow(self.enabled)
        form.addRow("Labels", self.layer_combo)
        form.addRow("Label", self.label)
        self._watched: Labels | None = None
        self.enabled.toggled.connect(self._on_change)
        self.label.valueChanged.connect(self._on_change)
        self.layer_combo.layer_changed.connect(self._watch)
        session.source_changed.connect(self.layer_combo.refresh)
        self._watch(self.layer_combo.layer())
        self._on_change()

    def _watch(self, layer: Labels | None) -> None:
        if self._watched is not None:
            self._watched.events.data.disconnect(self._on_layer_event)
            self._watched.events.selected_label.disconnect(self._on_layer_event)
        self._watched = layer
        if layer is not None:
            layer.events.data.connect(self._on_layer_event)
            layer.events.selected_label.connect(self._on_layer_event)
        self._on_change()

    def _on_layer_event(self, *_: Any) -> None:
        if self.enabled.isChecked():
            self.changed.emit()

    def _on_change(self, *_: Any) -> None:
        on = self.enabled.isChecked()
        self.layer_combo.setEnabled(on)
        self.label.setEnabled(on)
        self.changed.emit()

    def set_choice(self, layer: Labels | None, label: int = SELECTED, enabled: bool = True) -> None:
        """Choose the layer and label (SELECTED: the layer's selected label) from a script."""
        self.layer_combo.set_layer(layer)
        self.label.setValue(label)
        self.enabled.setChecked(enabled)

    def label_id(self) -> int | None:
        layer = self.layer_combo.layer()
        if layer is None:
            return None
        return int(self.label.value() or layer.selected_label)

    def mask_on(self, index: PlaneIndex) -> np.ndarray | None:
        """The chosen label's mask on a plane; None when unticked; PromptProblem when it is not
        there."""
        source = self.session.source
        if not self.enabled.isChecked() or source is None:
            return None
        layer = self.layer_combo.layer()
        if layer is None:
            raise PromptProblem(
                "Choose the Labels layer of the mask prompt (a layer with the image's shape), "
                "or untick 'Use a label as mask prompt'."
            )
        value = self.label_id()
        mask = np.asarray(layer.data[source.labels_plane_key(index)]) == value
        if not mask.any():
            raise PromptProblem(
                f"Label {value} of '{layer.name}' is not on this plane: choose another label "
                "or plane, or untick 'Use a label as mask prompt'."
            )
        return mask
