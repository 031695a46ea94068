"""Processing items with a loaded model: all of them on this machine (`process_items`), or one
as a dask task (`process_item`, which loads the model once per worker process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..images.io import frame_shape, probe_shape
from .engine import Engine
from .memory import auto_batch_size
from .models import cached_model
from .pipeline import segment_items
from .plan import BatchItem
from .results import failed
from .spec import BatchSpec
from .summary import ItemResult
from .track import track_item

Emit = Callable[[ItemResult], None]


def process_items(items: Sequence[BatchItem], engine: Engine, batch_size: int | None, emit: Emit) -> None:
    """Every item, in groups of equal frame size so that the encoder runs on batches; the batch
    size fits the free memory unless given."""
    if engine.spec.mode == "propagate":
        for item in items:
            emit(track_item(item, engine))
        return
    groups: dict[tuple[int, int], list[BatchItem]] = {}
    for item in items:
        try:
            hw = frame_shape(probe_shape(item.input))
        except Exception as err:  # unreadable header, or not an image at all
            emit(failed(item, err, time.perf_counter()))
            continue
        groups.setdefault(hw, []).append(item)
    for hw, group in groups.items():
        size = batch_size or auto_batch_size(engine.model, hw)
        segment_items(group, engine, size, emit)


def process_item(item: BatchItem, spec: BatchSpec, batch_size: int | None = None) -> ItemResult:
    """One item with this process's cached model (the dask task)."""
    results: list[ItemResult] = []
    try:
        engine = Engine(cached_model(spec), spec)
    except Exception as err:
        return failed(item, err, time.perf_counter())
    process_items([item], engine, batch_size, results.append)
    return results[0]
