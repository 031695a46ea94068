"""Writing masks into napari Labels layers through their edit history, so Ctrl-Z undoes them.

Nothing already labelled is replaced unless `overwrite` is asked for: masks only fill pixels
that are 0 (background).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels

from ._image_source import ImageSource, PlaneIndex

OUTPUT_NAME = "SAM2 labels"


def matching_labels(source: ImageSource | None, layer: Labels) -> bool:
    """True when `layer` has the shape of labels for `source`."""
    return source is not None and tuple(layer.data.shape) == source.labels_shape


def new_labels(viewer: Any, source: ImageSource, image: Image, name: str = OUTPUT_NAME) -> Labels:
    """An empty uint32 Labels layer aligned with `image` (same scale and offset, no channels)."""
    dims = source.labels_dims()
    active = viewer.layers.selection.active
    layer = viewer.add_labels(
        np.zeros(source.labels_shape, dtype=np.uint32),
        name=name,
        scale=[image.scale[d] for d in dims],
        translate=[image.translate[d] for d in dims],
    )
    keep_active(viewer, active)
    return layer


def keep_active(viewer: Any, layer: Any) -> None:
    """Make `layer` the active one again (adding a layer selects it), so clicks keep going to it."""
    if layer is not None and layer in viewer.layers:
        viewer.layers.selection.active = layer


def next_label(layer: Labels) -> int:
    """One more than the largest label in the layer."""
    data = layer.data
    return int(np.max(data)) + 1 if data.size else 1


def commit_masks(
    layer: Labels,
    source: ImageSource,
    index: PlaneIndex,
    masks: list[np.ndarray],
    first_id: int,
    overwrite: bool = False,
) -> list[int]:
    """Write each mask under a new id (first_id, first_id + 1, ...) as one undoable step.

    Returns the ids actually written (a mask lying entirely on existing labels writes nothing).
    """
    written = []
    key = source.labels_plane_key(index)
    with layer.block_history():
        obj_id = first_id
        for mask in masks:
            plane = np.asarray(layer.data[key])
            target = mask if overwrite else mask & (plane == 0)
            rows, cols = np.nonzero(target)
            if rows.size:
                layer.data_setitem(source.labels_index(index, rows, cols), obj_id)
                written.append(obj_id)
                obj_id += 1
    return written


class StagedWrites:
    """Frames written one by one while a job runs, recorded as one undo step when it ends.

    Each frame appears at once (written straight into the data); `finish` turns everything that
    still holds the written values into a single history item of the layer.
    """

    def __init__(self, layer: Labels, source: ImageSource, overwrite: bool = False) -> None:
        self.layer = layer
        self.source = source
        self.overwrite = overwrite
        self.frames_written: list[PlaneIndex] = []
        self._changes: list[tuple[tuple[np.ndarray, ...], np.ndarray, int]] = []

    def write(self, index: PlaneIndex, obj_ids: list[int], masks: np.ndarray) -> int:
        """Write the masks of one plane; returns the number of pixels changed."""
        data = self.layer.data
        key = self.source.labels_plane_key(index)
        plane = np.asarray(data[key])
        changed = 0
        updated = plane.copy()
        for obj_id, mask in zip(obj_ids, masks, strict=True):
            target = mask & (updated != obj_id)
            if not self.overwrite:
                target &= updated == 0
            rows, cols = np.nonzero(target)
            if rows.size == 0:
                continue
            self._changes.append(
                (self.source.labels_index(index, rows, cols), plane[rows, cols].copy(), obj_id)
            )
            updated[rows, cols] = obj_id
            changed += rows.size
        if changed:
            data[key] = updated
            self.layer.refresh()
        self.frames_written.append(index)
        return changed

    def finish(self) -> None:
        """Record what was written (and is still there) as one undo step of the layer."""
        layer, changes = self.layer, self._changes
        self._changes = []
        if not changes:
            return
        with layer.block_history():
            for indices, old, obj_id in changes:
                still = np.asarray(layer.data[indices]) == obj_id
                if not still.any():
                    continue
                kept = tuple(i[still] for i in indices)
                layer.data[kept] = old[still]  # back to before, then forward through the history
                layer.data_setitem(kept, obj_id, refresh=False)
        layer.refresh()
