"""Imaging: uneven background, blur, out-of-focus haze, shot and read noise, output dtype."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike
from skimage.filters import gaussian


@dataclass(frozen=True)
class Acquisition:
    """How a sample is imaged; intensities are relative to a bright object (1.0)."""

    blur: float = 1.2  # sigma of the in-focus point spread function, pixels
    haze: float = 0.0  # fraction of the light that arrives out of focus
    photons: float = 400.0  # photons detected at intensity 1.0
    read_noise: float = 2.0  # camera read noise, electrons
    background: float = 0.08  # background level
    unevenness: float = 0.4  # relative amplitude of the slow background variation


def random_acquisition(rng: np.random.Generator) -> Acquisition:
    """Imaging conditions from dim, hazy and noisy to bright and crisp."""
    return Acquisition(
        blur=float(rng.uniform(0.7, 2.2)),
        haze=float(rng.choice([0.0, rng.uniform(0.05, 0.5)])),
        photons=float(np.exp(rng.uniform(np.log(25), np.log(3000)))),
        read_noise=float(rng.uniform(1.0, 6.0)),
        background=float(rng.uniform(0.02, 0.2)),
        unevenness=float(rng.uniform(0.0, 0.7)),
    )


def background(
    rng: np.random.Generator, shape: tuple[int, int], level: float, unevenness: float
) -> np.ndarray:
    """Slowly varying background: a few long-wavelength waves and a vignette around level."""
    h, w = shape
    y = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    x = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    field = np.zeros(shape, np.float32)
    for _ in range(3):
        fy, fx = rng.normal(0, 1.2, 2)
        field += (
            np.cos(2 * np.pi * (fy * y + fx * x) + rng.uniform(0, 2 * np.pi)).astype(np.float32) / 3
        )
    cy, cx = rng.uniform(-0.3, 0.3, 2)
    vignette = (y - cy) ** 2 + (x - cx) ** 2
    return (level * (1 + unevenness * (0.6 * field - vignette))).astype(np.float32)


def blur(signal: np.ndarray, sigma: float | tuple[float, ...]) -> np.ndarray:
    """Gaussian blur over the last two axes (scalar sigma) or every axis (one sigma per axis)."""
    if np.isscalar(sigma):
        sigma = (0.0,) * (signal.ndim - 2) + (float(sigma),) * 2
    if max(sigma) <= 0:
        return signal
    return gaussian(signal, sigma, preserve_range=True, truncate=3.0, mode="nearest").astype(
        np.float32
    )


def defocus(signal: np.ndarray, acquisition: Acquisition) -> np.ndarray:
    """In-focus blur plus a broad out-of-focus halo carrying a fraction `haze` of the light."""
    sharp = blur(signal, acquisition.blur)
    if acquisition.haze <= 0:
        return sharp
    wide = blur(signal, 6.0 * acquisition.blur + 4.0)
    return (1 - acquisition.haze) * sharp + acquisition.haze * wide


def _electrons(
    expected: np.ndarray, rng: np.random.Generator, acquisition: Acquisition
) -> np.ndarray:
    """Photo-electrons with shot noise and read noise."""
    counts = rng.poisson(np.clip(expected, 0, None) * acquisition.photons).astype(np.float32)
    counts += rng.normal(0, acquisition.read_noise, counts.shape).astype(np.float32)
    return counts


def camera(
    expected: np.ndarray, rng: np.random.Generator, acquisition: Acquisition, dtype: DTypeLike
) -> np.ndarray:
    """Detect an expected intensity with noise; 1.0 becomes 160 in uint8, 4000 in other unsigned
    integers (plus an offset) and 1.0 in floats."""
    dtype = np.dtype(dtype)
    electrons = _electrons(expected, rng, acquisition)
    if dtype.kind == "f":
        return (electrons / acquisition.photons).astype(dtype)
    if dtype.kind != "u":
        raise ValueError(f"dtype must be unsigned integer or float, not {dtype}")
    offset, full = (8.0, 160.0) if dtype.itemsize == 1 else (100.0, 4000.0)
    adu = np.rint(offset + electrons * (full / acquisition.photons))
    return np.clip(adu, 0, np.iinfo(dtype).max).astype(dtype)
