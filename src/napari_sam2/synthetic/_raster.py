"""Drawing star-shaped objects into a label map in which touching objects share a boundary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.measure import label as connected_components

from ._blobs import BANK_SIZE, Blobs


@dataclass
class Raster:
    """Owner of each pixel (index + 1, 0 = nobody), its normalised distance, local coordinates."""

    labels: np.ndarray  # (H, W) int32
    dist: np.ndarray  # (H, W) float32, 0 at the owner's centre, 1 on its outline
    u: np.ndarray  # (H, W) int32, pixel coordinates along the owner's major axis
    v: np.ndarray  # (H, W) int32, and along its minor axis


def bank_lookup(bank: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Values of a periodic texture bank at integer coordinates."""
    m = BANK_SIZE - 1
    return bank[y.astype(np.int32) & m, x.astype(np.int32) & m]


def wobble(amp: np.ndarray, phase: np.ndarray, z: np.ndarray) -> np.ndarray:
    """1 + sum_k amp_k Re(e^(i phase_k) z^(k+2)): radial noise for directions z = e^(i theta)."""
    coef = (amp * np.exp(1j * phase)).astype(np.complex64)
    power = z * z
    total = coef[0] * power
    for c in coef[1:]:
        power = power * z
        total = total + c * power
    return 1.0 + total.real


def normalised_distance(blobs: Blobs, i: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Ellipse distance of local points (u, v) to object i, divided by its radial noise factor."""
    a, b = blobs.axes[i]
    rho = np.maximum(np.hypot(u, v), np.float32(1e-6))
    return np.sqrt((u / np.float32(a)) ** 2 + (v / np.float32(b)) ** 2) / wobble(
        blobs.amp[i], blobs.phase[i], (u + 1j * v) / rho
    )


def _local_frame(
    blobs: Blobs, i: int, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the pixels of a box along object i's major (u) and minor (v) axes."""
    y0, y1, x0, x1 = box
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(blobs.centre[i, 0])
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(blobs.centre[i, 1])
    c, s = np.float32(np.cos(blobs.angle[i])), np.float32(np.sin(blobs.angle[i]))
    return dx * c + dy * s, dy * c - dx * s


def half_extents(blobs: Blobs, scale: float = 1.0) -> np.ndarray:
    """Half height and half width (n, 2) of a box surely containing each object grown by scale."""
    a, b = blobs.axes[:, 0], blobs.axes[:, 1]
    c2, s2 = np.cos(blobs.angle) ** 2, np.sin(blobs.angle) ** 2
    half = np.sqrt(np.stack([a**2 * s2 + b**2 * c2, a**2 * c2 + b**2 * s2], axis=1))
    return half * (scale * (1.0 + np.abs(blobs.amp).sum(axis=1)))[:, None] + 1.0


def _box(centre: np.ndarray, half: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixel box centre +- half, clipped to the image (may be empty)."""
    y0, x0 = np.floor(centre - half).astype(int)
    y1, x1 = np.ceil(centre + half).astype(int) + 1
    return max(y0, 0), min(y1, shape[0]), max(x0, 0), min(x1, shape[1])


def rasterize(
    blobs: Blobs,
    shape: tuple[int, int],
    rough_bank: np.ndarray | None = None,
    roughness: float = 0.0,
    reach: float = 1.0,
) -> Raster:
    """Give each pixel to the object with the smallest normalised distance, if that is <= reach."""
    labels = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf, np.float32)
    u_all = np.zeros(shape, np.int32)
    v_all = np.zeros(shape, np.int32)
    half = half_extents(blobs, reach * (1.0 + 3.0 * roughness))
    for i in range(len(blobs)):
        box = _box(blobs.centre[i], half[i], shape)
        if box[0] >= box[1] or box[2] >= box[3]:
            continue
        u, v = _local_frame(blobs, i, box)
        d = normalised_distance(blobs, i, u, v)
        if rough_bank is not None and roughness > 0:
            d *= 1.0 + roughness * bank_lookup(
                rough_bank, v + blobs.offset[i, 0], u + blobs.offset[i, 1]
            )
        region = (slice(box[0], box[1]), slice(box[2], box[3]))
        win = (d <= reach) & (d < best[region])
        np.copyto(best[region], d, where=win)
        np.copyto(labels[region], i + 1, where=win)
        np.copyto(u_all[region], u, where=win, casting="unsafe")
        np.copyto(v_all[region], v, where=win, casting="unsafe")
    return Raster(labels, np.where(labels > 0, best, np.float32(1.0)), u_all, v_all)


def clean(raster: Raster) -> Raster:
    """The raster with every object reduced to its largest connected piece."""
    raster.labels = keep_largest(raster.labels)
    return raster


def keep_largest(labels: np.ndarray) -> np.ndarray:
    """Drop every 4-connected piece of a label except its largest one."""
    pieces = connected_components(labels, background=0, connectivity=1)
    n = int(pieces.max())
    if n == 0:
        return labels
    owner = np.zeros(n + 1, labels.dtype)
    owner[pieces.ravel()] = labels.ravel()
    size = np.bincount(pieces.ravel(), minlength=n + 1)
    order = np.lexsort((size[1:], owner[1:])) + 1
    last = np.r_[owner[order][1:] != owner[order][:-1], True]
    keep = np.zeros(n + 1, bool)
    keep[order[last]] = True
    return np.where(keep[pieces], labels, 0).astype(labels.dtype)


def sequential_lut(labels: np.ndarray) -> np.ndarray:
    """Look-up table renumbering the ids present in labels to 1..n, keeping their order."""
    present = np.unique(labels)
    present = present[present > 0]
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.uint32)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.uint32)
    return lut
