"""Which Labels layer trains with which image: one row per open image, its labels chosen by the
user (or left out); the default is the dock's output layer, else 'SAM2 labels', else the first
Labels layer of the image's shape that holds labels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtWidgets import QAbstractItemView, QComboBox, QHeaderView, QTableWidget, QTableWidgetItem

from ._finetune_data import LabelledImage
from ._image_source import ImageSource
from ._labels import OUTPUT_NAME, matching_labels
from ._prompt_layers import ROLE

NOT_USED = "(not used)"


def trainable_images(viewer: Any) -> list[tuple[Image, ImageSource]]:
    """Open 2-D and 3-D (stack) Image layers, each with the source the dock would read."""
    found = []
    for image in [layer for layer in viewer.layers if isinstance(layer, Image)]:
        if image.multiscale or image.ndim > 3:
            continue
        found.append((image, ImageSource(image.data, rgb=bool(image.rgb), stack_dim=0 if image.ndim == 3 else None)))
    return found


def label_candidates(viewer: Any, source: ImageSource, output: Labels | None = None) -> list[Labels]:
    """Labels layers of the image's shape (never the dock's prompt layers), the default first."""
    layers = [
        layer for layer in viewer.layers
        if isinstance(layer, Labels) and layer.metadata.get(ROLE) is None and matching_labels(source, layer)
    ]
    filled = {id(layer): bool(np.asarray(layer.data).any()) for layer in layers}
    layers.sort(key=lambda layer: (not filled[id(layer)], layer is not output, layer.name != OUTPUT_NAME))
    return layers


def labelled_images(
    viewer: Any, output: Labels | None = None, chosen: Mapping[str, str | None] | None = None
) -> list[LabelledImage]:
    """Each open image with its chosen Labels layer (`chosen`: image name -> layer name, None to
    leave the image out; images not in it get the default when that holds labels)."""
    chosen = chosen or {}
    found = []
    for image, source in trainable_images(viewer):
        candidates = label_candidates(viewer, source, output)
        if image.name in chosen:
            picked = [layer for layer in candidates if layer.name == chosen[image.name]][:1]
        else:
            picked = candidates[:1]
        for layer in picked:
            labels = np.asarray(layer.data)
            if labels.any():
                found.append(LabelledImage(source, labels, image.name))
    return found


class TrainingDataTable(QTableWidget):
    """Image | Labels: a row per open image; the combo picks its Labels layer or leaves it out."""

    def __init__(self, viewer: Any, output: Any = lambda: None) -> None:
        super().__init__(0, 2)
        self.viewer, self.output = viewer, output
        self.setHorizontalHeaderLabels(["Image", "Labels"])
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setToolTip("Which Labels layer trains with each open image; '(not used)' leaves it out.")
        self._picked: dict[str, str | None] = {}  # the user's choices, kept across refreshes
        if viewer is not None:
            viewer.layers.events.inserted.connect(self.refresh)
            viewer.layers.events.removed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Rebuild the rows from the open layers, keeping what the user picked."""
        images = trainable_images(self.viewer) if self.viewer is not None else []
        self.setRowCount(len(images))
        for row, (image, source) in enumerate(images):
            self.setItem(row, 0, QTableWidgetItem(image.name))
            combo = QComboBox()
            for layer in label_candidates(self.viewer, source, self.output()):
                combo.addItem(layer.name, layer.name)
            combo.addItem(NOT_USED, None)
            if image.name in self._picked:
                combo.setCurrentIndex(max(0, combo.findData(self._picked[image.name])))
            combo.activated.connect(lambda _, name=image.name, box=combo: self._pick(name, box.currentData()))
            self.setCellWidget(row, 1, combo)
        self.setFixedHeight(self.horizontalHeader().height() + 6 + sum(self.rowHeight(r) for r in range(len(images))))

    def _pick(self, image: str, labels: str | None) -> None:
        self._picked[image] = labels

    def pick(self, image: str, labels: str | None) -> None:
        """Choose `labels` (a layer name, or None: not used) for `image`, as the combo does."""
        for row in range(self.rowCount()):
            if self.item(row, 0).text() == image:
                combo = self.cellWidget(row, 1)
                combo.setCurrentIndex(combo.findData(labels))
        self._pick(image, labels)

    def choices(self) -> dict[str, str | None]:
        """Image name -> chosen Labels layer name (None: not used), for `labelled_images`."""
        return {self.item(r, 0).text(): self.cellWidget(r, 1).currentData() for r in range(self.rowCount())}
