"""Star-shaped objects (ellipses with low-frequency radial noise) and their placement."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

N_HARMONICS = 4  # boundary harmonics of order 2..5 (order 1 would shift the centroid)
BANK_SIZE = 256  # side of every texture bank; a power of two so that indices wrap with a mask


@dataclass
class Blobs:
    """Star-shaped objects: centres (y, x), semi-axes (major, minor), rotation, outline noise."""

    centre: np.ndarray  # (n, 2) float, pixels
    axes: np.ndarray  # (n, 2) float, semi-axes along u and v
    angle: np.ndarray  # (n,) radians, direction of the u axis
    amp: np.ndarray  # (n, K) relative amplitudes of the boundary harmonics
    phase: np.ndarray  # (n, K) their phases
    offset: np.ndarray  # (n, 2) int, where each object reads the texture banks

    def __len__(self) -> int:
        return len(self.angle)

    def take(self, index: np.ndarray) -> Blobs:
        """The objects selected by an index or boolean mask."""
        return Blobs(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def copy(self) -> Blobs:
        """An independent copy."""
        return Blobs(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def extent(self) -> np.ndarray:
        """Radius of a disk that surely contains each object."""
        return self.axes.max(axis=1) * (1.0 + np.abs(self.amp).sum(axis=1)) + 1.0

    def mean_radius(self) -> np.ndarray:
        """Radius of the disk with the ellipse's area."""
        return np.sqrt(self.axes[:, 0] * self.axes[:, 1])


def concat(a: Blobs, b: Blobs) -> Blobs:
    """Both sets of objects, a first."""
    return Blobs(
        **{f.name: np.concatenate([getattr(a, f.name), getattr(b, f.name)]) for f in fields(a)}
    )


def random_blobs(
    rng: np.random.Generator,
    n: int,
    radius: tuple[float, float],
    elongation: float = 0.35,
    irregularity: float = 0.12,
) -> Blobs:
    """n objects: mean radius in `radius`, aspect up to 1 + elongation, outline noise."""
    r = rng.uniform(radius[0], radius[1], n)
    aspect = 1.0 + elongation * rng.beta(1.5, 2.5, n)
    axes = np.stack([r * np.sqrt(aspect), r / np.sqrt(aspect)], axis=1)
    order = np.arange(2, 2 + N_HARMONICS)
    amp = irregularity * rng.uniform(0.2, 1.0, (n, N_HARMONICS)) / order**1.2
    return Blobs(
        centre=np.zeros((n, 2)),
        axes=axes,
        angle=rng.uniform(0, np.pi, n),
        amp=amp,
        phase=rng.uniform(0, 2 * np.pi, (n, N_HARMONICS)),
        offset=rng.integers(0, BANK_SIZE, (n, 2)),
    )


def _first_free(candidates: np.ndarray, centres: np.ndarray, min_dist: np.ndarray) -> int:
    """Index of the first candidate at least min_dist from every placed centre, or -1."""
    if len(centres) == 0:
        return 0
    d = np.hypot(*(candidates[:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
    ok = np.flatnonzero((d >= min_dist[None, :]).all(axis=1))
    return int(ok[0]) if len(ok) else -1


def place(
    rng: np.random.Generator,
    blobs: Blobs,
    bounds: tuple[float, float, float, float],
    spacing: float,
    cluster: float = 0.0,
    tries: int = 40,
) -> Blobs:
    """The objects that fit in (y0, y1, x0, x1) with centres spacing * (r_i + r_j) apart (r: the
    bounding radius if spacing >= 1, else mean radius); `cluster`: chance to try next to one."""
    y0, y1, x0, x1 = bounds
    radius = blobs.extent() if spacing >= 1 else blobs.mean_radius()
    kept: list[int] = []
    centres = np.zeros((0, 2))
    for i in range(len(blobs)):
        cand = np.stack([rng.uniform(y0, y1, tries), rng.uniform(x0, x1, tries)], axis=1)
        if kept and cluster > 0:
            near = rng.random(tries) < cluster
            anchor = rng.integers(0, len(kept), tries)
            turn = rng.uniform(0, 2 * np.pi, tries)
            reach = (radius[i] + radius[np.array(kept)][anchor]) * max(spacing, 1.0) * 1.04
            step = np.stack([np.sin(turn), np.cos(turn)], axis=1) * reach[:, None]
            cand[near] = centres[anchor[near]] + step[near]
            cand = np.clip(cand, [y0, x0], [y1, x1])
        j = _first_free(cand, centres, spacing * (radius[i] + radius[np.array(kept, dtype=int)]))
        if j >= 0:
            kept.append(i)
            centres = np.vstack([centres, cand[j]])
    placed = blobs.take(np.array(kept, dtype=int))
    placed.centre = centres
    return placed
