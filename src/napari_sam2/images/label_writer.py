"""Writing tracked masks into a label volume (numpy, memmap, zarr) frame by frame."""

from __future__ import annotations

from typing import Any

import numpy as np


class LabelWriter:
    """Puts each frame's object masks into `volume[frame]` under their object ids.

    Overlap rule: pixels of the object's new mask are written where the volume is 0 or already
    holds this object; pixels the object held before but no longer covers go back to 0; pixels
    of any other label (another object, or the user's own painting) are left alone unless
    `overwrite=True`. Masks of tracked objects never overlap each other (the tracker gives each
    pixel to the object with the highest logit) so their order does not matter.
    """

    def __init__(self, volume: Any, overwrite: bool = False) -> None:
        if len(volume.shape) != 3:
            raise ValueError(f"the label volume must be (N, H, W); got shape {tuple(volume.shape)}.")
        if not np.issubdtype(np.dtype(volume.dtype), np.integer):
            raise ValueError(f"the label volume must have an integer dtype, not {volume.dtype}.")
        self.volume = volume
        self.overwrite = overwrite
        self.frames_written: set[int] = set()

    def write(self, frame: int, obj_ids: list[int], masks: np.ndarray) -> None:
        """masks: (K, H, W) bool for obj_ids (K,)."""
        current = np.asarray(self.volume[frame])
        updated = merge_masks(current, obj_ids, masks, self.overwrite)
        if not np.array_equal(updated, current):
            self.volume[frame] = updated
        self.frames_written.add(frame)


def merge_masks(current: np.ndarray, obj_ids: list[int], masks: Any, overwrite: bool = False) -> np.ndarray:
    """A copy of the label plane `current` with the objects' new masks put in (the rule above;
    the napari widget writes by the same rule, so its labels equal a replay's)."""
    updated = current.copy()
    for obj_id, mask in zip(obj_ids, masks):  # first free what the objects no longer cover
        updated[(current == obj_id) & ~mask] = 0
    for obj_id, mask in zip(obj_ids, masks):
        writable = mask if overwrite else mask & ((updated == 0) | (updated == obj_id))
        updated[writable] = obj_id
    return updated
