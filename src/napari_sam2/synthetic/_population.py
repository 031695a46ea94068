"""A population of moving, deforming and dividing cells: the state behind a time-lapse movie."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ._blobs import BANK_SIZE, Blobs, concat

STRETCH = 0.4  # a dividing cell's major axis grows by this fraction before it splits


@dataclass
class Population:
    """Per-cell state; `nucleus` (cells style only): nucleus geometry in its cell's own frame."""

    body: Blobs
    base_axes: np.ndarray  # (n, 2) axes a cell relaxes to
    base_amp: np.ndarray  # (n, K) outline irregularity it relaxes to
    vel: np.ndarray  # (n, 2) pixels per frame
    spin: np.ndarray  # (n,) radians per frame
    level: np.ndarray  # (n,) brightness
    boost: np.ndarray  # (n,) transient brightness factor after a division
    age: np.ndarray  # (n,) frames since birth
    countdown: np.ndarray  # (n,) frames of division left, 0 when not dividing
    track: np.ndarray  # (n,) track id, 0 until first visible
    mother: np.ndarray  # (n,) track id of the mother, 0 if none
    nucleus: Blobs | None = None

    def __len__(self) -> int:
        return len(self.level)

    def take(self, index: np.ndarray) -> Population:
        """The cells selected by an index or boolean mask."""
        return Population(**{f.name: _take(getattr(self, f.name), index) for f in fields(self)})


def _take(value: object, index: np.ndarray) -> object:
    return (
        None if value is None else value.take(index) if isinstance(value, Blobs) else value[index]
    )


def _join(a: object, b: object) -> object:
    if a is None:
        return None
    return concat(a, b) if isinstance(a, Blobs) else np.concatenate([a, b])


def merge(a: Population, b: Population) -> Population:
    """Both populations, a first."""
    return Population(**{f.name: _join(getattr(a, f.name), getattr(b, f.name)) for f in fields(a)})


def born(
    rng: np.random.Generator, body: Blobs, level: np.ndarray, speed: float, nucleus: Blobs | None
) -> Population:
    """Fresh cells with the given geometry, random velocities and no track yet."""
    n = len(body)
    return Population(
        body=body,
        base_axes=body.axes.copy(),
        base_amp=body.amp.copy(),
        vel=rng.normal(0, speed / np.sqrt(2), (n, 2)),
        spin=rng.normal(0, 0.01, n),
        level=np.asarray(level, np.float32),
        boost=np.ones(n, np.float32),
        age=rng.integers(0, 20, n),
        countdown=np.zeros(n, int),
        track=np.zeros(n, int),
        mother=np.zeros(n, int),
        nucleus=nucleus,
    )


def repulsion(pop: Population, reach: float, strength: float = 0.5) -> np.ndarray:
    """Displacement pushing apart cells whose centres are closer than reach * (r_i + r_j)."""
    if len(pop) < 2:
        return np.zeros((len(pop), 2))
    diff = pop.body.centre[:, None, :] - pop.body.centre[None, :, :]
    dist = np.maximum(np.hypot(diff[..., 0], diff[..., 1]), 1e-6)
    r = pop.body.mean_radius()
    overlap = np.clip(reach * (r[:, None] + r[None, :]) - dist, 0, None)
    np.fill_diagonal(overlap, 0)
    return strength * ((overlap / dist)[..., None] * diff).sum(axis=1)


def move(
    pop: Population,
    rng: np.random.Generator,
    speed: float,
    momentum: float,
    push: np.ndarray,
    drift: np.ndarray,
    max_step: float,
) -> None:
    """Random walk with momentum plus push and drift, each step at most max_step pixels."""
    noise = rng.normal(0, speed * np.sqrt((1 - momentum**2) / 2), pop.vel.shape)
    pop.vel = momentum * pop.vel + noise
    step = pop.vel + push + drift
    norm = np.hypot(step[:, 0], step[:, 1])
    step *= np.minimum(1.0, max_step / np.maximum(norm, 1e-9))[:, None]
    pop.body.centre = pop.body.centre + step


