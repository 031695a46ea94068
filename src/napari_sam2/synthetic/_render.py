"""Turning a label map into fluorescence: per-object brightness, a dome profile and texture."""

from __future__ import annotations

import numpy as np

from ._blobs import Blobs, place, random_blobs
from ._raster import Raster, bank_lookup


def default_radius(shape: tuple[int, int], n: int, fill: float) -> tuple[float, float]:
    """Radius range at which n objects cover about `fill` of the image."""
    r = np.sqrt(fill * shape[0] * shape[1] / (np.pi * max(n, 1)))
    r = float(np.clip(r, 3.0, 0.2 * min(shape)))
    return 0.7 * r, 1.25 * r


def shade(
    raster: Raster, level: np.ndarray, offset: np.ndarray, bank: np.ndarray, edge: float = 0.4
) -> np.ndarray:
    """Object intensity: level * (1 - edge * d^2) * texture read in each object's own frame."""
    inside = raster.labels > 0
    idx = raster.labels[inside] - 1
    tex = bank_lookup(bank, raster.v[inside] + offset[idx, 0], raster.u[inside] + offset[idx, 1])
    out = np.zeros(raster.labels.shape, np.float32)
    out[inside] = level[idx] * (1 - edge * raster.dist[inside] ** 2) * tex
    return out


def nuclei_layout(
    rng: np.random.Generator,
    bounds: tuple[float, float, float, float],
    n: int,
    radius: tuple[float, float],
    touching: bool,
    irregularity: float = 0.12,
) -> Blobs:
    """Nuclei placed in bounds, either well apart or in touching clumps."""
    blobs = random_blobs(rng, n, radius, elongation=0.45, irregularity=irregularity)
    if touching:
        return place(rng, blobs, bounds, spacing=0.82, cluster=0.75)
    return place(rng, blobs, bounds, spacing=1.15)


def nucleus_levels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Brightness of n nuclei: mostly 0.45..0.85, a few bright (condensed or G2) ones."""
    level = rng.uniform(0.45, 0.85, n)
    bright = rng.random(n) < 0.12
    level[bright] = rng.uniform(0.9, 1.0, int(bright.sum()))
    return level.astype(np.float32)


def nuclei_inside(rng: np.random.Generator, cells: Blobs) -> Blobs:
    """One nucleus per cell, 35..50 % of its radius, a little off centre, roughly aligned."""
    n = len(cells)
    r = cells.mean_radius()[:, None] * rng.uniform(0.35, 0.5, (n, 1))
    nuclei = random_blobs(rng, n, (1.0, 1.0), elongation=0.35, irregularity=0.08)
    nuclei.axes = nuclei.axes * r
    turn = rng.uniform(0, 2 * np.pi, n)
    shift = cells.mean_radius() * rng.uniform(0, 0.22, n)
    nuclei.centre = cells.centre + np.stack([np.sin(turn), np.cos(turn)], axis=1) * shift[:, None]
    nuclei.angle = cells.angle + rng.normal(0, 0.3, n)
    return nuclei
