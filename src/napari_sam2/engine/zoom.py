"""Zoom: segment a small object on an enlarged crop around it, then paste the mask back.

SAM 2 resizes every image to its fixed input size and predicts masks at a quarter of it, so an
object a few percent of a large image wide gets a mask a few pixels across. Zooming crops a
square window around the object (`CONTEXT` times its extent, so that the model still sees its
surroundings), embeds the crop, decodes the same prompts there and pastes the mask into the
image. Windows are (x0, y0, x1, y1) pixels of the image, like boxes.

A dim object (its pixels under the prompt below DIM_LEVEL of the image's intensity range, e.g.
a nucleus that expresses a tenth as much as its neighbours, which one set of limits for the
whole image shows nearly black) is segmented on its crop brightened to put it at mid-grey.
"""

from __future__ import annotations

import math

import numpy as np

Window = tuple[int, int, int, int]

CONTEXT = 8.0  # the window's side, in object extents
MAX_UPSAMPLING = 2.0  # a window is at least image_size / 2 pixels wide: crops are enlarged <= 2x
MIN_GAIN = 1.1  # zoom only when the object gets at least 10% more mask pixels across
DIM_LEVEL = 0.25  # an object whose prompted pixels are darker than this (of [0, 1]) is brightened
MAX_BRIGHTENING = 16.0
LEVEL_RADIUS = 3  # pixels around a click whose median is the object's level


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


def prompt_level(
    image: np.ndarray, points: np.ndarray | None, labels: np.ndarray | None, box: np.ndarray | None,
    to_unit=None,
) -> float | None:
    """An object's level: the median of (H, W, k) `image` around its positive clicks (or, without
    them, in the middle half of its box), averaged over channels; `to_unit` maps each read patch
    to [0, 1] (e.g. `Normalization.apply` on raw pixels). None without prompts."""
    h, w = image.shape[:2]
    regions = []
    if points is not None and len(points):
        positive = np.ones(len(points), bool) if labels is None else np.asarray(labels).reshape(-1) == 1
        for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2)[positive]:
            col, row = min(max(int(x), 0), w - 1), min(max(int(y), 0), h - 1)
            r = LEVEL_RADIUS
            regions.append(image[max(row - r, 0) : row + r + 1, max(col - r, 0) : col + r + 1])
    if not regions and box is not None:
        x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(-1)[:4])
        dx, dy = (x1 - x0) / 4, (y1 - y0) / 4
        r0, r1 = int(max(y0 + dy, 0)), int(min(max(y1 - dy, y0 + dy + 1), h))
        c0, c1 = int(max(x0 + dx, 0)), int(min(max(x1 - dx, x0 + dx + 1), w))
        regions.append(image[r0:r1, c0:c1])
    values = []
    for region in regions:
        if region.size:
            region = region if region.ndim == 3 else region[..., None]
            region = to_unit(region) if to_unit is not None else region
            values.append(np.asarray(region, dtype=np.float32).mean(-1).ravel())
    return float(np.median(np.concatenate(values))) if values else None


def brightening(image: np.ndarray, points: np.ndarray | None, labels: np.ndarray | None, box: np.ndarray | None) -> float:
    """The factor (1 or more) that brings a dim object to mid-grey in its crop: 0.5 over its
    `prompt_level` in the prepared (H, W, 3) [0, 1] image, in steps of sqrt(2) so that a
    correction click on the same object keeps the crop it was decoded in; 1 for an object
    brighter than DIM_LEVEL."""
    level = prompt_level(image, points, labels, box)
    if level is None or level >= DIM_LEVEL or level <= 0.0:
        return 1.0
    steps = round(2 * math.log2(0.5 / level))
    return float(min(2.0 ** (steps / 2), MAX_BRIGHTENING))
