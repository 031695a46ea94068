"""Time-lapse movies of moving, deforming, dividing cells, with Cell Tracking Challenge lineage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from . import _population as population
from . import _texture
from ._blobs import Blobs
from ._optics import Acquisition, background, camera, defocus
from ._raster import Raster, clean, rasterize
from ._render import default_radius, nuclei_inside, nuclei_layout, nucleus_levels, shade
from .images import cell_layout, cell_levels, cell_rasters, cell_signal, random_stain

Tracks = dict[int, tuple[int, int, int]]  # id -> (first frame, last frame, parent id or 0)


@dataclass(frozen=True)
class Motion:
    """How cells move, change shape and divide; distances in pixels per frame."""

    speed: float = 1.5  # rms speed of the random walk
    momentum: float = 0.8  # how much of its velocity a cell keeps from one frame to the next
    max_step: float = 4.0  # largest displacement of a centre between frames
    drift: tuple[float, float] | None = None  # common flow (dy, dx); None: random, 0.5 px per frame
    division_rate: float = 0.02  # chance per frame that a cell starts dividing
    division_frames: int = 4  # frames from rounding up to the split


def _relative_nuclei(nuclei: Blobs, cells: Blobs) -> Blobs:
    """Nuclei expressed in their cell's frame, in units of the cell's mean radius."""
    rel = nuclei.copy()
    r = cells.mean_radius()
    d = nuclei.centre - cells.centre
    c, s = np.cos(cells.angle), np.sin(cells.angle)
    rel.centre = (
        np.stack([d[:, 1] * c + d[:, 0] * s, d[:, 0] * c - d[:, 1] * s], axis=1) / r[:, None]
    )
    rel.axes = nuclei.axes / r[:, None]
    rel.angle = nuclei.angle - cells.angle
    return rel


def _world_nuclei(rel: Blobs, cells: Blobs) -> Blobs:
    """Nuclei placed back in the image from their cell-relative geometry."""
    nuc = rel.copy()
    r = cells.mean_radius()
    u, v = rel.centre[:, 0] * r, rel.centre[:, 1] * r
    c, s = np.cos(cells.angle), np.sin(cells.angle)
    nuc.centre = cells.centre + np.stack([u * s + v * c, u * c - v * s], axis=1)
    nuc.axes = rel.axes * r[:, None]
    nuc.angle = rel.angle + cells.angle
    return nuc


def _seed(
    rng: np.random.Generator,
    style: str,
    shape: tuple[int, int],
    n: int,
    margin: float,
    speed: float,
) -> population.Population:
    """Cells over the field of view and a margin around it, so that some enter and leave."""
    h, w = shape
    big = (int(h + 2 * margin), int(w + 2 * margin))
    total = int(round(n * big[0] * big[1] / (h * w)))
    if style == "nuclei":
        body = nuclei_layout(
            rng, (0, big[0], 0, big[1]), total, default_radius(shape, n, 0.12), touching=False
        )
        body.centre -= margin
        return population.born(rng, body, nucleus_levels(rng, len(body)), speed, None)
    body = cell_layout(rng, big, total, touching=True, radius=None)
    body.centre -= margin
    rel = _relative_nuclei(nuclei_inside(rng, body), body)
    return population.born(rng, body, cell_levels(rng, len(body)), speed, rel)


def _step(
    pop: population.Population,
    rng: np.random.Generator,
    motion: Motion,
    drift: np.ndarray,
    style: str,
) -> population.Population:
    """Advance one frame: split finished divisions, start new ones, move and deform."""
    pop = population.split(pop, rng)
    population.start_divisions(pop, rng, motion.division_rate, motion.division_frames)
    reach = 1.1 if style == "nuclei" else 0.8
    push = population.repulsion(pop, reach)
    population.move(pop, rng, motion.speed, motion.momentum, push, drift, motion.max_step)
    population.deform(pop, rng)
    return pop


def _inside(pop: population.Population, shape: tuple[int, int], margin: float) -> np.ndarray:
    """Which cells still have their centre within the margin around the field of view."""
    y, x = pop.body.centre[:, 0], pop.body.centre[:, 1]
    return (y > -margin) & (y < shape[0] + margin) & (x > -margin) & (x < shape[1] + margin)


def _refill(
    pop: population.Population,
    rng: np.random.Generator,
    target: int,
    shape: tuple[int, int],
    margin: float,
    speed: float,
) -> population.Population:
    """Top the population up to `target` with copies of random cells placed unseen in the margin."""
    if len(pop) >= target or len(pop) == 0:
        return pop
    new = pop.take(rng.integers(0, len(pop), target - len(pop)))
    h, w = shape
    centre = np.stack(
        [rng.uniform(-margin, h + margin, len(new)), rng.uniform(-margin, w + margin, len(new))],
        axis=1,
    )
    reach = 1.2 * new.body.extent()[:, None]
    outside = (
        (centre < -reach).any(axis=1)
        | (centre[:, 0] > h + reach[:, 0])
        | (centre[:, 1] > w + reach[:, 0])
    )
    gap = np.hypot(*(centre[:, None, :] - pop.body.centre[None, :, :]).transpose(2, 0, 1))
    free = (gap > reach + pop.body.extent()[None, :]).all(axis=1)
    new = new.take(outside & free)
    new.body.centre = centre[outside & free]
    fresh = population.born(
        rng, new.body, new.level * rng.uniform(0.8, 1.2, len(new)), speed, new.nucleus
    )
    fresh.body.offset = rng.integers(0, 1 << 16, fresh.body.offset.shape)
    if fresh.nucleus is not None:
        fresh.nucleus.offset = rng.integers(0, 1 << 16, fresh.nucleus.offset.shape)
    return population.merge(pop, fresh)


def _track(
    pop: population.Population, present: np.ndarray, t: int, tracks: dict[int, list[int]]
) -> None:
    """Give newly visible cells the next id (with their mother if she was seen the frame before)."""
    for i in present:
        if pop.track[i] == 0:
            new_id = len(tracks) + 1
            mother = int(pop.mother[i])
            parent = mother if mother and tracks[mother][1] == t - 1 else 0
            tracks[new_id] = [t, t, parent]
            pop.track[i] = new_id
        tracks[int(pop.track[i])][1] = t


class _Renderer:
    """Draws a population in one style with textures fixed for the whole movie."""

    def __init__(self, rng: np.random.Generator, style: str, shape: tuple[int, int]):
        self.style, self.shape = style, shape
        self.chromatin = _texture.chromatin(rng)
        self.stain = random_stain(rng) if style == "cells" else None

    def __call__(self, pop: population.Population, frames: int) -> tuple[Raster, np.ndarray]:
        """Raster (labels are population index + 1) and expected intensity of one frame."""
        body = population.drawn(pop, frames)
        level = pop.level * pop.boost
        if self.style == "nuclei":
            raster = clean(rasterize(body, self.shape))
            return raster, shade(raster, level, body.offset, self.chromatin)
        nuclei = _world_nuclei(pop.nucleus, body)
        cells, inner = cell_rasters(body, nuclei, self.shape, self.stain)
        return cells, cell_signal(cells, inner, level, (body.offset, nuclei.offset), self.stain)


def timelapse(
    n_frames: int = 30,
    shape: tuple[int, int] = (256, 256),
    n_cells: int = 20,
    seed: int = 0,
    dtype: DTypeLike = np.uint16,
    *,
    style: str = "nuclei",
    motion: Motion | None = None,
    bleaching: float = 0.02,
    acquisition: Acquisition | None = None,
) -> tuple[np.ndarray, np.ndarray, Tracks]:
    """(movie (T, H, W), labels (T, H, W), tracks id -> (first, last, parent)), nuclei or cells."""
    if style not in ("nuclei", "cells"):
        raise ValueError("style must be 'nuclei' or 'cells'")
    rng = np.random.default_rng(seed)
    motion, acq = motion or Motion(), acquisition or Acquisition()
    turn = rng.uniform(0, 2 * np.pi)
    drift = (
        np.array(motion.drift)
        if motion.drift is not None
        else 0.5 * np.array([np.sin(turn), np.cos(turn)])
    )
    margin = 2.5 * default_radius(shape, n_cells, 0.12 if style == "nuclei" else 0.6)[1]
    pop = _seed(rng, style, shape, n_cells, margin, motion.speed)
    render = _Renderer(rng, style, shape)
    labels = np.zeros((n_frames, *shape), np.uint32)
    signal = np.zeros((n_frames, *shape), np.float32)
    tracks: dict[int, list[int]] = {}
    target = len(pop)
    for t in range(n_frames):
        if t:
            pop = _step(pop, rng, motion, drift, style)
            pop = _refill(
                pop.take(_inside(pop, shape, margin)), rng, target, shape, margin, motion.speed
            )
        raster, signal[t] = render(pop, motion.division_frames)
        present = np.unique(raster.labels)
        present = present[present > 0] - 1
        _track(pop, present, t, tracks)
        labels[t] = np.r_[0, pop.track][raster.labels]
        seen = np.zeros(len(pop), bool)
        seen[present] = True
        pop = pop.take(seen | (pop.track == 0))
    fade = np.exp(-bleaching * np.arange(n_frames, dtype=np.float32))[:, None, None]
    expected = defocus(signal, acq) * fade + background(rng, shape, acq.background, acq.unevenness)
    movie = camera(expected, rng, acq, dtype)
    return movie, labels, {k: (v[0], v[1], v[2]) for k, v in tracks.items()}


def tracks_table(tracks: Tracks) -> np.ndarray:
    """Rows (id, first frame, last frame, parent) as in a Cell Tracking Challenge man_track.txt."""
    rows = [(i, *tracks[i]) for i in sorted(tracks)]
    return np.array(rows, dtype=np.int64).reshape(-1, 4)
