"""Tracking without memory (engine/carried.py): the click carried from frame to frame, and real
tracking of moving nuclei with the built-in model that never runs memory attention."""

from __future__ import annotations

import torch

from napari_sam2 import load_model
from napari_sam2.engine.carried import deepest_point, last_seen
from napari_sam2.engine.object_memory import FrameState, TrackedObject
from napari_sam2.engine.tracker import StackTracker
from napari_sam2.modeling.sam2 import SAM2Model

from .test_windows import _moving_discs, _tracked_ious


def _state(rows: slice, cols: slice) -> FrameState:
    low_res = torch.full((1, 1, 128, 128), -5.0)
    low_res[..., rows, cols] = 5.0
    return FrameState(low_res, torch.zeros(1, 8), torch.ones(1, 1), torch.ones(1, 1), False)


def test_the_carried_click_is_the_point_deepest_inside_the_last_mask():
    x, y = deepest_point(_state(slice(40, 60), slice(10, 30)).low_res, 512)  # 4 input pixels per low-res pixel
    assert abs(x - 20 * 4) <= 4 and abs(y - 50 * 4) <= 4  # the square's centre, to a low-res pixel
    ring = _state(slice(20, 80), slice(20, 80))
    ring.low_res[..., 30:70, 30:70] = -5.0  # a thick square ring: the click lands on the ring
    x, y = deepest_point(ring.low_res, 512)
    assert ring.low_res[0, 0, int(y // 4), int(x // 4)] > 0


def test_the_last_mask_skips_frames_where_the_object_was_not_seen():
    obj = TrackedObject(1)
    obj.cond[0] = first = _state(slice(0, 4), slice(0, 4))
    obj.tracked[1] = _state(slice(0, 0), slice(0, 0))  # empty: absent there
    obj.tracked[3] = third = _state(slice(8, 12), slice(8, 12))
    assert last_seen(obj, 2, reverse=False) is first
    assert last_seen(obj, 2, reverse=True) is third
    assert last_seen(obj, 0, reverse=False) is None


def test_tracking_without_memory_follows_moving_nuclei_and_never_reads_a_memory(monkeypatch):
    model = load_model()
    movie, truth, start = _moving_discs()

    with_memory = _tracked_ious(StackTracker(model, movie, window=128), truth, start)

    def no_memory(*args, **kwargs):
        raise AssertionError("memory attention or the memory encoder ran")

    monkeypatch.setattr(SAM2Model, "condition_on_memory", no_memory)
    monkeypatch.setattr(SAM2Model, "encode_memory", no_memory)
    tracker = StackTracker(model, movie, window=128, memory=False)
    without = _tracked_ious(tracker, truth, start)
    assert without > 0.7 and without > with_memory - 0.05, (without, with_memory)
    # a correction on a tracked frame is decoded without memory too, and propagation goes on from it
    ys, xs = (truth[6] == 1).nonzero()
    fixed = tracker.add_points(6, 1, [[xs.mean(), ys.mean()]])
    assert (fixed.masks[0] & (truth[6] == 1)).sum() > 0.7 * (truth[6] == 1).sum()
    later = {r.frame: r for r in tracker.propagate("forward", start=6)}
    assert sorted(later) == list(range(6, len(movie)))

