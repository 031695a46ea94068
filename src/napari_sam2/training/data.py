"""Training data: synthetic microscopy, or a user's images with label images (TIFF folders).

Every source gives images as float32 [0, 1] (H, W) or (H, W, 3) arrays with uint32 label
images, drawn from a generator so that a run is reproducible from its seed and step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..images.model_input import prepare_image
from ..synthetic import STYLES, cells_image, nuclei_image, sample, timelapse
from ..synthetic._optics import random_acquisition
from ..synthetic.movie import Motion

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


@dataclass
class Clip:
    """A few consecutive frames (T, H, W[, 3]) float32 [0, 1] with labels (T, H, W)."""

    frames: np.ndarray
    labels: np.ndarray


class SyntheticData:
    """Endless synthetic nuclei, cells and z-slices (images) and time-lapse clips.

    A curriculum: early in training (`progress` near 0) most images hold only a few objects, so
    that a model trained from scratch first learns what an object is, then which one a prompt
    means; from 27% of the run on, sparse images make up a fifth.
    """

    def __init__(self, shape: tuple[int, int] = (256, 256), styles: Sequence[str] = STYLES) -> None:
        self.shape = shape
        self.styles = tuple(styles)
        self.has_clips = True

    def describe(self) -> str:
        return f"synthetic {self.shape[0]}x{self.shape[1]} ({', '.join(self.styles)}; time-lapse clips; few-object curriculum)"

    @staticmethod
    def sparse_share(progress: float) -> float:
        return max(0.2, 1.0 - 3.0 * progress)

    def image(self, rng: np.random.Generator, progress: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        if rng.random() < self.sparse_share(progress):
            return self._sparse(rng)
        style = self.styles[int(rng.integers(len(self.styles)))]
        return sample(rng, self.shape, style)

    def _sparse(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One to four nuclei or cells of random size."""
        n = int(rng.integers(1, 5))
        side = min(self.shape)
        r = float(np.exp(rng.uniform(np.log(6), np.log(0.15 * side + 6))))
        seed = int(rng.integers(2**62))
        if rng.random() < 0.7:
            image, labels = nuclei_image(self.shape, n, seed, np.float32, radius=(0.8 * r, 1.2 * r),
                                         acquisition=random_acquisition(rng))
        else:
            image, labels, _ = cells_image(self.shape, n, seed, np.float32, touching=False, radius=(1.2 * r, 1.8 * r),
                                           acquisition=random_acquisition(rng))
        lo, hi = np.percentile(image, (0.5, 99.8))
        return np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32), labels.astype(np.uint32)

    def clip(self, rng: np.random.Generator, n_frames: int, progress: float = 1.0) -> Clip:
        style = "nuclei" if rng.random() < 0.6 else "cells"
        most = 30 if style == "nuclei" else 14
        n_cells = int(rng.integers(3, 4 + int((most - 3) * min(1.0, 0.3 + progress))))
        motion = Motion(speed=float(rng.uniform(0.5, 3.0)), max_step=float(rng.uniform(2.0, 6.0)))
        movie, labels, _ = timelapse(
            n_frames,
            self.shape,
            n_cells,
            int(rng.integers(2**62)),
            np.float32,
            style=style,
            motion=motion,
            bleaching=float(rng.uniform(0.0, 0.05)),
            acquisition=random_acquisition(rng),
        )
        lo, hi = np.percentile(movie, (0.5, 99.8))
        frames = np.clip((movie - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
        return Clip(frames, labels.astype(np.uint32))


class FolderData:
    """A user's images and label images, paired by file name (`images/a.tif` with `labels/a.tif`).

    2-D files are images; 3-D files are stacks (Z or T first) that give both slices and clips.
    Intensities are normalised per file (1st-99.8th percentile), as the engine does by default.
    """

    def __init__(self, images: str | Path, labels: str | Path, files: Sequence[str] | None = None) -> None:
        self.images_dir, self.labels_dir = Path(images), Path(labels)
        for folder in (self.images_dir, self.labels_dir):
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is not a folder of images.")
        label_files = {p.stem: p for p in self.labels_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        pairs = []
        for image in sorted(self.images_dir.iterdir()):
            if image.suffix.lower() in IMAGE_SUFFIXES and (files is None or image.name in files):
                label = label_files.get(image.stem)
                if label is not None:
                    pairs.append((image, label))
        if not pairs:
            raise FileNotFoundError(
                f"No image in {self.images_dir} has a label image of the same name in "
                f"{self.labels_dir} (e.g. images/cell1.tif with labels/cell1.tif)."
            )
        self.pairs = pairs
        self._cache: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
        self.has_clips = any(self._load(i)[1].ndim == 3 for i in range(len(pairs)))

    def describe(self) -> str:
        return f"{len(self.pairs)} images from {self.images_dir} with labels from {self.labels_dir}"

    def split(self, fraction: float = 0.1) -> tuple[FolderData, FolderData]:
        """(training, validation) by file: every k-th image and every k-th stack is held out;
        a kind with a single file stays in training. With nothing held out, both are the same."""
        step = max(2, round(1 / fraction))
        held = []
        for kind in (False, True):
            names = [p[0].name for i, p in enumerate(self.pairs) if (self._load(i)[1].ndim == 3) == kind]
            if len(names) >= 2:
                held += names[::step]
        if not held:
            return self, self
        train = [p[0].name for p in self.pairs if p[0].name not in held]
        return (
            FolderData(self.images_dir, self.labels_dir, train),
            FolderData(self.images_dir, self.labels_dir, held),
        )

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = self.pairs[index]
        if image_path not in self._cache:
            image, labels = _read(image_path), _read(label_path).astype(np.uint32)
            stack = labels.ndim == 3
            if image.shape[: labels.ndim] != labels.shape:
                raise ValueError(
                    f"{image_path.name} has shape {image.shape} but its labels have shape "
                    f"{labels.shape}; they must cover the same pixels."
                )
            if stack:
                rgb = np.stack([prepare_image(image[i]) for i in range(len(image))])
            else:
                rgb = prepare_image(image)
            self._cache[image_path] = (rgb, labels)
        return self._cache[image_path]

    def image(self, rng: np.random.Generator, progress: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        rgb, labels = self._load(int(rng.integers(len(self.pairs))))
        if labels.ndim == 3:
            z = int(rng.integers(len(labels)))
            return rgb[z], labels[z]
        return rgb, labels

    def clip(self, rng: np.random.Generator, n_frames: int, progress: float = 1.0) -> Clip:
        stacks = [i for i in range(len(self.pairs)) if self._load(i)[1].ndim == 3]
        rgb, labels = self._load(stacks[int(rng.integers(len(stacks)))])
        n = min(n_frames, len(labels))
        start = int(rng.integers(len(labels) - n + 1))
        return Clip(rgb[start : start + n], labels[start : start + n])


def _read(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(path))
    from skimage import io

    return np.asarray(io.imread(path))
