"""Embedding the frames of a stack ahead of use into an embedding store (the CLI's `embed`,
the dock's background precompute): nearest frames first, cancellable, frames already stored
skipped."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ..modeling.sam2 import SAM2Model
from ..progress import Cancelled, ProgressCallback, StopCheck
from .embedding_store import EmbeddingStore, embedding_key, precision_name
from .orientations import oriented_image
from .predictor import ImagePredictor


def outward(start: int, count: int) -> Iterator[int]:
    """start, start+1, start-1, start+2, start-2, ... within [0, count)."""
    if not 0 <= start < count:
        start = 0 if start < 0 else max(count - 1, 0)
    for step in range(count):
        for index in ((start + step, start - step) if step else (start,)):
            if 0 <= index < count:
                yield index


def precompute_embeddings(
    store: EmbeddingStore,
    model: SAM2Model,
    frames: Callable[[int], np.ndarray],
    order: Iterable[int],
    precision: str = "auto",
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    on_ready: Callable[[int], None] | None = None,
    orientations: int | None = None,
) -> int:
    """Embed the prepared RGB `frames(i)` for i in `order` into `store`; how many were computed
    (the others were there already). `on_ready(i)` follows each frame; `should_stop` is asked
    between frames and raises Cancelled, keeping the frames done. orientations: as for
    `ImagePredictor` (None: the model's own, what clicks use; tracking reads only the first)."""
    predictor = ImagePredictor(model, precision=precision, embedding_store=store, orientations=orientations)
    name = precision_name(predictor.dtype)
    order = list(order)
    computed = 0
    for done, index in enumerate(order):
        if should_stop is not None and should_stop():
            raise Cancelled(f"{done} of {len(order)} frames embedded")
        rgb = frames(index)
        if any(embedding_key(model, oriented_image(rgb, v), name) not in store for v in range(predictor.orientations)):
            predictor.embed_prepared([rgb])
            computed += 1
        if on_ready is not None:
            on_ready(index)
        if progress is not None:
            progress(done + 1, len(order))
    return computed
