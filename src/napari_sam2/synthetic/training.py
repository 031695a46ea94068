"""Random image/label pairs in a mix of styles, for training segmentation models."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ._optics import random_acquisition
from .images import cells_image, nuclei_image
from .volume import zstack

STYLES = ("nuclei", "clumps", "cells", "sparse_cells", "zslice")


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _count(shape: tuple[int, int], radius: float, fill: float, cap: int = 150) -> int:
    """How many objects of this radius cover about `fill` of the image."""
    return int(np.clip(round(fill * shape[0] * shape[1] / (np.pi * radius**2)), 1, cap))


def _nuclei(
    rng: np.random.Generator, shape: tuple[int, int], touching: bool
) -> tuple[np.ndarray, np.ndarray]:
    r = _log_uniform(rng, 4, 0.12 * min(shape) + 4)
    n = _count(shape, r, rng.uniform(0.05, 0.35))
    seed = int(rng.integers(2**63))
    return nuclei_image(
        shape,
        n,
        seed,
        np.float32,
        touching=touching,
        radius=(0.75 * r, 1.25 * r),
        irregularity=rng.uniform(0.03, 0.25),
        acquisition=random_acquisition(rng),
    )


def _cells(
    rng: np.random.Generator, shape: tuple[int, int], touching: bool
) -> tuple[np.ndarray, np.ndarray]:
    r = _log_uniform(rng, 8, 0.2 * min(shape) + 8)
    n = _count(shape, r, 4 / np.pi if touching else rng.uniform(0.1, 0.4))
    seed = int(rng.integers(2**63))
    image, cells, _ = cells_image(
        shape,
        n,
        seed,
        np.float32,
        touching=touching,
        radius=(0.8 * r, 1.2 * r),
        acquisition=random_acquisition(rng),
    )
    return image, cells


def _zslice(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    r = _log_uniform(rng, 5, 0.12 * min(shape) + 5)
    n = _count(shape, r, rng.uniform(0.1, 0.5))
    stack, labels = zstack(
        9,
        shape,
        n,
        int(rng.integers(2**63)),
        np.float32,
        z_scale=rng.uniform(1.0, 3.0),
        radius=(0.75 * r, 1.25 * r),
        acquisition=random_acquisition(rng),
    )
    z = int(rng.integers(2, 7))
    return stack[z], labels[z]


def _normalise(image: np.ndarray, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """Percentile-stretched to [0, 1]."""
    lo, hi = np.percentile(image, (low, high))
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def sample(
    rng: np.random.Generator, shape: tuple[int, int] = (256, 256), style: str = "nuclei"
) -> tuple[np.ndarray, np.ndarray]:
    """One (image float32 in [0, 1], labels uint32) pair of a style from STYLES."""
    if style == "zslice":
        image, labels = _zslice(rng, shape)
    elif style in ("nuclei", "clumps"):
        image, labels = _nuclei(rng, shape, touching=style == "clumps")
    elif style in ("cells", "sparse_cells"):
        image, labels = _cells(rng, shape, touching=style == "cells")
    else:
        raise ValueError(f"unknown style {style!r}; choose from {STYLES}")
    return _normalise(image), labels.astype(np.uint32)


def sample_batch(
    rng: np.random.Generator,
    batch_size: int = 8,
    shape: tuple[int, int] = (256, 256),
    styles: Sequence[str] = STYLES,
) -> tuple[np.ndarray, np.ndarray]:
    """(images (B, H, W) float32 in [0, 1], labels (B, H, W) uint32), each in a random style."""
    pairs = [sample(rng, shape, styles[int(rng.integers(len(styles)))]) for _ in range(batch_size)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def training_samples(
    seed: int = 0, shape: tuple[int, int] = (256, 256), styles: Sequence[str] = STYLES
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless (image, labels) pairs in random styles, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    while True:
        yield sample(rng, shape, styles[int(rng.integers(len(styles)))])
