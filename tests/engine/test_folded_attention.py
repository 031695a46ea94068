"""The mask decoder's folded attention (image-side projections carried into the prompt tokens)
gives the plain attention's outputs, and a click's masks are those of the plain decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import build_model
from napari_sam2.engine.predictor import ImagePredictor
from napari_sam2.modeling import two_way_transformer
from napari_sam2.modeling.attention import Attention
from napari_sam2.modeling.folded_attention import folds, image_to_token, token_to_image


@pytest.fixture
def attn() -> Attention:
    torch.manual_seed(0)
    layer = Attention(256, 8, downsample_rate=2).eval()
    with torch.no_grad():
        for linear in (layer.q_proj, layer.k_proj, layer.v_proj, layer.out_proj):
            linear.bias.normal_()  # biases matter in the folded formulas
    return layer


def test_token_to_image_matches_plain(attn):
    q, keys, values = torch.randn(2, 7, 256), torch.randn(2, 300, 256), torch.randn(2, 300, 256)
    with torch.no_grad():
        torch.testing.assert_close(token_to_image(attn, q, keys, values), attn(q, keys, values), rtol=1e-5, atol=1e-5)


def test_image_to_token_matches_plain_with_and_without_projected_queries(attn):
    image, k, v = torch.randn(2, 300, 256), torch.randn(2, 7, 256), torch.randn(2, 7, 256)
    with torch.no_grad():
        torch.testing.assert_close(image_to_token(attn, image, k, v), attn(image, k, v), rtol=1e-5, atol=1e-5)
        projected = attn.q_proj(image)
        torch.testing.assert_close(
            image_to_token(attn, projected, k, v, projected_q=True),
            attn(projected, k, v, projected="q"),
            rtol=1e-5,
            atol=1e-5,
        )


def test_folding_only_where_it_is_smaller_and_never_in_training(attn):
    assert folds(attn, 8) and not folds(attn, 16)  # 8 heads x 16 tokens = 128 channels
    assert not folds(attn.train(), 2)


def test_a_click_gives_the_plain_decoders_masks(monkeypatch):
    torch.manual_seed(0)
    model = build_model("sam2.1_hiera_test", device="cpu", image_size=256)
    image = np.random.default_rng(0).integers(0, 255, (200, 220)).astype(np.uint8)
    image[60:120, 80:150] = 230
    predictor = ImagePredictor(model, precision="fp32")
    predictor.set_image(image)
    calls = []
    real = two_way_transformer.token_to_image
    monkeypatch.setattr(two_way_transformer, "token_to_image", lambda *a: calls.append(1) or real(*a))
    folded = predictor.predict([[110, 90]], [1])
    boxes = predictor.predict_boxes(np.array([[80, 60, 150, 120], [10, 10, 60, 50]]))
    assert calls  # the folded path ran
    monkeypatch.setattr(two_way_transformer, "folds", lambda *a: False)
    plain = predictor.predict([[110, 90]], [1])
    plain_boxes = predictor.predict_boxes(np.array([[80, 60, 150, 120], [10, 10, 60, 50]]))
    for ours, ref in ((folded, plain), (boxes, plain_boxes)):
        np.testing.assert_allclose(ours.logits, ref.logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ours.scores, ref.scores, atol=1e-5)
        assert (ours.masks != ref.masks).mean() < 1e-4
