"""StackTracker against the official SAM2VideoPredictor: same random weights, same frames, fp32.

A synthetic movie is written as JPEG files for the official predictor, and the same decoded
arrays are given to ours. Prompts: a click on frame 0 (object 1), a box on frame 3 (object 2),
a mask on frame 5 (object 3); propagation starts at frame 5, where every object has a prompt in
its past, since the official predictor crashes in fp32 when it tracks an object with no object
pointer (ours does not: see test_tracker.py); going backward, objects 1 and 2 also get a click on
frame 5 for the same reason. Improvements that change results are switched off:
non-overlapping masks and hole filling (the official skips hole filling without CUDA).

Frames are the size of the model input, so neither side resizes them (the two predictors resize
differently). CI runs every case at 256 px and one at 1024 px (the official model size);
NAPARI_SAM2_FULL_PARITY=1 runs every case at 1024 px (minutes per case).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_sam2 import load_model
from napari_sam2.engine.tracker import StackTracker

from .oracle import build_oracle, requires_oracle, save_official_checkpoint

pytestmark = [requires_oracle, pytest.mark.oracle]

SIZE = 1024 if os.environ.get("NAPARI_SAM2_FULL_PARITY") else 256
FULL_SIZE = 1024
N_FRAMES = 12


def synthetic_movie(size: int, n: int) -> np.ndarray:
    """Three bright discs drifting over a noisy background, 8-bit RGB (n, size, size, 3)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    frames = []
    for t in range(n):
        img = 30 + rng.normal(0, 5, (size, size))
        for k, (cy, cx, r) in enumerate([(0.3, 0.3, 0.1), (0.6, 0.5, 0.12), (0.4, 0.75, 0.08)]):
            cy_t, cx_t = (cy + 0.01 * t) * size, (cx + 0.008 * t * (k - 1)) * size
            img[(yy - cy_t) ** 2 + (xx - cx_t) ** 2 < (r * size) ** 2] += 150 + 30 * k
        frames.append(np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, -1))
    return np.stack(frames)


@functools.cache
def _setup(preset: str, size: int):
    """(official video predictor, our model, JPEG folder, the decoded frames)."""
    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="napari-sam2-parity-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for t, frame in enumerate(synthetic_movie(size, N_FRAMES)):
        Image.fromarray(frame).save(folder / f"{t}.jpg", quality=95)
    decoded = np.stack([np.array(Image.open(folder / f"{t}.jpg").convert("RGB")) for t in range(N_FRAMES)])
    ref = build_oracle(preset, image_size=size, video=True)
    weights = save_official_checkpoint(ref, folder / "weights.pt")
    ours = load_model(weights, device="cpu", image_size=size)
    weights.unlink()
    return ref, ours, folder, decoded


def _prompts(s: int):
    yy, xx = np.mgrid[:s, :s]
    mask = (yy - 0.44 * s) ** 2 + (xx - 0.75 * s) ** 2 < (0.08 * s) ** 2
    return [[0.3 * s, 0.3 * s]], [0.45 * s, 0.45 * s, 0.75 * s, 0.75 * s], mask


# Going backward from frame 5, objects 1 and 2 would be tracked with no object pointer at all
# (their prompts are behind), which crashes the official predictor: they get a prompt on frame 5.
EXTRA_BACKWARD_CLICKS = {1: [[0.33, 0.34]], 2: [[0.62, 0.48]]}


def _run_official(ref, folder, direction, size):
    click, box, mask = _prompts(size)
    out = {}
    with torch.inference_mode():
        state = ref.init_state(str(folder))
        ref.add_new_points_or_box(state, 0, 1, points=np.array(click, np.float32), labels=np.array([1], np.int32))
        ref.add_new_points_or_box(state, 3, 2, box=np.array(box, np.float32))
        ref.add_new_mask(state, 5, 3, mask)
        if direction == "backward":
            for obj_id, point in EXTRA_BACKWARD_CLICKS.items():
                points = np.array(point, np.float32) * size
                ref.add_new_points_or_box(state, 5, obj_id, points=points, labels=np.array([1], np.int32))
        passes = {"forward": [False], "backward": [True], "both": [False, True]}[direction]
        for reverse in passes:
            for frame, _, logits in ref.propagate_in_video(state, start_frame_idx=5, reverse=reverse):
                out.setdefault(frame, []).append(logits[:, 0].numpy())
    return out


def _run_ours(ours, decoded, direction, size):
    click, box, mask = _prompts(size)
    tracker = StackTracker(
        ours, decoded, precision="fp32", normalization=None, non_overlapping=False, fill_hole_area=0, ending=None
    )
    tracker.add_points(0, 1, click)
    tracker.add_box(3, 2, box)
    tracker.add_mask(5, 3, mask)
    if direction == "backward":
        for obj_id, point in EXTRA_BACKWARD_CLICKS.items():
            tracker.add_points(5, obj_id, np.array(point) * size)
    out = {}
    for result in tracker.propagate(direction, start=5):
        logits = torch.from_numpy(result.logits)[:, None]
        full = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        out.setdefault(result.frame, []).append(full.numpy())
    return out


CASES = [(p, d, SIZE) for p in ("sam2.1_hiera_tiny", "sam2_hiera_small") for d in ("forward", "backward", "both")]
if SIZE != FULL_SIZE:
    CASES.append(pytest.param("sam2.1_hiera_tiny", "forward", FULL_SIZE, marks=pytest.mark.slow))


@pytest.mark.parametrize(("preset", "direction", "size"), CASES)
def test_tracking_matches_official(preset, direction, size):
    ref, ours, folder, decoded = _setup(preset, size)
    expected = _run_official(ref, folder, direction, size)
    got = _run_ours(ours, decoded, direction, size)
    assert sorted(got) == sorted(expected), "different frames were processed"
    for frame in expected:
        assert len(got[frame]) == len(expected[frame]), f"frame {frame} visited a different number of times"
        for mine, theirs in zip(got[frame], expected[frame]):
            assert np.abs(mine - theirs).max() <= 1e-3, f"frame {frame}: logits differ"
            assert ((mine > 0) != (theirs > 0)).sum() <= 16, f"frame {frame}: masks differ"
            fraction = (theirs > 0).mean(axis=(1, 2))
            assert ((fraction > 0) & (fraction < 1)).all(), "empty or full masks would prove little"
