"""The int8 path: which layers are quantised, the user's model untouched, masks close to fp32
(on real nuclei with the built-in model), tracking in int8, and its own cache entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from napari_sam2 import build_model
from napari_sam2.engine.embedding_store import EmbeddingStore
from napari_sam2.engine.precision import INT8, resolve_precision
from napari_sam2.engine.predictor import ImagePredictor
from napari_sam2.engine.quantize import Int8Linear, int8_model, source_model
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
    from napari_sam2.checkpoints.shipped import has_shipped_model

    if not has_shipped_model():
        pytest.skip("the built-in model is not installed")
    model = load_model("napari_sam2_micro", device="cpu")
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
