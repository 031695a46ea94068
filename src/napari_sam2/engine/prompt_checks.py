"""Checks of prompts in pixels of an image: points (x, y), labels, boxes (x0, y0, x1, y1).

Shared by the image predictor and the tracker, so that a bad prompt gets the same clear error
wherever it is given.
"""

from __future__ import annotations

import numpy as np


class PromptError(ValueError):
    """A prompt that cannot be used, with what is wrong with it."""


def outside(points: np.ndarray, region: tuple[float, float, float, float]) -> np.ndarray:
    """Which (N, 2) (x, y) points lie off the pixels of region (x0, y0, x1, y1): pixel i covers
    [i - 0.5, i + 0.5], so anything on a region's pixels is inside."""
    x0, y0, x1, y1 = region
    x, y = points[:, 0], points[:, 1]
    return (x < x0 - 0.5) | (x > x1 - 0.5) | (y < y0 - 0.5) | (y > y1 - 0.5)


def check_points(points, h: int, w: int) -> np.ndarray:
    """(N, 2) float (x, y) points, each on the W x H image."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 1 and pts.size == 2:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise PromptError(f"points must be an (N, 2) array of (x, y) pixels; got shape {pts.shape}.")
    if not np.isfinite(pts).all():
        raise PromptError("points contain NaN or infinite coordinates.")
    away = outside(pts, (0, 0, w, h))
    if away.any():
        i = int(np.flatnonzero(away)[0])
        raise PromptError(
            f"Point {i} at (x={pts[i, 0]:g}, y={pts[i, 1]:g}) is outside the {w}x{h} image "
            "(points are (x, y) = (column, row) pixels)."
        )
    return pts


def check_labels(labels, n: int) -> np.ndarray:
    """(n,) int64 labels, 1 (foreground) or 0 (background); all 1 when not given."""
    if labels is None:
        return np.ones(n, dtype=np.int64)
    lab = np.asarray(labels).reshape(-1)
    if len(lab) != n:
        raise PromptError(f"{n} points but {len(lab)} labels.")
    if not np.isin(lab, (0, 1)).all():
        raise PromptError("labels must be 1 (foreground) or 0 (background).")
    return lab.astype(np.int64)


def clip_boxes(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """Boxes clipped to the image extent [0, W] x [0, H]; an empty or outside box is an error."""
    if not np.isfinite(boxes).all():
        raise PromptError("box contains NaN or infinite coordinates.")
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    bad = (x1 <= x0) | (y1 <= y0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PromptError(f"Box {i} {boxes[i].tolist()} is empty: boxes are (x0, y0, x1, y1) with x0 < x1, y0 < y1.")
    off = (x1 < 0) | (y1 < 0) | (x0 > w) | (y0 > h)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise PromptError(f"Box {i} {boxes[i].tolist()} lies outside the {w}x{h} image.")
    return np.stack([x0.clip(0, w), y0.clip(0, h), x1.clip(0, w), y1.clip(0, h)], axis=1)


def check_one_box(box) -> np.ndarray:
    """One (x0, y0, x1, y1) box as 4 floats; several boxes are an error pointing to
    `predict_boxes` (one object each), never silently cut to the first."""
    arr = np.asarray(box, dtype=np.float64)
    if arr.size != 4 or (arr.ndim == 2 and arr.shape[0] != 1) or arr.ndim > 2:
        n = arr.size // 4 if arr.ndim >= 1 and arr.shape[-1] == 4 else None
        what = f"{n} boxes" if n else f"an array of shape {arr.shape}"
        raise PromptError(
            f"box takes one box (x0, y0, x1, y1) for one object; got {what}. "
            "Use predict_boxes(boxes) to segment one object per box."
        )
    return arr.reshape(4)
