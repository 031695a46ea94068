"""Segmenting images and stack slices with the image encoder run on batches of them.

Planes (images, or slices of stacks) of consecutive inputs are embedded `batch_size` at a time
and then segmented one by one from their embeddings; an input's output is committed once its
last plane is done. A failure affects only the input it belongs to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..images.io import frame_shape, is_stack, read_image
from ..images.model_input import prepare_image
from ..images.normalization import auto_normalization
from ..prompt_file import PromptSession
from .engine import Engine
from .inputs import InputError
from .outputs import LabelFile
from .plan import BatchItem
from .results import failed, succeeded
from .summary import ItemResult

Emit = Callable[[ItemResult], None]


@dataclass
class _Open:
    """An input being segmented: its pixels, its output, the planes still to finish."""

    item: BatchItem
    data: Any
    stack: bool
    normalization: Any
    planes: list[int]
    out: LabelFile
    session: PromptSession | None
    start: float
    remaining: int = 0
    objects: int = 0
    ids: set[int] = field(default_factory=set)
    closed: bool = False

    def rgb(self, index: int) -> np.ndarray:
        image = np.asarray(self.data[index]) if self.stack else np.asarray(self.data)
        return prepare_image(image, self.normalization)


def open_item(item: BatchItem, mode: str) -> _Open:
    """Read an input and make its (still empty) output; raises on unusable inputs."""
    start = time.perf_counter()
    session = None
    if mode == "prompts":
        if item.prompts is None:
            raise InputError("no prompts: put <name>.prompts.json beside the image or give a shared prompts file.")
        session = PromptSession.load(item.prompts)
    data = read_image(item.input)
    stack = is_stack(data.shape)
    hw = frame_shape(data.shape)
    normalization = auto_normalization(data)  # one for the whole stack
    n = int(data.shape[0]) if stack else 1
    if session is None:
        planes = list(range(n))
    elif stack:
        planes = sorted({p.frame for o in session.objects for p in o.prompts})
        outside = [f for f in planes if not 0 <= f < n]
        if outside:
            raise InputError(f"prompts on frame {outside[0]}, but the stack has {n} frames.")
    else:
        planes = [0]
    out = LabelFile(item.output, (n, *hw) if stack else hw)
    return _Open(item, data, stack, normalization, planes, out, session, start, remaining=len(planes))


def segment_items(items: Iterable[BatchItem], engine: Engine, batch_size: int, emit: Emit) -> None:
    """Segment `items` (mode everything or prompts), calling `emit` with each one's result."""
    mode = engine.spec.mode
    batch: list[tuple[_Open, int, np.ndarray]] = []
    for item in items:
        start = time.perf_counter()
        try:
            state = open_item(item, mode)
        except Exception as err:
            emit(failed(item, err, start))
            continue
        if not state.planes:
            _close(state, emit)
        for index in state.planes:
            if state.closed:
                break
            try:
                batch.append((state, index, state.rgb(index)))
            except Exception as err:
                _close(state, emit, err)
                break
            if len(batch) >= batch_size:
                _run(batch, engine, emit)
                batch = []
    if batch:
        _run(batch, engine, emit)


def _run(batch: list[tuple[_Open, int, np.ndarray]], engine: Engine, emit: Emit) -> None:
    """Embed a batch of planes in one encoder pass, then segment each."""
    live = [(s, i, rgb) for s, i, rgb in batch if not s.closed]
    try:
        embeddings = engine.embed([rgb for _, _, rgb in live])
    except Exception:  # e.g. out of memory: one at a time, so only a bad plane fails its input
        embeddings = []
        for state, _, rgb in live:
            try:
                embeddings += engine.embed([rgb])
            except Exception as err:
                embeddings.append(None)
                _close(state, emit, err)
    for (state, index, rgb), embedding in zip(live, embeddings):
        if state.closed:
            continue
        try:
            if state.session is None:
                labels = engine.everything(rgb, embedding)
                state.objects += int(labels.max())
            else:
                labels = engine.prompted(embedding, state.session, index if state.stack else None)
                state.ids.update(int(v) for v in np.unique(labels) if v)
            if state.stack:
                state.out.array[index] = labels
            else:
                state.out.array[...] = labels
        except Exception as err:
            _close(state, emit, err)
            continue
        state.remaining -= 1
        if state.remaining == 0:
            _close(state, emit)


def _close(state: _Open, emit: Emit, error: BaseException | None = None) -> None:
    """Commit the output (or drop it on error) and report the input's result."""
    state.closed = True
    state.data = None
    if error is None:
        try:
            state.out.commit()
        except Exception as err:
            error = err
    if error is not None:
        state.out.discard()
        emit(failed(state.item, error, state.start))
        return
    objects = state.objects if state.session is None else len(state.ids)
    emit(succeeded(state.item, objects, state.start))
