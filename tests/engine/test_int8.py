"""The int8 path: which layers are quantised, the user's model untouched, each layer close to
fp32, masks close to fp32 (on real nuclei with the built-in model), tracking in int8, its own
cache entries, and `auto` choosing it only for models measured within the rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from napari_sam2 import build_model
from napari_sam2.engine.embedding_store import EmbeddingStore
from napari_sam2.engine.precision import (
    INT8,
    cpu_has_vnni,
    int8_kernels_available,
    resolve_precision,
)
from napari_sam2.engine.predictor import ImagePredictor
from napari_sam2.engine.quantize import Int8Linear, int8_model, quantize_activations, source_model
from napari_sam2.engine.tracker import StackTracker

DSB_VAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "dsb2018" / "val"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("sam2.1_hiera_test", device="cpu", image_size=128)
    with torch.no_grad():
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return m


def linears(module: nn.Module) -> tuple[int, int]:
    kinds = [type(m) for m in module.modules()]
    return kinds.count(nn.Linear), kinds.count(Int8Linear)


def test_encoder_and_memory_attention_are_int8_the_rest_and_the_users_model_are_not(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = int8_model(model)
    assert linears(q.image_encoder)[0] == 0 and linears(q.image_encoder)[1] == linears(model.image_encoder)[0] > 0
    assert linears(q.memory_attention)[0] == 0 and linears(q.memory_attention)[1] > 0
    assert q.sam_mask_decoder is model.sam_mask_decoder and q.memory_encoder is model.memory_encoder
    assert linears(model.image_encoder)[1] == 0  # the user's model is unchanged
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert int8_model(model) is q and source_model(q) is model


def test_an_int8_layer_follows_fp32_and_its_fused_activations_are_exact():
    torch.manual_seed(0)
    linear, x = nn.Linear(192, 768), torch.randn(500, 192) * 3
    with torch.no_grad():
        ref = linear(x)
        plain, fused, relu = Int8Linear(linear)(x), Int8Linear(linear, "gelu")(x), Int8Linear(linear, "relu")(x)
    assert plain.dtype == torch.float32 and 0 < float((plain - ref).norm() / ref.norm()) < 0.03
    assert torch.allclose(fused, F.gelu(plain), atol=1e-5)  # the exact (erf) GELU, in the kernel
    assert torch.allclose(relu, torch.relu(plain), atol=1e-5)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        assert Int8Linear(linear)(x).dtype == torch.bfloat16  # the surrounding compute dtype
        assert Int8Linear(linear, float_out=True)(x).dtype == torch.float32


def test_activation_quantisation_without_quantized_tensors(monkeypatch):
    x = torch.randn(300, 64) * 5 + 1
    fused, scale, zero = quantize_activations(x, 255)
    monkeypatch.delattr(torch, "quantize_per_tensor")  # deprecated upstream: the fallback takes over
    plain, scale2, zero2 = quantize_activations(x, 255)
    assert (scale, zero) == (scale2, zero2) and fused.dtype == plain.dtype == torch.uint8
    assert (fused.int() - plain.int()).abs().max() <= 1
    restored = (plain.float() - zero) * scale
    assert (restored - x).abs().max() <= scale  # within one step of the range


def test_auto_picks_int8_only_for_a_model_measured_within_the_rule(tmp_path):
    from napari_sam2 import load_model

    cpu = torch.device("cpu")
    plain = build_model("sam2.1_hiera_tiny", image_size=256, device="cpu")
    assert resolve_precision("auto", cpu, plain) != INT8
    path = tmp_path / "tuned.pt"
    torch.save({"model": plain.state_dict()}, path)
    for within, expected in ((False, False), (True, True)):
        path.with_suffix(".json").write_text(json.dumps({"image_size": 256, "int8": {"within_rule": within}}))
        model = load_model(path, device="cpu")
        assert getattr(model, "int8_within_rule", False) is expected
        picked = resolve_precision("auto", cpu, model)
        assert (picked == INT8) == (expected and cpu_has_vnni() and int8_kernels_available())
        assert resolve_precision("bf16", cpu, model) == torch.bfloat16  # an explicit choice stands


def test_int8_is_cpu_only():
    assert resolve_precision("int8", torch.device("cpu")) == INT8
    with pytest.raises(ValueError, match="CPUs only"):
        resolve_precision("int8", torch.device("cuda"))


def test_int8_embedding_is_close_to_fp32_and_cached_apart(model, tmp_path):
    image = np.random.default_rng(0).integers(0, 4000, (96, 96)).astype(np.uint16)
    store = EmbeddingStore(tmp_path)
    fp32 = ImagePredictor(model, precision="fp32", embedding_store=store).set_image(image)
    int8 = ImagePredictor(model, precision="int8", embedding_store=store).set_image(image)
    assert store.writes == 2  # one entry per precision
    error = float((int8.embedding - fp32.embedding).norm() / fp32.embedding.norm())
    assert 0 < error < 0.1


def test_int8_tracking_runs_and_follows_fp32(model):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 4000, (4, 64, 64)).astype(np.uint16)
    results = {}
    for precision in ("fp32", "int8"):
        tracker = StackTracker(model, stack, precision=precision)
        tracker.add_points(0, 1, [[30, 30]], [1])
        results[precision] = np.stack([r.masks[0] for r in tracker.propagate("forward")])
    a, b = results["fp32"], results["int8"]
    assert a.any() and (a & b).sum() / (a | b).sum() > 0.8


@pytest.mark.skipif(not DSB_VAL.is_dir(), reason="the real validation images are not here")
def test_int8_masks_of_real_nuclei_match_fp32_with_the_built_in_model():
    import tifffile
    from PIL import Image

    from napari_sam2.checkpoints.loading import load_model
    from napari_sam2.checkpoints.shipped import SHIPPED_MODEL, has_shipped_model

    if not has_shipped_model():
        pytest.skip("the built-in model is not installed")
    model = load_model(SHIPPED_MODEL, device="cpu")
    ious = []
    for path in sorted((DSB_VAL / "images").glob("*.png"))[:2]:
        image = np.asarray(Image.open(path))
        labels = tifffile.imread(DSB_VAL / "labels" / f"{path.stem}.tif")
        fp32, int8 = ImagePredictor(model, precision="fp32"), ImagePredictor(model, precision="int8")
        fp32.set_image(image)
        int8.set_image(image)
        for obj in [i for i in np.unique(labels) if i][:4]:
            rows, cols = np.nonzero(labels == obj)
            k = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
            a, b = fp32.predict([[cols[k], rows[k]]]), int8.predict([[cols[k], rows[k]]])
            ma, mb = a.masks[a.best], b.masks[b.best]
            ious.append((ma & mb).sum() / max((ma | mb).sum(), 1))
    assert np.median(ious) >= 0.9, ious
