"""Which past frames an object's memory attention reads, and which frames can be forgotten.

Pure bookkeeping on frame indices (no tensors), following SAM 2's video predictor: every
conditioning (prompted) frame, the six previous tracked frames, and object pointers from
conditioning frames in the past and from up to fifteen previous tracked frames.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class MemorySelection:
    """What frame `frame` attends to, in the order the official predictor concatenates it."""

    spatial: tuple[tuple[int, int], ...]  # (source frame, slot in maskmem_tpos_enc)
    pointers: tuple[tuple[int, int], ...]  # (source frame, temporal distance for the encoding)

    @property
    def signature(self) -> tuple:
        """Objects with equal signatures can be batched: same slots and pointer distances."""
        return tuple(s for _, s in self.spatial), tuple(d for _, d in self.pointers)


def select_memory(
    frame: int,
    cond_frames: Collection[int],
    tracked_frames: Collection[int],
    num_frames: int,
    reverse: bool,
    num_maskmem: int = 7,
    max_obj_ptrs: int = 16,
    signed_distances: bool = True,
) -> MemorySelection:
    """The memory of `frame` for one object.

    cond_frames: its conditioning frames (all are used, including future ones); tracked_frames:
    frames with a non-conditioning memory. `reverse` when tracking towards frame 0.
    """
    step = -1 if reverse else 1
    spatial = [(c, num_maskmem - 1) for c in cond_frames]
    for gap in range(1, num_maskmem):
        source = frame - step * gap
        if source in tracked_frames and source not in cond_frames:
            spatial.append((source, gap - 1))
    max_ptrs = min(num_frames, max_obj_ptrs)
    pointers = []
    for c in cond_frames:
        if (c >= frame) if reverse else (c <= frame):
            distance = (frame - c) * step if signed_distances else abs(frame - c)
            pointers.append((c, distance))
    for gap in range(1, max_ptrs):
        source = frame - step * gap
        if not 0 <= source < num_frames:
            break
        if source in tracked_frames and source not in cond_frames:
            pointers.append((source, gap))
    return MemorySelection(tuple(spatial), tuple(pointers))


def frames_to_keep(
    tracked_frames: Collection[int],
    cond_frames: Collection[int],
    current: int,
    reach: int = 15,
) -> set[int]:
    """Tracked frames that attention can still read: within `reach` of the frame being processed
    (the next frames' memory) or of a conditioning frame (where a later pass starts).

    Everything else can be dropped, so memory does not grow with the length of the stack.
    """
    anchors = [current, *cond_frames]
    return {f for f in tracked_frames if any(abs(f - a) <= reach for a in anchors)}
