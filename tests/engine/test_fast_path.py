"""The fast (bf16) path against our fp32 path: same prompts, masks must agree.

Random weights give tiny logits (|logit| < 0.5), so a 1% feature error moves mask boundaries
far more than it does with trained weights: this is a harsh setting for the fast path.
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from napari_sam2 import build_model
from napari_sam2.engine.precision import compute_precision, resolve_precision
from napari_sam2.engine.predictor import ImagePredictor


@pytest.fixture(scope="module")
def predictors():
    torch.manual_seed(0)
    model = build_model("sam2.1_hiera_tiny", device="cpu", image_size=512)
    image = np.repeat(skimage.data.cell()[..., None], 3, -1)
    exact, fast = ImagePredictor(model, precision="fp32"), ImagePredictor(model, precision="bf16")
    exact.set_image(image)
    fast.set_image(image)
    return exact, fast, image.shape[:2]


def test_fast_path_masks_match_fp32(predictors):
    exact, fast, (h, w) = predictors
    rng = np.random.default_rng(0)
    ious = []
    for _ in range(25):
        point = [[rng.uniform(0, w), rng.uniform(0, h)]]
        a, b = exact.predict(points=point), fast.predict(points=point)
        for m1, m2 in zip(a.masks, b.masks):
            ious.append((m1 & m2).sum() / max((m1 | m2).sum(), 1))
    ious = np.array(ious)
    print("bf16 vs fp32 mask IoU percentiles 0/5/50/100:", np.percentile(ious, [0, 5, 50, 100]).round(4))
    assert np.median(ious) >= 0.98
    assert ious.min() >= 0.95


def test_fast_embedding_is_close(predictors):
    exact, fast, _ = predictors
    a = exact.get_embedding().embedding.float()
    b = fast.get_embedding().embedding.float()
    assert ((a - b).norm() / a.norm()).item() < 0.03


def test_auto_precision_choice(monkeypatch):
    import napari_sam2.engine.precision as precision

    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", cpu) is torch.float32
    assert resolve_precision("auto", torch.device("mps")) is torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", torch.device("cuda")) is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", torch.device("cuda")) is torch.bfloat16
    assert resolve_precision("int8", cpu) is torch.qint8  # int8 linears, the rest in fp32
    with pytest.raises(ValueError, match="Unknown precision 'int4': use one of .*int8"):
        resolve_precision("int4", cpu)
    with compute_precision(cpu, torch.float32):
        assert not torch.is_autocast_enabled("cpu")
    with compute_precision(cpu, torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
