"""The optional torch.compile path gives the same results as eager mode (on CPU)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from napari_sam2 import build_model
from napari_sam2.engine.tracker import StackTracker


def test_compiled_tracking_matches_eager():
    torch.manual_seed(0)
    eager = build_model("sam2.1_hiera_test", device="cpu", image_size=128)
    with torch.no_grad():
        eager.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    compiled = copy.deepcopy(eager)
    frames = np.random.default_rng(0).integers(0, 255, (4, 64, 64)).astype(np.uint8)
    results = []
    for model, compile_ in ((eager, False), (compiled, True)):
        tracker = StackTracker(model, frames, precision="fp32", compile=compile_)
        tracker.add_points(0, 1, [[20, 20]])
        tracker.add_points(0, 2, [[45, 40]])
        results.append([r.logits for r in tracker.propagate("forward")])
    assert getattr(compiled, "_napari_sam2_compiled", False)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-3)
