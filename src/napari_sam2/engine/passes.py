"""The order in which a propagation visits frames, and which objects each pass tracks where.

As in the official predictor, a 'both' run goes forward from its start frame, then backward
from it again. With objects that end, each object is tracked outward from its own prompts
instead: forward from its first prompted frame, backward up to its last one; in 'both' the
backward pass starts at the latest first prompt of any object and takes each object only on the
frames before its first prompt. So no object is tracked towards a prompt of its own from a far
frame (where, before its object appears, it was called absent and ended, or followed another).
"""

from __future__ import annotations

from collections.abc import Iterable

from .object_memory import TrackedObject


def plan_passes(
    objects: Iterable[TrackedObject], direction: str, start: int, low: int, high: int, outward: bool
) -> list[tuple[range, bool]]:
    """(frames, reverse) of each pass between `low` and `high`; `outward`: objects end (the
    backward pass of 'both' then starts at the last object's first prompt)."""
    passes = []
    if direction in ("both", "forward"):
        passes.append((range(start, high + 1), False))
    if direction in ("both", "backward"):
        back = start
        if direction == "both" and outward:
            firsts = [min(o.cond) for o in objects if o.cond]
            back = max([start, *(f for f in firsts if f <= high)])
        passes.append((range(back, low - 1, -1), True))
    return passes


def pass_limits(direction: str, start: int, stop: int | tuple[int, int] | None, num_frames: int) -> tuple[int, int]:
    """The lowest and highest frame a propagation from `start` visits: `stop` is the last frame
    (a (low, high) pair for 'both'); None: the ends of the stack."""
    last = num_frames - 1
    if stop is None:
        return 0, last
    if direction == "both":
        low, high = stop
    elif direction == "forward":
        low, high = start, stop
    else:
        low, high = stop, start
    if not 0 <= low <= start <= high <= last:
        raise ValueError(f"stop {stop} does not fit start {start} and {num_frames} frames")
    return low, high


def in_pass(obj: TrackedObject, frame: int, reverse: bool, both: bool) -> bool:
    """Whether the outward order tracks `obj` on `frame` in a forward or backward pass (`both`:
    of a 'both' run, whose forward pass took the frames from the object's first prompt on)."""
    if not obj.cond:
        return True
    if not reverse:
        return min(obj.cond) <= frame
    return frame <= min(obj.cond) if both else frame <= max(obj.cond)
