"""The propagation worker and its Qt-free parts: frame ranges, where each object was found.

Runs off the GUI thread; the panel (`_propagate_panel.py`) plans the run and writes the frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import tracker as tracking  # imported here, not in the worker: imports hold the GIL
from ..engine.apply_prompts import GivenMasks, add_to_tracker, is_given_mask, keep_given_masks
from ._image_source import ImageSource, PlaneIndex
from ._jobs import JobControl
from ._plane_prompts import ObjectPrompt
from ._session import UserProblem

FramePlan = list[tuple[int, int, ObjectPrompt]]  # (frame, object id, prompts)


def frame_range(
    n_frames: int, start: int, direction: str, first: int | None, last: int | None
) -> tuple[int, int]:
    """The frames a run may reach, (low, high) inclusive: the stack, cut to [first, last], on
    the side(s) of `start` that `direction` goes to; raises UserProblem when `start` is outside."""
    low = 0 if first is None else max(0, first)
    high = n_frames - 1 if last is None else min(n_frames - 1, last)
    if not low <= start <= high:
        raise UserProblem(
            f"The first prompted frame, {start}, lies outside the frame range {low}-{high}: "
            "widen the range or prompt a frame inside it."
        )
    if direction == "forward":
        low = start
    elif direction == "backward":
        high = start
    return low, high


def tracker_stop(direction: str, low: int, high: int) -> int | tuple[int, int]:
    """`StackTracker.propagate`'s stop for a frame range."""
    return (low, high) if direction == "both" else high if direction == "forward" else low


@dataclass
class ObjectSpan:
    """Where one object was found during a run: its first and last frame with a mask, the frames
    without one, and its lowest object score (0-1) on the frames where it was found."""

    first: int | None = None
    last: int | None = None
    missing: int = 0
    lowest: float = float("inf")

    def add(self, frame: int, found: bool, score: float) -> None:
        if not found:
            self.missing += 1
            return
        self.first = frame if self.first is None else min(self.first, frame)
        self.last = frame if self.last is None else max(self.last, frame)
        self.lowest = min(self.lowest, score)


def object_presence(result: Any, masks: np.ndarray) -> tuple[list[bool], list[float]]:
    """Per object of a tracked frame: found (a mask, not ended) and its object score in [0, 1]
    (the tracker's `object_scores`, else the sigmoid of its presence logit)."""
    n = len(masks)
    scores = getattr(result, "object_scores", None)
    if scores is None:
        present = np.asarray(getattr(result, "present", np.full(n, 10.0)), dtype=float)
        scores = 1 / (1 + np.exp(-present))
    ended = np.asarray(getattr(result, "ended", np.zeros(n, bool)), dtype=bool)
    found = [bool(masks[k].any()) and not ended[k] for k in range(n)]
    return found, [float(s) for s in np.asarray(scores, dtype=float)]


def propagate_job(
    control: JobControl,
    model: Any,
    precision: str,
    source: ImageSource,
    index: PlaneIndex,
    plan: FramePlan,
    direction: str,
    limits: tuple[int, int],
    embedding_store: Any = None,
) -> Iterator[Any]:
    """Worker: prompt the tracker, then yield each frame's result as soon as it is tracked;
    progress counts distinct frames of the range (the start frame is tracked twice in 'both')."""
    tracker = tracking.StackTracker(
        model, source.stack(index), precision=precision, normalization=source.normalization(),
        embedding_store=embedding_store,  # frames the dock embedded in the background are read
    )
    low, high = limits
    total = high - low + 1
    control.report(0, total)
    given: GivenMasks = {}
    for frame, obj_id, obj in plan:
        add_to_tracker(tracker, frame, obj_id, obj.points, obj.labels, obj.box, obj.mask)
        if is_given_mask(obj.points, obj.box, obj.mask):
            given[(frame, obj_id)] = obj.mask
    if control.stop_requested:
        return
    start = min(f for f, _, _ in plan)
    results = tracker.propagate(
        direction=direction, start=start, stop=tracker_stop(direction, low, high)
    )
    seen: set[int] = set()
    try:
        for result in results:
            keep_given_masks(result, given)
            yield result
            seen.add(int(result.frame))
            control.report(len(seen), total)
            if control.stop_requested:
                break
    finally:
        results.close()
        close = getattr(tracker.frames, "close", None)
        if close is not None:
            close()
