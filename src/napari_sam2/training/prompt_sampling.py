"""Prompts sampled from ground-truth masks, as SAM 2 is trained and evaluated.

Masks are boolean (H, W) numpy arrays; points come back as (x, y) pixels, boxes as
(x0, y0, x1, y1) pixels, like everywhere in the engine.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def centre_click(mask: np.ndarray) -> np.ndarray:
    """The pixel deepest inside the mask (farthest from its border): where a user clicks."""
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return np.array([x, y], dtype=np.float64)


def random_click(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A pixel of the mask: uniform, or the centre, half of the time each (a user's range)."""
    if rng.random() < 0.5:
        return centre_click(mask)
    ys, xs = np.nonzero(mask)
    i = int(rng.integers(len(xs)))
    return np.array([xs[i], ys[i]], dtype=np.float64)


def background_click(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A pixel outside every object, or None when objects cover the image."""
    ys, xs = np.nonzero(labels == 0)
    if not len(xs):
        return None
    i = int(rng.integers(len(xs)))
    return np.array([xs[i], ys[i]], dtype=np.float64)


def tight_box(mask: np.ndarray) -> np.ndarray:
    """The mask's bounding box (x0, y0, x1, y1), edges on pixel borders."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def jittered_box(
    mask: np.ndarray, rng: np.random.Generator, noise: float = 0.1, max_pixels: float = 20.0
) -> np.ndarray:
    """The bounding box with each edge moved by up to `noise` of the box side (at most
    `max_pixels`), as a hand-drawn box would be; clipped to the image."""
    box = tight_box(mask)
    w, h = box[2] - box[0], box[3] - box[1]
    scale = np.minimum(noise * np.array([w, h, w, h]), max_pixels)
    box = box + rng.normal(0.0, 1.0, 4) * scale
    height, width = mask.shape
    box = np.clip(box, 0, [width, height, width, height])
    x0, x1 = sorted((box[0], box[2]))
    y0, y1 = sorted((box[1], box[3]))
    return np.array([x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)])


def correction_click(
    predicted: np.ndarray, target: np.ndarray, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, int] | None:
    """The next click a user makes: in the larger error (missed -> positive, extra -> negative),
    at the centre of its error region (rng given: half of the time anywhere in it).

    None when the prediction is exact.
    """
    missed = target & ~predicted
    extra = predicted & ~target
    n_missed, n_extra = int(missed.sum()), int(extra.sum())
    if n_missed == 0 and n_extra == 0:
        return None
    error, label = (missed, 1) if n_missed >= n_extra else (extra, 0)
    if rng is not None and rng.random() < 0.5:
        ys, xs = np.nonzero(error)
        i = int(rng.integers(len(xs)))
        return np.array([xs[i], ys[i]], dtype=np.float64), label
    return centre_click(error), label
