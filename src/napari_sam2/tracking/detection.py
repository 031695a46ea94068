"""Finding objects that no track covers yet: bright blobs of the frame, each segmented by SAM 2
from its box.

Segment-everything prompts the model at 1,024 grid points and takes 10-45 s per 1024 px frame
on two cores; nuclei are bright blobs on a dark background, so candidates come from a smoothed
foreground above the triangle threshold (on GOWT1's first frame it covers 23 of 23 nuclei, one
blob each; Otsu covered 9, missing the dim ones), touching blobs split at distance-transform
peaks, and only they are prompted,
on the features the tracker has already computed. The model's mask is kept within the blob
grown by a few pixels, so that a weak mask cannot swallow the background.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu, threshold_triangle
from skimage.segmentation import watershed

from ..engine.tracker import StackTracker


@dataclass(frozen=True)
class Detection:
    mask: np.ndarray  # bool (H, W)
    score: float  # the model's predicted IoU


THRESHOLDS: dict[str, Callable[[np.ndarray], float]] = {"otsu": threshold_otsu, "triangle": threshold_triangle}


def bright_foreground(image: np.ndarray, threshold: str = "triangle") -> np.ndarray:
    """Where a gray or RGB image is bright: smoothed (sigma 2 px up to 512 px, 4 px at 1024 px),
    above the `triangle` or `otsu` threshold, opened twice, holes filled; none for a flat image."""
    gray = image.mean(axis=-1) if image.ndim == 3 else image
    gray = gaussian(gray, sigma=max(2.0, min(gray.shape) / 256), preserve_range=True)
    if gray.max() <= gray.min():
        return np.zeros(gray.shape, bool)
    return ndimage.binary_fill_holes(ndimage.binary_opening(gray > THRESHOLDS[threshold](gray), iterations=2))


def foreground_blobs(image: np.ndarray, min_area: int, split_distance: int) -> np.ndarray:
    """Labels of bright blobs (`bright_foreground`, triangle threshold) of a gray or RGB image,
    touching blobs split at their waists."""
    labels = split_at_waists(bright_foreground(image), split_distance)
    areas = np.bincount(labels.ravel())
    small = np.nonzero(areas < min_area)[0]
    labels[np.isin(labels, small[small > 0])] = 0
    return labels


def split_at_waists(fg: np.ndarray, split_distance: int) -> np.ndarray:
    """Labels of a binary image's parts, touching parts split at their waists (watershed of the
    distance transform from peaks at least `split_distance` apart). The distance transform runs
    over each part's box, not the whole frame (which took 0.24 s per 1024 px frame)."""
    parts, _ = ndimage.label(fg)
    dist = np.zeros(fg.shape, np.float64)
    for index, (ys, xs) in enumerate(ndimage.find_objects(parts), start=1):
        where = (slice(max(ys.start - 1, 0), ys.stop + 1), slice(max(xs.start - 1, 0), xs.stop + 1))
        part = parts[where] == index
        dist[where][part] = ndimage.distance_transform_edt(part)[part]
    peaks = peak_local_max(dist, min_distance=max(2, split_distance), labels=parts, exclude_border=False)
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=fg)


def detect_new(
    tracker: StackTracker,
    frame: int,
    blobs: np.ndarray,
    covered: np.ndarray,
    min_area: int,
    max_covered: float = 0.3,
    max_same: float = 0.5,
    min_score: float = 0.3,
    grow: int = 3,
) -> list[Detection]:
    """Objects on `frame` that `covered` (what tracks hold) does not: blobs (`foreground_blobs`) less than
    `max_covered` covered, segmented from their box, clipped to the blob grown by `grow` px and
    to the uncovered pixels. A blob whose model mask lies more than `max_same` on tracked pixels
    is part of a tracked object (a nucleus its track covers only in part), not a new one."""
    candidates = []
    for index, where in enumerate(ndimage.find_objects(blobs), start=1):
        if where is None:
            continue
        blob = blobs[where] == index
        if (covered[where] & blob).sum() > max_covered * blob.sum():
            continue
        candidates.append((index, where))
    if not candidates:
        return []
    h, w = covered.shape
    boxes = [
        (max(s[1].start - grow, 0), max(s[0].start - grow, 0), min(s[1].stop + grow, w), min(s[0].stop + grow, h))
        for _, s in candidates
    ]
    masks, scores = tracker.segment_boxes(frame, boxes)
    found = []
    for (index, where), mask, score in zip(candidates, masks, scores):
        if score >= min_score and (mask & covered).sum() > max_same * mask.sum():
            continue  # the model sees a tracked object in this box: a part of it, not a new one
        blob = blobs == index
        region = ndimage.binary_dilation(blob, iterations=grow) & ~covered
        mask = mask & region
        if score < min_score or mask.sum() < 0.5 * (blob & ~covered).sum():
            mask = blob & ~covered  # the model missed the blob: keep the blob itself
        if mask.sum() >= min_area:
            found.append(Detection(mask, float(score)))
    return found
