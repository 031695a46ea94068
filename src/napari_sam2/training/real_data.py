"""Real labelled microscopy for training: dataset folders (`images/` + `labels/`, optional
`index.csv` with a `modality` column, as in ../shared/data/dsb2018) and a mix of sources.

Augmentations are the ones that carry over to unseen microscopes: scale 0.5-2x, crops of large
images, whole images as inference sees them (stretched to the model's input, so the nuclei of a
large field are as small as they will be), some objects of gray images dimmed (cells that
express less: a tenth of their neighbours'
brightness is common in time-lapse fluorescence), the intensity rule's natural variation
(limits jittered so objects saturate or dim), noise and blur; flips, quarter turns and gamma come later, for every source (`batches.augment`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..images.io import IMAGE_SUFFIXES, read_image
from ..images.model_input import prepare_image
from ..images.normalization import Normalization, auto_normalization


class LabelledDataset:
    """Images paired with instance labels by file stem (`images/a.png` with `labels/a.tif`).

    With `augment`, `image()` draws a random crop at a random scale with jittered intensities,
    or (with chance `whole_share`) 70-100% of the image at its own scale, which the model stretches
    to its input as inference does; without, it returns whole images as read (what a user feeds
    the engine), for validation.
    """

    has_clips = False

    def __init__(
        self,
        root: str | Path,
        modalities: Sequence[str] | None = None,
        augment: bool = True,
        crop: int = 384,
        scale: tuple[float, float] = (0.5, 2.0),
        whole_share: float = 0.0,
    ) -> None:
        self.root = Path(root)
        images, labels = self.root / "images", self.root / "labels"
        for folder in (images, labels):
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is not a folder; a dataset has images/ and labels/.")
        self.modality = _modalities(self.root / "index.csv")
        label_files = {p.stem: p for p in labels.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        self.pairs = [
            (p, label_files[p.stem])
            for p in sorted(images.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in label_files
            and (modalities is None or self.modality.get(p.stem, "unknown") in modalities)
        ]
        if not self.pairs:
            raise FileNotFoundError(f"no image in {images} has a label image of the same name in {labels}.")
        if not 0.0 <= whole_share <= 1.0:
            raise ValueError(f"whole_share (--whole-images) must be within 0-1; got {whole_share}.")
        self.augment, self.crop, self.scale, self.whole_share = augment, crop, scale, whole_share
        self.modalities = tuple(modalities) if modalities else None
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def describe(self) -> str:
        kinds = f" ({', '.join(self.modalities)})" if self.modalities else ""
        return f"{len(self.pairs)} labelled images from {self.root}{kinds}"

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw image (as stored) and its labels (uint32)."""
        if index not in self._cache:
            image_path, label_path = self.pairs[index]
            image, labels = read_image(image_path), read_image(label_path).astype(np.uint32)
            if image.shape[:2] != labels.shape:
                raise ValueError(f"{image_path.name}: image {image.shape} and labels {labels.shape} differ in size.")
            if image.ndim == 3 and image.shape[-1] == 4:
                image = image[..., :3]
            self._cache[index] = (image, labels)
        return self._cache[index]

    def image(self, rng: np.random.Generator, progress: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        raw, labels = self.load(int(rng.integers(len(self.pairs))))
        if not self.augment:
            return raw, labels
        if rng.random() < self.whole_share:
            raw, labels = _most_of(raw, labels, rng)
        else:
            raw, labels = _scaled_crop(raw, labels, rng, self.crop, self.scale)
        if raw.ndim == 2 and rng.random() < DIMMED_IMAGES:
            raw = dimmed_objects(raw, labels, rng)
        rgb = prepare_image(raw, jittered(auto_normalization(raw), rng))
        return _noise_and_blur(rgb, rng), labels


class MixedData:
    """Several sources drawn with fixed shares; clips come from the sources that have them."""

    def __init__(self, parts: Sequence[tuple[object, float]]) -> None:
        if not parts:
            raise ValueError("MixedData needs at least one source.")
        self.parts = [p for p, _ in parts]
        shares = np.asarray([s for _, s in parts], dtype=float)
        self.shares = shares / shares.sum()
        self.clip_sources = [p for p in self.parts if getattr(p, "has_clips", False)]
        self.has_clips = bool(self.clip_sources)

    def describe(self) -> str:
        return " + ".join(f"{share:.0%} {p.describe()}" for p, share in zip(self.parts, self.shares))

    def image(self, rng: np.random.Generator, progress: float = 1.0):
        part = self.parts[int(rng.choice(len(self.parts), p=self.shares))]
        return part.image(rng, progress)

    def clip(self, rng: np.random.Generator, n_frames: int, progress: float = 1.0):
        return self.clip_sources[int(rng.integers(len(self.clip_sources)))].clip(rng, n_frames, progress)


def jittered(norm: Normalization, rng: np.random.Generator) -> Normalization:
    """The rule's limits moved as another acquisition or another rule would move them: the low
    limit by -5%..+10% of the span, the high one 0.6-1.4x the span (objects saturate or dim)."""
    if norm.method == "uint8" and rng.random() < 0.7:
        return norm
    lows, highs = [], []
    for lo, hi in zip(norm.low, norm.high):
        span = max(hi - lo, 1e-6)
        new_lo = lo + span * rng.uniform(-0.05, 0.1)
        lows.append(new_lo)
        highs.append(max(new_lo + 1e-6, lo + span * float(np.exp(rng.uniform(-0.5, 0.35)))))
    return Normalization.from_limits(lows, highs)


def _scaled_crop(raw, labels, rng, crop: int, scale: tuple[float, float]):
    """A window of the image that becomes at most `crop` px a side after scaling 0.5-2x."""
    from skimage.transform import resize

    s = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    h, w = labels.shape
    ch, cw = min(h, max(16, round(crop / s))), min(w, max(16, round(crop / s)))
    raw, labels = _window(raw, labels, rng, ch, cw)
    out = (max(16, round(ch * s)), max(16, round(cw * s)))
    if out != (ch, cw):
        raw = resize(raw, out + raw.shape[2:], order=1, preserve_range=True, anti_aliasing=s < 1).astype(np.float32)
        labels = resize(labels, out, order=0, preserve_range=True, anti_aliasing=False).astype(np.uint32)
    return raw, labels


def _most_of(raw, labels, rng, least: float = 0.7):
    """A window of `least`-100% of each side of the image, unscaled."""
    h, w = labels.shape
    ch, cw = (min(n, max(16, round(n * rng.uniform(least, 1.0)))) for n in (h, w))
    return _window(raw, labels, rng, ch, cw)


def _window(raw, labels, rng, ch: int, cw: int):
    """A ch x cw window of image and labels at a random place."""
    h, w = labels.shape
    y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    return raw[y : y + ch, x : x + cw], labels[y : y + ch, x : x + cw]


DIMMED_IMAGES = 0.3  # share of gray training images with some objects dimmed


def dimmed_objects(
    raw: np.ndarray, labels: np.ndarray, rng: np.random.Generator, share: float = 0.4,
    factors: tuple[float, float] = (0.08, 0.6), halo: int = 2,
) -> np.ndarray:
    """A gray image (float32) whose objects (each with chance `share`, grown by `halo` px for
    their blur) keep only a factor (log-uniform in `factors`) of their brightness above the
    background (the image's 5th percentile)."""
    from skimage.segmentation import expand_labels

    ids = np.unique(labels[labels > 0])
    chosen = ids[rng.random(len(ids)) < share]
    out = raw.astype(np.float32)
    if not len(chosen):
        return out
    background = float(np.percentile(out, 5))
    grown = expand_labels(labels, halo)
    factor = np.ones(int(labels.max()) + 1, np.float32)
    factor[chosen] = np.exp(rng.uniform(np.log(factors[0]), np.log(factors[1]), len(chosen)))
    scale = factor[grown]
    return background + (out - background) * scale


def _noise_and_blur(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.25:
        from scipy.ndimage import gaussian_filter

        sigma = rng.uniform(0.5, 1.5)
        rgb = gaussian_filter(rgb, sigma=(sigma, sigma, 0))
    if rng.random() < 0.3:
        rgb = rgb + rng.normal(0, rng.uniform(0.01, 0.06), rgb.shape[:2] + (1,)).astype(np.float32)
    return np.clip(rgb, 0, 1).astype(np.float32)


def _modalities(index: Path) -> dict[str, str]:
    if not index.is_file():
        return {}
    with index.open(newline="", encoding="utf-8-sig") as f:
        return {row["id"]: row.get("modality", "unknown") for row in csv.DictReader(f)}
