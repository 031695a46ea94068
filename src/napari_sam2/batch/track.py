"""Tracking the objects of one stack through it (mode 'propagate'), streamed to its output."""

from __future__ import annotations

import time

import numpy as np

from ..api import prompt_tracker
from ..engine.tracker import StackTracker
from ..images.io import is_stack, read_image
from ..images.label_writer import LabelWriter
from ..prompt_file import PromptSession
from .engine import Engine
from .inputs import InputError
from .outputs import LabelFile
from .plan import BatchItem
from .results import failed, succeeded
from .summary import ItemResult

SEED_FRAME = 0  # without prompts, the objects found on this frame are tracked


def track_item(item: BatchItem, engine: Engine) -> ItemResult:
    """Track the objects of the item's prompts (or, without prompts, every object segmented on
    the first frame) through its stack."""
    start = time.perf_counter()
    out = None
    tracker = None
    try:
        session = PromptSession.load(item.prompts) if item.prompts else None
        data = read_image(item.input)
        if not is_stack(data.shape):
            raise InputError(f"propagate needs a stack (N, H, W); {item.input} has shape {tuple(data.shape)}.")
        spec = engine.spec
        tracker = StackTracker(engine.model, data, precision=spec.precision)
        if session is not None:
            prompt_tracker(tracker, session)
        else:
            seeds = engine.everything(tracker.frames.get(SEED_FRAME))
            for obj_id in range(1, int(seeds.max()) + 1):
                tracker.add_mask(SEED_FRAME, obj_id, seeds == obj_id)
        out = LabelFile(item.output, (tracker.num_frames, *tracker.frame_hw))
        if tracker.obj_ids:
            for _ in tracker.propagate(spec.direction, writer=LabelWriter(out.array)):
                pass
        objects = _count_ids(out.array)
        out.commit()
    except Exception as err:
        if out is not None:
            out.discard()
        return failed(item, err, start)
    finally:
        if tracker is not None:
            tracker.frames.close()
    return succeeded(item, objects, start)


def _count_ids(volume) -> int:
    """Distinct object ids in a label volume (a memmap or zarr array), read a frame at a time."""
    ids: set[int] = set()
    for index in range(volume.shape[0]):
        ids.update(int(v) for v in np.unique(volume[index]) if v)
    return len(ids)
