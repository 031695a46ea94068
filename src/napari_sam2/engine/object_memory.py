"""Each tracked object's per-frame states and how its memory conditions a new frame.

Objects whose memories sit at the same relative frames share a layout and run as one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..modeling.sam2 import ImageFeatures, SAM2Model, SpatialMemory
from .memory_bank import MemorySelection, select_memory


@dataclass
class FrameState:
    """One object on one frame: its output and, once encoded, its memory."""

    low_res: torch.Tensor  # (1, 1, 4h, 4w) logits
    obj_ptr: torch.Tensor  # (1, C)
    score: torch.Tensor  # (1, 1) presence logit
    iou: torch.Tensor  # (1, 1)
    from_prompt: bool  # memory of prompted frames uses the binarised mask
    maskmem: torch.Tensor | None = None  # (1, mem_dim, h, w), bf16


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


def _memory_pos(model: SAM2Model, features: ImageFeatures) -> torch.Tensor:
    h, w = features.embedding.shape[-2:]
    probe = features.embedding.new_zeros(1, model.config.mem_dim, h, w)
    return model.memory_encoder.position_encoding(probe)
