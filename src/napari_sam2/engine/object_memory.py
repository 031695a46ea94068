"""Each tracked object's per-frame states and how its memory conditions a new frame.

Objects whose memories sit at the same relative frames share a layout and run as one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..modeling.sam2 import ImageFeatures, SAM2Model, SpatialMemory
from .memory_bank import MemorySelection, select_memory
from .windows import GridWindow, window_around


@dataclass
class FrameState:
    """One object on one frame: its output and, once encoded, its memory."""

    low_res: torch.Tensor  # (1, 1, 4h, 4w) logits
    obj_ptr: torch.Tensor  # (1, C)
    score: torch.Tensor  # (1, 1) presence logit
    iou: torch.Tensor  # (1, 1)
    from_prompt: bool  # memory of prompted frames uses the binarised mask
    maskmem: torch.Tensor | None = None  # (1, mem_dim, h, w), bf16
    window: GridWindow | None = None  # where maskmem lies when it is a window of the frame
    absent: bool = False  # the object score called it absent here (its mask was not shown)


@dataclass
class TrackedObject:
    """An object's prompted (conditioning) and tracked frames, and its clicks per frame."""

    obj_id: int
    cond: dict[int, FrameState] = field(default_factory=dict)
    tracked: dict[int, FrameState] = field(default_factory=dict)
    points: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    direction: dict[int, bool] = field(default_factory=dict)  # frames tracked -> reverse?

    def state(self, frame: int) -> FrameState:
        return self.cond.get(frame) or self.tracked[frame]


def memory_selection(model: SAM2Model, obj: TrackedObject, frame: int, reverse: bool, num_frames: int) -> MemorySelection:
    """Which of the object's frames its memory reads on `frame` (as the official predictor)."""
    config = model.config
    return select_memory(
        frame, list(obj.cond), obj.tracked.keys(), num_frames, reverse,
        config.num_maskmem, config.max_obj_ptrs_in_encoder, signed_distances=config.is_v21,
    )


def group_by_layout(
    model: SAM2Model, objects: list[TrackedObject], frame: int, reverse: bool, num_frames: int
) -> list[list[TrackedObject]]:
    """Objects grouped by memory layout, so that each group runs as one batch."""
    groups: dict[tuple, list[TrackedObject]] = {}
    for obj in objects:
        signature = memory_selection(model, obj, frame, reverse, num_frames).signature
        groups.setdefault(signature, []).append(obj)
    return list(groups.values())


def condition_on_memories(
    model: SAM2Model, group: list[TrackedObject], frame: int, features: ImageFeatures, reverse: bool, num_frames: int
) -> torch.Tensor:
    """Features of `frame` conditioned on each object's memory (the group shares a layout)."""
    selections = [memory_selection(model, obj, frame, reverse, num_frames) for obj in group]
    n = len(group)
    pos = _memory_pos(model, features)
    memories = []
    for k, (_, slot) in enumerate(selections[0].spatial):
        stacked = torch.cat([obj.state(sel.spatial[k][0]).maskmem for obj, sel in zip(group, selections)])
        memories.append(SpatialMemory(stacked, pos.expand(n, -1, -1, -1), slot))
    pointers = []
    for k, (_, distance) in enumerate(selections[0].pointers):
        stacked = torch.cat([obj.state(sel.pointers[k][0]).obj_ptr for obj, sel in zip(group, selections)])
        pointers.append((stacked, distance))
    max_ptrs = min(num_frames, model.config.max_obj_ptrs_in_encoder)
    return model.condition_on_memory(
        features.embedding.expand(n, -1, -1, -1), features.pos.expand(n, -1, -1, -1), memories, pointers, max_ptrs
    )


def condition_in_windows(
    model: SAM2Model,
    group: list[TrackedObject],
    frame: int,
    features: ImageFeatures,
    reverse: bool,
    num_frames: int,
    windows: list[GridWindow],
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Each object's window of `frame` conditioned on its memory (`windows.py`): the conditioned
    (B, C, W, W) features, their raw window (B, C, W, W) and the decoder's high-res windows.

    Memories written in a window are read there; whole-frame memories are read in the object's
    current window."""
    selections = [memory_selection(model, obj, frame, reverse, num_frames) for obj in group]
    device = features.embedding.device
    full_pos = _memory_pos(model, features)
    raw = torch.cat([w.crop(features.embedding) for w in windows])
    pos = torch.cat([w.crop(features.pos) for w in windows])
    high_res = [torch.cat([w.crop(f) for w in windows]) for f in features.high_res]
    current_cells = torch.stack([w.cells(device) for w in windows])
    memories, memory_cells = [], []
    for k, (_, slot) in enumerate(selections[0].spatial):
        stored, stored_pos, cells = [], [], []
        for obj, sel, current in zip(group, selections, windows):
            state = obj.state(sel.spatial[k][0])
            where = state.window or current
            stored.append(state.maskmem if state.window is not None else current.crop(state.maskmem))
            stored_pos.append(where.crop(full_pos))
            cells.append(where.cells(device))
        memories.append(SpatialMemory(torch.cat(stored), torch.cat(stored_pos), slot))
        memory_cells.append(torch.stack(cells))
    pointers = []
    for k, (_, distance) in enumerate(selections[0].pointers):
        stacked = torch.cat([obj.state(sel.pointers[k][0]).obj_ptr for obj, sel in zip(group, selections)])
        pointers.append((stacked, distance))
    max_ptrs = min(num_frames, model.config.max_obj_ptrs_in_encoder)
    places = (current_cells, torch.cat(memory_cells, dim=1), windows[0].grid)
    conditioned = model.condition_on_memory(raw, pos, memories, pointers, max_ptrs, places=places)
    return conditioned, raw, high_res


def window_for(obj: TrackedObject, frame: int, reverse: bool, max_side: int, grid: int) -> GridWindow | None:
    """The window to track `obj` in on `frame` (around its mask on the frame before), or None
    for the whole frame (object too large, or not seen on the frame before). An object with
    memories written in windows is tracked in a window as large as the frame instead of None:
    only the windows path reads memories of different extents."""
    state = obj.cond.get(frame + (1 if reverse else -1)) or obj.tracked.get(frame + (1 if reverse else -1))
    window = None if state is None else window_around(state.low_res, max_side, grid)
    if window is not None and window.side >= grid:
        window = None  # as large as the frame
    elif window is None and state is not None and state.window is not None and float(state.score.reshape(-1)[0]) <= 0:
        return state.window  # absent for a frame: look for it where it was
    if window is None and any(s.window is not None for s in (*obj.cond.values(), *obj.tracked.values())):
        return GridWindow(0, 0, grid, grid)
    return window


def window_layout(
    model: SAM2Model, obj: TrackedObject, window: GridWindow, frame: int, reverse: bool, num_frames: int
) -> tuple:
    """Objects batch in windows when their windows and the memories they read have equal sizes."""
    selection = memory_selection(model, obj, frame, reverse, num_frames)
    sizes = (obj.state(f).window for f, _ in selection.spatial)
    return (window.side, *(w.side if w is not None else window.side for w in sizes))


def _memory_pos(model: SAM2Model, features: ImageFeatures) -> torch.Tensor:
    h, w = features.embedding.shape[-2:]
    probe = features.embedding.new_zeros(1, model.config.mem_dim, h, w)
    return model.memory_encoder.position_encoding(probe)
