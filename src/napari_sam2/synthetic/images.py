"""Single fluorescence images: nuclei, and cells with a nucleus inside."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from . import _texture
from ._blobs import Blobs, place, random_blobs
from ._optics import Acquisition, background, camera, defocus
from ._raster import Raster, clean, rasterize, sequential_lut
from ._render import default_radius, nuclei_inside, nuclei_layout, nucleus_levels, shade

ROUGHNESS = 0.06  # relative amplitude of the fine irregularity of cell outlines
ROUGH_SCALE = 5.0  # its correlation length, pixels
SEAM = 0.55  # relative cytoplasm intensity on the outermost pixels of a cell


def nuclei_image(
    shape: tuple[int, int] = (384, 384),
    n_objects: int = 12,
    seed: int = 0,
    dtype: DTypeLike = np.uint16,
    *,
    touching: bool = False,
    radius: tuple[float, float] | None = None,
    irregularity: float = 0.12,
    acquisition: Acquisition | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(image, labels): textured nuclei, apart or in touching clumps, on uneven noisy background."""
    rng = np.random.default_rng(seed)
    acq = acquisition or Acquisition()
    radius = radius or default_radius(shape, n_objects, 0.15)
    blobs = nuclei_layout(
        rng, (0, shape[0], 0, shape[1]), n_objects, radius, touching, irregularity
    )
    raster = clean(rasterize(blobs, shape))
    signal = shade(raster, nucleus_levels(rng, len(blobs)), blobs.offset, _texture.chromatin(rng))
    image = camera(
        defocus(signal, acq) + background(rng, shape, acq.background, acq.unevenness),
        rng,
        acq,
        dtype,
    )
    return image, sequential_lut(raster.labels)[raster.labels]


def cell_layout(
    rng: np.random.Generator,
    shape: tuple[int, int],
    n: int,
    touching: bool,
    radius: tuple[float, float] | None,
) -> Blobs:
    """Cells packed edge to edge over (and beyond) the image, or scattered apart within it;
    when touching, a given radius sets the packing density and n only matters when it is 0."""
    h, w = shape
    if not touching:
        blobs = random_blobs(
            rng, n, radius or default_radius(shape, n, 0.3), elongation=0.8, irregularity=0.25
        )
        return place(rng, blobs, (0, h, 0, w), spacing=1.1)
    s = np.sqrt(h * w / max(n, 1)) if radius is None else 2.0 * float(np.mean(radius))
    pad = 0.6 * s
    total = int(round((h + 2 * pad) * (w + 2 * pad) / s**2)) if n else 0
    blobs = random_blobs(rng, total, (0.4 * s, 0.55 * s), elongation=0.8, irregularity=0.25)
    blobs = place(rng, blobs, (-pad, h + pad, -pad, w + pad), spacing=0.75)
    return _grow_to_neighbours(rng, blobs)


def _grow_to_neighbours(rng: np.random.Generator, blobs: Blobs) -> Blobs:
    """Scale each cell to 0.6..0.85 of its nearest neighbour distance, so that neighbours touch."""
    if len(blobs) < 2:
        return blobs
    d = np.hypot(*(blobs.centre[:, None, :] - blobs.centre[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    scale = rng.uniform(0.6, 0.85, len(blobs)) * d.min(axis=1) / blobs.mean_radius()
    blobs.axes = blobs.axes * scale[:, None]
    return blobs


def outline(labels: np.ndarray) -> np.ndarray:
    """Object pixels with a 4-neighbour of another label (or background)."""
    edge = np.zeros(labels.shape, bool)
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge & (labels > 0)


@dataclass(frozen=True)
class Stain:
    """Texture banks of a cell stain, and nucleus brightness relative to cytoplasm (one channel)."""

    cytoplasm: np.ndarray
    chromatin: np.ndarray
    rough: np.ndarray
    ratio: float


def random_stain(rng: np.random.Generator) -> Stain:
    """A cytoplasm stain that is excluded from the nucleus (darker) or enriched in it (brighter)."""
    ratio = float(rng.choice([rng.uniform(0.25, 0.55), rng.uniform(1.5, 2.5)]))
    return Stain(
        _texture.cytoplasm(rng, 0.2),
        _texture.chromatin(rng),
        _texture.smooth_noise(rng, ROUGH_SCALE),
        ratio,
    )


def cell_rasters(
    cells: Blobs, nuclei: Blobs, shape: tuple[int, int], stain: Stain
) -> tuple[Raster, Raster]:
    """Rasters of the cells (rough outlines) and of their nuclei, each clipped to its cell."""
    cell_raster = clean(rasterize(cells, shape, stain.rough, ROUGHNESS))
    nuc = rasterize(nuclei, shape)
    nuc.labels = np.where(nuc.labels == cell_raster.labels, nuc.labels, 0)
    return cell_raster, clean(nuc)


def cell_signal(
    cells: Raster,
    nuclei: Raster,
    level: np.ndarray,
    offsets: tuple[np.ndarray, np.ndarray],
    stain: Stain,
    nucleus_level: np.ndarray | None = None,
) -> np.ndarray:
    """Cytoplasm stain with the nucleus darker or brighter; given nucleus_level, two channels
    (cytoplasm, nuclear stain)."""
    cyto = shade(cells, level, offsets[0], stain.cytoplasm, edge=0.55)
    cyto = np.where(outline(cells.labels), SEAM * cyto, cyto)
    if nucleus_level is not None:
        stained = shade(nuclei, nucleus_level, offsets[1], stain.chromatin)
        return np.stack([np.where(nuclei.labels > 0, 0.6 * cyto, cyto), stained])
    inner = shade(nuclei, level * np.float32(stain.ratio), offsets[1], stain.chromatin, edge=0.2)
    return np.where(nuclei.labels > 0, inner, cyto)


def cell_levels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Cytoplasm brightness of n cells."""
    return rng.uniform(0.2, 0.7, n).astype(np.float32)


def cells_image(
    shape: tuple[int, int] = (384, 384),
    n_cells: int = 30,
    seed: int = 0,
    dtype: DTypeLike = np.uint16,
    *,
    touching: bool = True,
    channels: int = 1,
    radius: tuple[float, float] | None = None,
    acquisition: Acquisition | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, cell labels, nucleus labels); a nucleus has its cell's id; channels=2: (2, H, W).
    Touching cells tile the image at the density of n_cells, or of `radius` when given."""
    if channels not in (1, 2):
        raise ValueError("channels must be 1 or 2")
    rng = np.random.default_rng(seed)
    acq = acquisition or Acquisition()
    cells = cell_layout(rng, shape, n_cells, touching, radius)
    nuclei = nuclei_inside(rng, cells)
    stain = random_stain(rng)
    cell_raster, nuc_raster = cell_rasters(cells, nuclei, shape, stain)
    nucleus_level = nucleus_levels(rng, len(cells)) if channels == 2 else None
    signal = cell_signal(
        cell_raster,
        nuc_raster,
        cell_levels(rng, len(cells)),
        (cells.offset, nuclei.offset),
        stain,
        nucleus_level,
    )
    expected = defocus(signal, acq) + background(rng, shape, acq.background, acq.unevenness)
    lut = sequential_lut(cell_raster.labels)
    return camera(expected, rng, acq, dtype), lut[cell_raster.labels], lut[nuc_raster.labels]