def deform(pop: Population, rng: np.random.Generator, rate: float = 0.15) -> None:
    """Slow shape change: axes and outline relax to their base with noise; cells turn a little."""
    n, k = pop.body.amp.shape
    pop.body.axes = (
        pop.body.axes
        + rate * (pop.base_axes - pop.body.axes)
        + rng.normal(0, 0.015, (n, 2)) * pop.base_axes
    )
    noise = rng.normal(0, 0.02, (n, k)) / np.arange(2, 2 + k)
    pop.body.amp = np.abs(pop.body.amp + rate * (pop.base_amp - pop.body.amp) + noise)
    pop.body.phase = pop.body.phase + rng.normal(0, 0.06, (n, k))
    pop.spin = 0.9 * pop.spin + rng.normal(0, 0.008, n)
    pop.body.angle = pop.body.angle + pop.spin
    pop.boost = 1 + 0.8 * (pop.boost - 1)
    pop.age = pop.age + 1


def start_divisions(
    pop: Population, rng: np.random.Generator, rate: float, frames: int, min_age: int = 8
) -> None:
    """Cells old enough start dividing with probability `rate` per frame."""
    start = (pop.countdown == 0) & (pop.age >= min_age) & (rng.random(len(pop)) < rate)
    pop.countdown[start] = frames


def progress(pop: Population, frames: int) -> np.ndarray:
    """How far each cell is through its division, 0 (not dividing) to 1 (about to split)."""
    return np.where(pop.countdown > 0, (frames - pop.countdown + 1) / frames, 0.0)


def drawn(pop: Population, frames: int) -> Blobs:
    """Geometry to draw: dividing cells round up and stretch along their major axis."""
    p = progress(pop, frames)
    body = pop.body.copy()
    body.axes = body.axes * np.stack([1 + STRETCH * p, 1 - 0.15 * p], axis=1)
    body.amp = body.amp * (1 - p)[:, None]
    return body


def split(pop: Population, rng: np.random.Generator) -> Population:
    """Count divisions down; replace each cell drawn fully stretched by its two daughters."""
    dividing = pop.countdown > 0
    finished = pop.countdown == 1
    pop.countdown[dividing] -= 1
    if not finished.any():
        return pop
    return merge(pop.take(~finished), daughters(pop.take(finished), rng))


def daughters(mothers: Population, rng: np.random.Generator) -> Population:
    """Two daughters per mother, half its area, at either end of its major axis, moving apart."""
    n = len(mothers)
    both = mothers.take(np.repeat(np.arange(n), 2))
    sign = np.tile([1.0, -1.0], n)
    c, s = np.cos(both.body.angle), np.sin(both.body.angle)
    axis = np.stack([s, c], axis=1) * sign[:, None]
    both.body.centre = both.body.centre + axis * (0.5 * (1 + STRETCH) * both.body.axes[:, :1])
    both.base_axes = both.base_axes * rng.uniform(0.9, 1.05, (2 * n, 1))
    both.body.axes = both.base_axes * 0.72
    both.body.angle = both.body.angle + np.pi / 2 + rng.normal(0, 0.3, 2 * n)
    both.body.phase = rng.uniform(0, 2 * np.pi, both.body.phase.shape)
    both.body.offset = rng.integers(0, BANK_SIZE, (2 * n, 2))
    if both.nucleus is not None:
        both.nucleus.offset = rng.integers(0, BANK_SIZE, (2 * n, 2))
    both.vel = 0.5 * both.vel + 0.8 * axis
    both.level = both.level * rng.uniform(0.9, 1.1, 2 * n).astype(np.float32)
    both.boost = np.full(2 * n, 1.3, np.float32)
    both.mother, both.track = both.track.copy(), np.zeros(2 * n, int)
    both.age[:] = 0
    both.countdown[:] = 0
    return both
