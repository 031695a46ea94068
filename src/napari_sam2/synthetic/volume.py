"""z-stacks of 3-D nuclei: ellipsoids with irregular surfaces, blurred more along z than across."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from . import _texture
from ._blobs import Blobs, random_blobs
from ._optics import Acquisition, background, blur, camera
from ._raster import keep_largest, sequential_lut, wobble
from ._render import default_radius, nucleus_levels

BANK_3D = (32, 128, 128)  # shape of the periodic 3-D chromatin texture, pixels


def _place_3d(
    rng: np.random.Generator,
    ext: np.ndarray,
    hz: np.ndarray,
    depth: float,
    shape: tuple[int, int],
    tries: int = 40,
) -> tuple[np.ndarray, np.ndarray]:
    """Centres (z, y, x), pixels, of objects whose bounding cylinders (radius ext, half height hz)
    are disjoint, and which objects fit."""
    kept: list[int] = []
    centres = np.zeros((0, 3))
    for i in range(len(ext)):
        zr = max(0.0, depth / 2 - 0.5 * hz[i])
        cand = np.stack(
            [
                rng.uniform(depth / 2 - zr, depth / 2 + zr, tries),
                rng.uniform(0, shape[0], tries),
                rng.uniform(0, shape[1], tries),
            ],
            axis=1,
        )
        k = np.array(kept, dtype=int)
        apart_z = np.abs(cand[:, None, 0] - centres[None, :, 0]) >= 1.05 * (hz[i] + hz[k])
        apart_xy = np.hypot(
            cand[:, None, 1] - centres[None, :, 1], cand[:, None, 2] - centres[None, :, 2]
        ) >= 1.05 * (ext[i] + ext[k])
        ok = np.flatnonzero((apart_z | apart_xy).all(axis=1))
        if len(ok):
            kept.append(i)
            centres = np.vstack([centres, cand[ok[0]]])
    return centres, np.array(kept, dtype=int)


def _ellipsoid_distance(
    blobs: Blobs,
    height: np.ndarray,
    i: int,
    z: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    zc: float,
    z_scale: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalised distance to nucleus i over a voxel grid, and local (w, v, u) pixel coordinates."""
    dy, dx = y - blobs.centre[i, 0], x - blobs.centre[i, 1]
    w = (z - zc) * z_scale
    c, s = np.cos(blobs.angle[i]), np.sin(blobs.angle[i])
    u, v = dx * c + dy * s, dy * c - dx * s
    a, b = blobs.axes[i]
    rho = np.maximum(np.sqrt(u**2 + v**2 + w**2), 1e-6)
    d = np.sqrt((u / a) ** 2 + (v / b) ** 2 + (w / height[i]) ** 2) / wobble(
        blobs.amp[i], blobs.phase[i], (u + 1j * v) / rho
    )
    return d.astype(np.float32), w, v, u


def _bank_3d(
    bank: np.ndarray, w: np.ndarray, v: np.ndarray, u: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    """Values of a periodic 3-D texture bank at local coordinates shifted by offset."""
    idx = [
        (np.rint(c).astype(np.int64) + o) % n
        for c, o, n in zip((w, v, u), offset, bank.shape, strict=True)
    ]
    return bank[idx[0], idx[1], idx[2]]


def _draw(
    blobs: Blobs,
    height: np.ndarray,
    zc: np.ndarray,
    level: np.ndarray,
    n_slices: int,
    shape: tuple[int, int],
    z_scale: float,
    bank: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (index + 1) and in-focus intensity of every voxel."""
    labels = np.zeros((n_slices, *shape), np.int32)
    signal = np.zeros((n_slices, *shape), np.float32)
    offsets = rng.integers(0, 1 << 12, (len(blobs), 3))
    ext = blobs.extent()
    for i in range(len(blobs)):
        zr = height[i] * (1 + np.abs(blobs.amp[i]).sum()) / z_scale + 1
        lo = np.maximum(np.floor([zc[i] - zr, *(blobs.centre[i] - ext[i])]).astype(int), 0)
        hi = np.minimum(
            np.ceil([zc[i] + zr, *(blobs.centre[i] + ext[i])]).astype(int) + 1, (n_slices, *shape)
        )
        if (hi <= lo).any():
            continue
        z, y, x = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        d, w, v, u = _ellipsoid_distance(blobs, height, i, z, y, x, zc[i], z_scale)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        win = (d <= 1) & (labels[box] == 0)
        labels[box][win] = i + 1
        tex = _bank_3d(bank, *(np.broadcast_to(c, d.shape)[win] for c in (w, v, u)), offsets[i])
        signal[box][win] = level[i] * (1 - 0.4 * d[win] ** 2) * tex
    return labels, signal


def _clean_slices(labels: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """Keep the largest piece of every nucleus in each slice, and darken the pieces dropped."""
    kept = np.array([keep_largest(s) for s in labels], labels.dtype).reshape(labels.shape)
    signal[kept != labels] = 0
    return kept


def zstack(
    n_slices: int = 32,
    shape: tuple[int, int] = (256, 256),
    n_nuclei: int = 12,
    seed: int = 0,
    dtype: DTypeLike = np.uint16,
    *,
    z_scale: float = 2.0,
    radius: tuple[float, float] | None = None,
    axial_blur: float = 1.5,
    attenuation: float = 0.01,
    acquisition: Acquisition | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(stack (Z, H, W), labels (Z, H, W)) of 3-D nuclei; z_scale is the slice spacing in pixels."""
    rng = np.random.default_rng(seed)
    acq = acquisition or Acquisition(haze=0.3)
    blobs = random_blobs(
        rng,
        n_nuclei,
        radius or default_radius(shape, n_nuclei, 0.3),
        elongation=0.4,
        irregularity=0.08,
    )
    height = blobs.mean_radius() * rng.uniform(0.55, 0.85, n_nuclei)
    hz = height * (1 + np.abs(blobs.amp).sum(axis=1)) + z_scale
    centres, kept = _place_3d(rng, blobs.extent(), hz, n_slices * z_scale, shape)
    blobs, height = blobs.take(kept), height[kept]
    blobs.centre = centres[:, 1:]
    bank = _texture.chromatin(rng, shape=BANK_3D)
    labels, signal = _draw(
        blobs,
        height,
        centres[:, 0] / z_scale,
        nucleus_levels(rng, len(blobs)),
        n_slices,
        shape,
        z_scale,
        bank,
        rng,
    )
    labels = _clean_slices(labels, signal)
    signal *= np.exp(-attenuation * z_scale * np.arange(n_slices, dtype=np.float32))[:, None, None]
    sharp = blur(signal, (axial_blur, acq.blur, acq.blur))
    wide = blur(signal, (3 * axial_blur + 2, 6 * acq.blur + 4, 6 * acq.blur + 4))
    expected = (
        (1 - acq.haze) * sharp
        + acq.haze * wide
        + background(rng, shape, acq.background, acq.unevenness)
    )
    return camera(expected, rng, acq, dtype), sequential_lut(labels)[labels]
