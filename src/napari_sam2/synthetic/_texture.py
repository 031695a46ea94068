"""Periodic texture banks read in each object's own coordinates, so texture moves with it."""

from __future__ import annotations

import numpy as np
from skimage.filters import gaussian

from ._blobs import BANK_SIZE


def smooth_noise(
    rng: np.random.Generator, sigma: float, shape: tuple[int, ...] = (BANK_SIZE, BANK_SIZE)
) -> np.ndarray:
    """Periodic Gaussian-filtered white noise with zero mean and unit standard deviation."""
    field = gaussian(
        rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap", preserve_range=True
    )
    return ((field - field.mean()) / max(float(field.std()), 1e-6)).astype(np.float32)


def spots(
    rng: np.random.Generator,
    per_pixel: float,
    sigma: float,
    shape: tuple[int, ...] = (BANK_SIZE, BANK_SIZE),
) -> np.ndarray:
    """Periodic field of Gaussian spots of peak height 0.5..1."""
    n = rng.poisson(per_pixel * np.prod(shape))
    impulses = np.zeros(shape, np.float32)
    where = tuple(rng.integers(0, s, n) for s in shape)
    np.add.at(impulses, where, rng.uniform(0.5, 1.0, n).astype(np.float32))
    peak = (2 * np.pi * sigma**2) ** (len(shape) / 2)
    return gaussian(impulses, sigma, mode="wrap", preserve_range=True).astype(
        np.float32
    ) * np.float32(peak)


def chromatin(
    rng: np.random.Generator, grain: float = 0.25, shape: tuple[int, ...] = (BANK_SIZE, BANK_SIZE)
) -> np.ndarray:
    """Multiplicative nuclear texture (mean 1): granular chromatin, bright foci, dark nucleoli."""
    fine = smooth_noise(rng, 1.0, shape)
    coarse = smooth_noise(rng, 3.0, shape)
    foci = spots(rng, 1 / 500, 1.3, shape)
    nucleoli = spots(rng, 1 / 1000, 2.8, shape)
    factor = (
        np.exp(grain * (0.6 * fine + 0.8 * coarse))
        * (1 + 1.5 * grain * foci)
        * (1 - 0.6 * np.minimum(nucleoli, 1))
    )
    return (factor / factor.mean()).astype(np.float32)


def cytoplasm(rng: np.random.Generator, grain: float = 0.3) -> np.ndarray:
    """Multiplicative cytoplasm texture (mean 1): granules, bright vesicles, slow variations."""
    fine = smooth_noise(rng, 1.3)
    slow = smooth_noise(rng, 7.0)
    vesicles = spots(rng, 1 / 300, 1.0)
    factor = np.exp(grain * (0.8 * fine + 0.7 * slow)) * (1 + 1.2 * grain * vesicles)
    return (factor / factor.mean()).astype(np.float32)
