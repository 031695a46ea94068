"""Output section: the Labels layer that commits and propagation write into."""

from __future__ import annotations

from napari.layers import Labels
from qtpy.QtWidgets import QCheckBox, QFormLayout, QWidget

from . import _bind
from ._labels import OUTPUT_NAME, matching_labels, new_labels
from ._layer_combo import LayerCombo
from ._prompt_layers import ROLE
from ._session import Session

NEW_ENTRY = f"New layer '{OUTPUT_NAME}'"


class OutputPanel(QWidget):
    """Choose an existing Labels layer of the image's shape, or let the first commit create one."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.combo = LayerCombo(
            session.viewer,
            Labels,
            empty_text=NEW_ENTRY,
            accept=lambda layer: (
                layer.metadata.get(ROLE) is None and matching_labels(session.source, layer)
            ),
        )
        self.combo.setToolTip("Labels layers with the image's shape; existing labels are kept.")
        self.overwrite = QCheckBox("Overwrite existing labels")
        self.overwrite.setToolTip(
            "Off: new objects only fill background pixels, so nothing labelled (or painted) "
            "is lost. "
            "On: new objects replace the labels under them."
        )
        _bind.check(self.overwrite, session.choices, "overwrite")
        form = QFormLayout(self)
        form.addRow("Labels", self.combo)
        form.addRow("", self.overwrite)
        session.source_changed.connect(self.combo.refresh)

    def layer(self) -> Labels | None:
        return self.combo.layer()

    def target(self) -> Labels:
        """The chosen Labels layer, created (empty) when 'new' is chosen."""
        layer = self.combo.layer()
        if layer is None:
            source = self.session.require_source()
            layer = new_labels(self.session.viewer, source, self.session.image_layer)
            self.combo.set_layer(layer)
        return layer
