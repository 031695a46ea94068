"""A classical tracker to measure ours against: threshold and watershed on every frame, objects
linked to the frame before by overlap, a division where one object's area holds two.

This is what a microscopist gets from scikit-image without a model; the benchmarks score it
with the same Cell Tracking Challenge metrics beside `track_everything`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from .detection import bright_foreground, split_at_waists


def classical_segmentation(frame: np.ndarray, threshold: str = "otsu", min_area: int | None = None) -> np.ndarray:
    """Labels of one frame: its `bright_foreground` (`otsu` or `triangle` threshold), touching
    objects split by a distance-transform watershed with seeds 0.8 median radii apart, objects
    under `min_area` (default a fifth of the median) dropped."""
    fg = bright_foreground(np.asarray(frame, np.float64), threshold)
    parts, n = ndimage.label(fg)
    areas = np.bincount(parts.ravel())[1:]
    median = float(np.median(areas)) if n else 0.0
    labels = split_at_waists(fg, max(2, int(0.8 * np.sqrt(median / np.pi))))
    areas = np.bincount(labels.ravel())
    floor = min_area if min_area is not None else 0.2 * median
    labels[np.isin(labels, np.nonzero(areas < floor)[0])] = 0
    return labels


def link_by_overlap(
    before: np.ndarray, now: np.ndarray, next_id: int, min_iou: float = 0.1, inside: float = 0.5
) -> tuple[np.ndarray, dict[int, int], int]:
    """Track ids for the objects of `now` (labels) from the track ids of the frame `before`.

    Objects are matched one to one by largest total IoU (at least `min_iou`). A track whose
    area holds two objects of `now` (at least `inside` of each) divides: it ends and both
    become daughters. Anything else starts a new track. Returns (ids, child -> parent, next id).
    """
    pairs = before.astype(np.int64).ravel() * (int(now.max()) + 1) + now.ravel()
    counts = np.bincount(pairs, minlength=(int(before.max()) + 1) * (int(now.max()) + 1))
    overlap = counts.reshape(int(before.max()) + 1, int(now.max()) + 1)
    area_b, area_n = overlap.sum(1), overlap.sum(0)
    inter = overlap[1:, 1:].astype(np.float64)
    iou = inter / np.maximum(area_b[1:, None] + area_n[None, 1:] - inter, 1)
    ids = np.zeros(int(now.max()) + 1, np.int64)
    rows, cols = linear_sum_assignment(-iou)
    for r, c in zip(rows, cols):
        if iou[r, c] >= min_iou:
            ids[c + 1] = r + 1
    parents: dict[int, int] = {}
    for track in np.nonzero(area_b[1:])[0] + 1:
        held = [c for c in np.nonzero(overlap[track, 1:])[0] + 1 if overlap[track, c] >= inside * area_n[c]]
        if len(held) == 2 and all(ids[c] in (0, track) for c in held):
            for c in held:
                ids[c], next_id = next_id, next_id + 1
                parents[int(ids[c])] = int(track)
    for c in np.nonzero(area_n[1:])[0] + 1:
        if ids[c] == 0:
            ids[c], next_id = next_id, next_id + 1
    return ids[now], parents, next_id


def classical_tracking(movie: Any, threshold: str = "otsu", **options: Any) -> tuple[np.ndarray, dict[int, int]]:
    """Track every object of a (T, H, W) movie classically: a label movie (one id per track)
    and child -> parent. options: `classical_segmentation` / `link_by_overlap` keywords."""
    seg_keys = {"min_area"}
    seg = {k: v for k, v in options.items() if k in seg_keys}
    link = {k: v for k, v in options.items() if k not in seg_keys}
    first = classical_segmentation(movie[0], threshold, **seg)
    labels = np.zeros((len(movie), *first.shape), np.uint32)
    labels[0] = first
    next_id = int(first.max()) + 1
    parents: dict[int, int] = {}
    for t in range(1, len(movie)):
        labels[t], born, next_id = link_by_overlap(
            labels[t - 1], classical_segmentation(movie[t], threshold, **seg), next_id, **link
        )
        parents.update(born)
    return labels, parents
