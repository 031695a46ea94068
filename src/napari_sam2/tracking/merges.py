"""Divisions found while tracking backward in time: two daughters that meet in one blob.

Backward, a division is a merge: the two daughters' tracks run into one object, their mother.
Two tracks are daughters of one mother when, on the frame being tracked, both lie in the same
bright blob (or one of them ends there and its last mask overlaps that blob), neither is larger
than a whole object, and on the frame before they held together the area that their masks (or
the one left) cover now, within `division_mass` (what a mother's daughters hold). Two
interphase nuclei that come into contact stay two blobs (the blob split parts them at their
distance-transform peaks), so they are not merged. Two daughters that a dark gap still parts
(`apart`) have not met yet: they merge on an earlier frame, so that the mother ends where a
forward pass divides her.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .lineage import box_of


@dataclass(frozen=True)
class Merge:
    """Two daughter tracks and the mask of the mother they meet in (on the frame tracked)."""

    daughters: tuple[int, int]
    mother: np.ndarray


def _home_blob(mask: np.ndarray, blobs: np.ndarray, share: float) -> int:
    """The blob holding at least `share` of the mask, or 0."""
    where = box_of(mask, margin=0)
    if where is None:
        return 0
    ids, counts = np.unique(blobs[where][mask[where]], return_counts=True)
    counts = np.where(ids > 0, counts, 0)
    best = int(counts.argmax())
    return int(ids[best]) if counts[best] >= share * int(mask.sum()) else 0


def merged_daughters(
    masks: dict[int, np.ndarray],
    gone: list[int],
    before_masks: dict[int, np.ndarray],
    blobs: np.ndarray,
    division_mass: float,
    daughter_size: float,
    apart: Callable[[np.ndarray, np.ndarray], bool] | None = None,
) -> list[Merge]:
    """The merges of this frame: pairs of tracks (alive in `masks`, or ending here as `gone`)
    that meet in one blob and held about the area they cover now between them on the frame
    before, unless both are alive and `apart(mask, mask)` says they are still two."""
    areas = {t: int(m.sum()) for t, m in before_masks.items()}
    typical = float(np.median(list(areas.values()))) if areas else 0.0
    homes: dict[int, list[int]] = {}
    for track, before in before_masks.items():
        if track in masks:
            home = _home_blob(masks[track], blobs, 0.5)
        elif track in gone:
            home = _home_blob(before, blobs, 0.25)
        else:
            continue
        if home and areas[track] <= daughter_size * typical:
            homes.setdefault(home, []).append(track)
    merges = []
    for blob, tracks in homes.items():
        if len(tracks) != 2 or all(t in gone for t in tracks):
            continue
        mother = np.zeros(blobs.shape, bool)
        for track in tracks:
            if track in masks:
                mother |= masks[track]
        held = sum(areas[t] for t in tracks)
        if apart is not None and all(t in masks for t in tracks) and apart(masks[tracks[0]], masks[tracks[1]]):
            continue
        if abs(held / max(int(mother.sum()), 1) - 1) <= division_mass:
            merges.append(Merge((tracks[0], tracks[1]), mother))
    return merges
