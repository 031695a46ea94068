"""Holding tracked masks to the frame's bright blobs (`detection.foreground_blobs`).

The model's mask is the better outline where it is right, but on dim or touching nuclei it
leaks over a neighbour or the background, or keeps only a bright spot. The blobs say where the
objects are: a mask that grew gives back what is not its blob, and a mask that fills its own
blob (which no other track shares, and which is not two lobes at a dark waist: a dividing
mother's daughters) less than half as much as the other tracks fill theirs takes the blob.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .detection import split_at_waists
from .lineage import blobs_held, box_of, pasted, split_by_blobs

if TYPE_CHECKING:
    from .everything import Settings


def fitted_to_blobs(
    masks: dict[int, np.ndarray],
    before: dict[int, np.ndarray],
    blobs: np.ndarray,
    gray: np.ndarray,
    sizes: tuple[int, int],
    settings: Settings,
) -> dict[int, np.ndarray]:
    """Each track's mask (track -> bool mask) held to the blobs, given each track's mask on the
    frame before and the frame's (min_area, blob split distance). A mask larger than
    `settings.division_growth` times its mask before keeps only its own blobs (`given_back`); a
    mask that fills the blob it lies most in less than half as much as the median track fills
    its own takes it, if no other track touches it and it is not two lobes at a dark waist."""
    min_area, split = sizes
    blob_boxes = ndimage.find_objects(blobs)
    areas = np.bincount(blobs.ravel())
    owners: dict[int, set[int]] = {}  # blob -> the tracks whose masks touch it
    main: dict[int, tuple[int, int]] = {}  # track -> (the blob it lies most in, pixels there)
    for track, mask in masks.items():
        touched, main[track] = _blobs_under(mask, blobs)
        for b in touched:
            owners.setdefault(b, set()).add(track)
    fills = [n / areas[b] for b, n in main.values() if b]
    usual = float(np.median(fills)) if fills else 0.0
    out = {}
    for track, mask in masks.items():
        last = before.get(track)
        if last is not None and mask.sum() > settings.division_growth * last.sum():
            mask = given_back(mask, last, blobs, blob_boxes, min_area)
            main[track] = _blobs_under(mask, blobs)[1]
        b, n = main[track]
        if b and n < 0.5 * usual * areas[b] and owners[b] == {track}:
            blob = _blob(blobs, blob_boxes, b)
            if len(split_lobes(blob, gray, split // 2, min_area, settings.division_share)) < 2:
                mask = mask | blob  # a dim nucleus's bright spot takes its blob
        out[track] = mask
    return out


def given_back(
    mask: np.ndarray, before: np.ndarray, blobs: np.ndarray, blob_boxes: list, min_area: int,
    held: float = 0.25, grow: int = 3,
) -> np.ndarray:
    """A mask that leaked, within the blobs it holds that its mask `before` covered most or at
    least `held` of (grown by `grow` px); unchanged if it holds none."""
    blobs_now = blobs_held(mask, blobs, min_area)
    if not blobs_now:
        return mask
    share = {}
    for b in blobs_now:
        where = blob_boxes[b - 1]
        blob = blobs[where] == b
        share[b] = int((before[where] & blob).sum()) / max(int(blob.sum()), 1)
    own = max(share, key=share.get)
    kept = [b for b, s in share.items() if b == own or s >= held]
    return mask & ndimage.binary_dilation(np.isin(blobs, kept), iterations=grow)


def _blobs_under(mask: np.ndarray, blobs: np.ndarray) -> tuple[list[int], tuple[int, int]]:
    """The blobs a mask touches, and (the blob it lies most in, its pixels there) or (0, 0)."""
    where = box_of(mask)
    if where is None:
        return [], (0, 0)
    ids, counts = np.unique(blobs[where][mask[where]], return_counts=True)
    counts[ids == 0] = 0
    if not counts.any():
        return [], (0, 0)
    return [int(b) for b in ids if b], (int(ids[counts.argmax()]), int(counts.max()))


def _blob(blobs: np.ndarray, blob_boxes: list, b: int) -> np.ndarray:
    out = np.zeros(blobs.shape, bool)
    where = blob_boxes[b - 1]
    out[where] = blobs[where] == b
    return out


def split_lobes(mask: np.ndarray, gray: np.ndarray, split: int, min_area: int, share: float) -> list[np.ndarray]:
    """The two lobes of a mask pinched at a dark waist (small daughters that one blob holds)."""
    where = box_of(mask, margin=2)
    if where is None:
        return []
    m = mask[where]
    return [pasted(half, where, mask.shape) for half in split_by_blobs(m, split_at_waists(m, split), gray[where], min_area, share)]
