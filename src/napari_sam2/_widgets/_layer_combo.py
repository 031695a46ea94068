"""A combo box of the viewer's layers of one type that follows the layer list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.layers import Layer
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QWidget


class LayerCombo(QComboBox):
    """Layers of `layer_type` (optionally filtered), with an optional first entry for 'none/new'."""

    layer_changed = Signal(object)  # the chosen layer, or None

    def __init__(
        self,
        viewer: Any,
        layer_type: type[Layer],
        empty_text: str | None = None,
        accept: Callable[[Layer], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layer_type = layer_type
        self.empty_text = empty_text
        self.accept = accept
        self._refreshing = False
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved, events.reordered):
            event.connect(self.refresh)
        events.inserted.connect(self._watch_name)
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        self.currentIndexChanged.connect(self._emit)
        self.refresh()

    def _watch_name(self, event: Any) -> None:
        event.value.events.name.connect(self.refresh)

    def layers(self) -> list[Layer]:
        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, self.layer_type) and (self.accept is None or self.accept(layer))
        ]

    def refresh(self, *_: Any) -> None:
        """Rebuild the entries, keeping the current choice when it still exists."""
        current = self.layer()
        self._refreshing = True
        try:
            self.clear()
            if self.empty_text is not None:
                self.addItem(self.empty_text, None)
            for layer in self.layers():
                self.addItem(layer.name, layer)
            index = self._index_of(current) if current is not None else -1
            self.setCurrentIndex(index if index >= 0 else 0)
        finally:
            self._refreshing = False
        if self.layer() is not current:
            self._emit()

    def _index_of(self, layer: Layer) -> int:
        for i in range(self.count()):
            if self.itemData(i) is layer:
                return i
        return -1

    def layer(self) -> Layer | None:
        data = self.currentData()
        return data if isinstance(data, Layer) else None

    def set_layer(self, layer: Layer | None) -> None:
        self.refresh()
        index = 0 if layer is None else self._index_of(layer)
        if index >= 0:
            self.setCurrentIndex(index)

    def _emit(self, *_: Any) -> None:
        if not self._refreshing:
            self.layer_changed.emit(self.layer())
