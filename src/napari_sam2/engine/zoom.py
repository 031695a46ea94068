"""Zoom: segment a small object on an enlarged crop around it, then paste the mask back.

SAM 2 resizes every image to its fixed input size and predicts masks at a quarter of it, so an
object a few percent of a large image wide gets a mask a few pixels across. Zooming crops a
square window around the object (`CONTEXT` times its extent, so that the model still sees its
surroundings), embeds the crop, decodes the same prompts there and pastes the mask into the
image. Windows are (x0, y0, x1, y1) pixels of the image, like boxes.
"""

from __future__ import annotations

import math

import numpy as np

Window = tuple[int, int, int, int]

CONTEXT = 8.0  # the window's side, in object extents
MAX_UPSAMPLING = 2.0  # a window is at least image_size / 2 pixels wide: crops are enlarged <= 2x
MIN_GAIN = 1.1  # zoom only when the object gets at least 10% more mask pixels across


def zoom_window(extent: np.ndarray, image_hw: tuple[int, int], image_size: int) -> Window | None:
    """The window to segment an object of `extent` (x0, y0, x1, y1) in, or None when zooming
    would not enlarge it by MIN_GAIN (a large object, or a small image)."""
    h, w = image_hw
    x0, y0, x1, y1 = (float(v) for v in extent)
    side = max(CONTEXT * max(x1 - x0, y1 - y0, 1.0), image_size / MAX_UPSAMPLING)
    side = int(math.ceil(max(side, x1 - x0 + 2, y1 - y0 + 2)))
    width, height = min(side, w), min(side, h)
    if max(width / w, height / h) > 1.0 / MIN_GAIN:
        return None
    left = _place((x0 + x1) / 2 - width / 2, width, w)
    top = _place((y0 + y1) / 2 - height / 2, height, h)
    return left, top, left + width, top + height


def _place(start: float, length: int, limit: int) -> int:
    """Start of a span of `length` near `start`, shifted to lie inside [0, limit]."""
    return int(min(max(round(start), 0), limit - length))


def check_window(window, image_hw: tuple[int, int]) -> Window:
    """A window given by the caller, validated against the image."""
    h, w = image_hw
    try:
        x0, y0, x1, y1 = (int(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"zoom window must be (x0, y0, x1, y1) pixels; got {window!r}.") from None
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"zoom window {window!r} is not inside the {w}x{h} image.")
    return x0, y0, x1, y1


def prompt_extent(points: np.ndarray | None, box: np.ndarray | None, mask_box: np.ndarray | None) -> np.ndarray:
    """(x0, y0, x1, y1) covering the box, the points and a first mask's box (whichever exist)."""
    corners = []
    if box is not None:
        corners.append(np.asarray(box, dtype=np.float64).reshape(2, 2))
    if points is not None:
        corners.append(np.asarray(points, dtype=np.float64).reshape(-1, 2))
    if mask_box is not None:
        corners.append(np.asarray(mask_box, dtype=np.float64).reshape(2, 2))
    xy = np.concatenate(corners)
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def in_window(xy: np.ndarray, window: Window) -> np.ndarray:
    """Coordinates (..., 2k) shifted into the window's frame."""
    offset = np.tile(np.array(window[:2], dtype=np.float64), xy.shape[-1] // 2)
    return xy - offset


def paste_masks(masks: np.ndarray, window: Window, image_hw: tuple[int, int]) -> np.ndarray:
    """(..., h, w) window masks placed into all-False (..., H, W) image masks."""
    x0, y0, x1, y1 = window
    full = np.zeros((*masks.shape[:-2], *image_hw), dtype=bool)
    full[..., y0:y1, x0:x1] = masks
    return full
