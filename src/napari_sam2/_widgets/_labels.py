"""Writing masks into napari Labels layers through their edit history, so Ctrl-Z undoes them.

Nothing labelled by others is replaced unless `overwrite` is asked for: an object's mask fills
pixels that are background or already its own, and pixels the object no longer covers on that
plane become background (the rule of `label_writer`, shared with the command line and the API).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels

from ..images.label_writer import merge_masks
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
    ids: list[int],
    overwrite: bool = False,
) -> list[int]:
    """Write mask k under ids[k] on one plane as one undoable step, by the labels' merge rule
    (`label_writer.merge_masks`): an id already on the plane is replaced there, and other labels
    are kept unless `overwrite`. Returns the ids that are on the plane afterwards."""
    key = source.labels_plane_key(index)
    plane = np.asarray(layer.data[key])
    updated = merge_masks(plane, ids, masks, overwrite)
    rows, cols = np.nonzero(updated != plane)
    if rows.size:
        values = updated[rows, cols]
        with layer.block_history():
            for value in np.unique(values):
                mine = values == value
                layer.data_setitem(source.labels_index(index, rows[mine], cols[mine]), int(value))
    return [int(i) for i in ids if (updated == i).any()]


class StagedWrites:
    """Frames written one by one while a job runs, recorded as one undo step when it ends.

    Each frame appears at once (written straight into the data, by the merge rule of
    `label_writer`); `finish` turns every pixel that still holds what the job wrote into a single
    history item of the layer, going back to the value it had before the job.
    """

    def __init__(self, layer: Labels, source: ImageSource, overwrite: bool = False) -> None:
        self.layer = layer
        self.source = source
        self.overwrite = overwrite
        self.frames_written: list[PlaneIndex] = []
        # per plane: flat pixel indices changed, their values before the job, the latest written
        self._changes: dict[PlaneIndex, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def write(self, index: PlaneIndex, obj_ids: list[int], masks: np.ndarray) -> int:
        """Write the masks of one plane; returns the number of pixels changed."""
        data = self.layer.data
        key = self.source.labels_plane_key(index)
        plane = np.asarray(data[key])
        updated = merge_masks(plane, obj_ids, masks, self.overwrite)
        flat = np.flatnonzero(updated != plane)
        if flat.size:
            self._remember(index, flat, plane.ravel()[flat], updated.ravel()[flat])
            data[key] = updated
            self.layer.refresh()
        self.frames_written.append(index)
        return int(flat.size)

    def _remember(
        self, index: PlaneIndex, flat: np.ndarray, old: np.ndarray, new: np.ndarray
    ) -> None:
        earlier = self._changes.get(index)
        if earlier is None:
            self._changes[index] = (flat, old, new)
            return
        seen, first, _ = earlier
        union = np.union1d(seen, flat)
        before, latest = np.empty(union.size, old.dtype), np.empty(union.size, new.dtype)
        at_new, at_seen = np.searchsorted(union, flat), np.searchsorted(union, seen)
        latest[at_seen] = earlier[2]
        latest[at_new] = new  # the latest write wins
        before[at_new] = old
        before[at_seen] = first  # the value before the job wins
        self._changes[index] = (union, before, latest)

    def finish(self) -> None:
        """Record what was written (and is still there) as one undo step of the layer."""
        layer, changes = self.layer, self._changes
        self._changes = {}
        w = self.source.plane_shape[1]
        with layer.block_history():
            for index, (flat, before, latest) in changes.items():
                rows, cols = np.divmod(flat, w)
                indices = self.source.labels_index(index, rows, cols)
                still = (np.asarray(layer.data[indices]) == latest) & (before != latest)
                if not still.any():
                    continue
                kept = tuple(i[still] for i in indices)
                layer.data[kept] = before[still]  # back to before, then forward through history
                values = latest[still]
                for value in np.unique(values):
                    mine = values == value
                    layer.data_setitem(tuple(i[mine] for i in kept), int(value), refresh=False)
        layer.refresh()
