"""Training data from what is open in napari: images and their labels, as the Trainer reads
them (`image(rng, progress)`, `clip(rng, n, progress)`, `describe()`), without napari or Qt.

Only labelled planes are used: a plane of a stack with no labels would teach the model that
nothing is there. A stack whose every plane is labelled also gives clips for the memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..images.model_input import prepare_image
from ..training.data import Clip
from ._image_source import ImageSource


@dataclass
class LabelledImage:
    """One image (as an ImageSource) and its labels (the image's labels shape), and a name."""

    source: ImageSource
    labels: np.ndarray
    name: str


class LayerData:
    """(image, labels) pairs of labelled planes, normalised as the dock normalises each image."""

    def __init__(self, images: Sequence[LabelledImage]) -> None:
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self.stacks: list[tuple[np.ndarray, np.ndarray]] = []
        self.names = [item.name for item in images]
        for item in images:
            source, labels = item.source, np.asarray(item.labels)
            norm = source.normalization()
            planes = [()] if not source.is_stack else [
                source.with_frame(tuple(0 for _ in source.leading), f) for f in range(source.n_frames)
            ]
            rgbs, labs = [], []
            for index in planes:
                lab = labels[source.labels_plane_key(index)].astype(np.uint32)
                rgb = prepare_image(source.plane(index), norm)
                rgbs.append(rgb)
                labs.append(lab)
                if lab.any():
                    self.pairs.append((rgb, lab))
            if len(labs) > 1 and all(lab.any() for lab in labs):
                self.stacks.append((np.stack(rgbs), np.stack(labs)))
        if not self.pairs:
            raise ValueError(
                "No labelled plane to train on: commit (or paint) objects in a Labels layer of "
                "the image's shape first."
            )
        self.has_clips = bool(self.stacks)

    def objects(self) -> int:
        return sum(len(np.unique(lab)) - 1 for _, lab in self.pairs)

    def describe(self) -> str:
        return (
            f"{len(self.pairs)} labelled plane(s), {self.objects()} object(s) of "
            f"{', '.join(self.names)} (napari layers)"
        )

    def image(self, rng: np.random.Generator, progress: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        return self.pairs[int(rng.integers(len(self.pairs)))]

    def clip(self, rng: np.random.Generator, n_frames: int, progress: float = 1.0) -> Clip:
        rgb, labels = self.stacks[int(rng.integers(len(self.stacks)))]
        n = min(n_frames, len(labels))
        start = int(rng.integers(len(labels) - n + 1))
        return Clip(rgb[start : start + n], labels[start : start + n])

    def split(self, every: int = 5) -> tuple[LayerData, LayerData]:
        """(training, validation): every `every`-th labelled plane is held out when there are at
        least `every` of them; otherwise both are the same planes (said in `describe`)."""
        if len(self.pairs) < every:
            return self, self
        train, held = _copy(self), _copy(self)
        train.pairs = [p for i, p in enumerate(self.pairs) if i % every != every - 1]
        held.pairs = [p for i, p in enumerate(self.pairs) if i % every == every - 1]
        held.stacks, held.has_clips = [], False
        return train, held


def _copy(data: LayerData) -> LayerData:
    new = LayerData.__new__(LayerData)
    new.__dict__.update(data.__dict__)
    return new
