"""The blocked bf16 attention used on CPUs: same result as the fused kernel, used only where meant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_sam2 import load_model
from napari_sam2.engine.tracker import StackTracker
from napari_sam2.modeling import attention_kernel
from napari_sam2.synthetic import timelapse
from napari_sam2.training.evaluate import HELD_OUT_SEED, iou
from napari_sam2.training.prompt_sampling import centre_click


def qkv(queries: int, keys: int, dtype=torch.bfloat16, heads: int = 2, dim: int = 32):
    g = torch.Generator().manual_seed(0)
    shapes = [(1, heads, queries, dim), (1, heads, keys, dim), (1, heads, keys, dim)]
    return [torch.randn(s, generator=g).to(dtype) for s in shapes]


@pytest.fixture
def blocked_calls(monkeypatch):
    calls = []
    original = attention_kernel._blocked_attention

    def counting(q, k, v):
        calls.append((q.shape[-2], k.shape[-2]))
        return original(q, k, v)

    monkeypatch.setattr(attention_kernel, "_blocked_attention", counting)
    return calls


def test_blocked_attention_matches_fused_kernel(blocked_calls):
    q, k, v = qkv(1100, 1300)  # not a multiple of the block: the last block is partial
    with torch.no_grad():
        ours = attention_kernel.attention(q, k, v)
        fused = F.scaled_dot_product_attention(q, k, v)
    exact = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    assert blocked_calls == [(1100, 1300)]
    assert ours.dtype == torch.bfloat16 and ours.shape == exact.shape

    def error(x):
        return ((x.float() - exact).norm() / exact.norm()).item()

    # bf16 scores cost some precision over the fused kernel's (measured 0.6% vs 0.4%)
    assert error(ours) < 0.01 and error(ours) < 2.5 * error(fused)


def test_the_image_encoders_windows_take_the_blocked_path_with_the_fused_kernels_result(blocked_calls):
    from napari_sam2.modeling.hiera import WINDOW_MIN_TOKENS

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(25, 4, 196, 32, generator=g).to(torch.bfloat16) for _ in range(3))  # 14x14 windows
    with torch.no_grad():
        ours = attention_kernel.attention(q, k, v, min_tokens=WINDOW_MIN_TOKENS)
    exact = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    assert blocked_calls == [(196, 196)] and ours.shape == exact.shape
    assert ((ours.float() - exact).norm() / exact.norm()).item() < 0.01


def test_fused_kernel_where_blocking_does_not_pay_or_is_wrong(blocked_calls):
    with torch.no_grad():
        attention_kernel.attention(*qkv(1100, 1300, dtype=torch.float32))  # fp32: fused is as fast
        attention_kernel.attention(*qkv(1100, 8))  # few keys (decoder tokens)
        attention_kernel.attention(*qkv(8, 1300))  # few queries (decoder tokens)
        attention_kernel.attention(*qkv(64, 1300))  # memory attention in windows: its scores stay fp32
        attention_kernel.attention(*qkv(1100, 1300), dropout_p=0.1)  # training
    attention_kernel.attention(*qkv(1100, 1300))  # gradients: the fused kernel's backward
    assert blocked_calls == []


def test_fast_tracking_is_as_accurate_as_fp32(blocked_calls):
    """The built-in model at 512 px (32x32 memory tokens) tracks cells as well in bf16 as in fp32.

    Tracking is chaotic (a small difference on one frame can grow), so the test compares both
    precisions with the ground truth rather than mask by mask.
    """
    model = load_model(image_size=512)
    movie, labels, tracks = timelapse(8, (512, 512), 48, seed=HELD_OUT_SEED)
    cells = [i for i, (first, last, _) in tracks.items() if first == 0 and last == 7][:4]
    scores = {}
    for precision in ("fp32", "bf16"):
        tracker = StackTracker(model, movie, precision=precision)
        for cell in cells:
            tracker.add_points(0, cell, centre_click(labels[0] == cell)[None])
        scores[precision] = np.mean(
            [iou(m, labels[r.frame] == c) for r in tracker.propagate("forward") for c, m in zip(r.obj_ids, r.masks)]
        )
    assert blocked_calls  # memory attention and the trunk's global attention took the blocked path
    print("tracking IoU fp32 / bf16:", scores)
    assert scores["fp32"] >= 0.6
    assert abs(scores["bf16"] - scores["fp32"]) <= 0.03
