"""Windowed tracking: the window's plumbing (positions, crops, memories) against whole frames, and
real tracking of moving objects in windows with the built-in model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import load_model
from napari_sam2.engine import tracker as tracker_module
from napari_sam2.engine.tracker import StackTracker
from napari_sam2.engine.windows import GridWindow, window_around
from napari_sam2.modeling.sam2 import NO_OBJECT_SCORE


def test_grid_window_cells_crop_and_paste():
    w = GridWindow(top=2, left=3, side=4, grid=10)
    grid = torch.arange(100.0).reshape(1, 1, 10, 10)
    assert torch.equal(w.cells(torch.device("cpu")), w.crop(grid).reshape(-1).long())
    fine = torch.arange(1600.0).reshape(1, 1, 40, 40)  # 4 pixels per cell
    assert w.crop(fine).shape[-2:] == (16, 16) and w.crop(fine)[0, 0, 0, 0] == fine[0, 0, 8, 12]
    pasted = w.paste(w.crop(fine))
    assert pasted.shape == fine.shape
    inside = pasted != NO_OBJECT_SCORE
    assert inside.sum() == 256 and torch.equal(pasted[inside], fine[inside])


def test_window_follows_the_mask_and_refuses_large_objects():
    low_res = torch.full((1, 1, 128, 128), -5.0)  # a grid of 32 cells, 4 pixels each
    low_res[..., 100:112, 20:36] = 5.0  # rows 25-28, cols 5-9 in cells
    w = window_around(low_res, max_side=8, grid=32)
    # the mask spans cells 25-27.x by 5-8.x: centred on it, to within half a cell
    assert w.side == 8 and abs(w.top + 4 - 26.5) <= 0.5 and abs(w.left + 4 - 7) <= 0.5
    low_res[..., 4:8, 120:124] = 5.0  # a second part far away: the mask spans most of the frame
    assert window_around(low_res, max_side=8, grid=32) is None
    assert window_around(torch.full((1, 1, 128, 128), -5.0), max_side=8, grid=32) is None
    mid = torch.full((1, 1, 128, 128), -5.0)
    mid[..., 40:80, 40:80] = 5.0  # 10 cells: too large for 16, fits 32
    assert window_around(mid, max_side=32, grid=32).side == 32 and window_around(mid, 16, 32) is None
    small = torch.full((1, 1, 128, 128), -5.0)
    small[..., 60:64, 60:64] = 5.0  # one cell: the smallest window
    assert window_around(small, max_side=16, grid=32).side == 8
    assert window_around(small, max_side=16, grid=32, min_side=4).side == 4
    edge = torch.full((1, 1, 128, 128), -5.0)
    edge[..., 0:4, 0:4] = 5.0
    assert (window_around(edge, 8, 32).top, window_around(edge, 8, 32).left) == (0, 0)  # clamped


def test_a_window_of_the_whole_grid_gives_whole_frame_results(present_model, monkeypatch):
    """Every windowed step (rotary positions of windowed tokens, memories read where they were
    written, cropped position encodings) reduces to the whole-frame computation."""
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 4000, (6, 64, 64)).astype(np.uint16)
    results = []
    for windowed in (False, True):
        grid = present_model.config.feat_size
        t = StackTracker(present_model, stack, precision="fp32", ending=None, window=16 * grid if windowed else None)
        if windowed:
            monkeypatch.setattr(tracker_module, "window_for", lambda *a: GridWindow(0, 0, grid, grid))
        t.add_points(0, 1, [[20, 20]])
        t.add_points(0, 2, [[40, 44]])
        results.append(list(t.propagate("forward")))
    for whole, window in zip(*results):
        np.testing.assert_allclose(window.present, whole.present, atol=1e-3)
        for a, b in zip(whole.masks, window.masks):
            assert (a != b).mean() < 1e-3


def _moving_discs(frames=12, size=512, n=6, seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    start = rng.uniform(90, size - 90, (n, 2))
    velocity = rng.uniform(-6, 6, (n, 2))
    radius = rng.uniform(12, 20, n)
    movie = np.full((frames, size, size), 100.0)
    truth = np.zeros((frames, size, size), np.int32)
    for t in range(frames):
        for i in range(n):
            cy, cx = start[i] + t * velocity[i]
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius[i] ** 2
            movie[t][disc] = 900
            truth[t][disc] = i + 1
    movie += rng.normal(0, 30, movie.shape)
    return movie.astype(np.float32), truth, start


def _tracked_ious(tracker: StackTracker, truth: np.ndarray, start: np.ndarray) -> float:
    """Mean IoU with the truth of every disc tracked forward from a click on frame 0."""
    for i, (y, x) in enumerate(start):
        tracker.add_points(0, i + 1, [[x, y]])
    ious = []
    for r in tracker.propagate("forward"):
        for k, obj_id in enumerate(r.obj_ids):
            a, b = r.masks[k], truth[r.frame] == obj_id
            ious.append((a & b).sum() / max((a | b).sum(), 1))
    return float(np.mean(ious))


def test_windowed_tracking_follows_moving_nuclei_as_well_as_whole_frames():
    model = load_model()
    movie, truth, start = _moving_discs()
    scores, used = {}, {}
    for window in (None, 128):
        t = StackTracker(model, movie, window=window)
        scores[window] = _tracked_ious(t, truth, start)
        used[window] = {(s.window.top, s.window.left) for o in t._objects.values() for s in o.tracked.values() if s.window}
    assert scores[None] > 0.7 and scores[128] > scores[None] - 0.03, scores
    assert not used[None] and len(used[128]) > len(start)  # windows were used and moved with the discs


def test_bad_window_is_refused(present_model):
    with pytest.raises(ValueError, match="multiple of 16"):
        StackTracker(present_model, np.zeros((3, 32, 32)), window=100)
    with pytest.raises(ValueError, match="input size"):
        StackTracker(present_model, np.zeros((3, 32, 32)), window=512)


def test_an_object_that_outgrows_its_window_keeps_being_tracked():
    """A nucleus tracked in windows that grows beyond the largest window (or is lost) is read
    from its windowed memories over the whole frame, both ways through a stack."""
    model = load_model()
    yy, xx = np.mgrid[:128, :128]
    movie = np.full((12, 128, 128), 10.0, np.float32)
    for z in range(12):
        radius = 8 if z < 6 else 40  # 64 model pixels, then 320: more than the largest window
        movie[z][(yy - 64) ** 2 + (xx - 64) ** 2 < radius**2] = 200.0
    t = StackTracker(model, movie, window=128)
    t.add_points(2, 1, [[64, 64]])
    results = {r.frame: r for r in t.propagate("both")}
    assert sorted(results) == list(range(12))
    states = t._objects[1].tracked
    assert any(s.window is not None and s.window.side < s.window.grid for s in states.values())  # small: windows
    assert results[11].masks[0][64, 64]  # still tracked once large
