"""Growing a trained trunk deeper keeps what the model computes and trains the added blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import build_model, load_model
from napari_sam2.engine.predictor import ImagePredictor
from napari_sam2.modeling.config import get_config
from napari_sam2.synthetic import nuclei_image
from napari_sam2.training.grow import block_mapping, grow


def test_block_mapping_keeps_each_trained_block_in_its_stage_first():
    assert block_mapping((1, 2, 3, 1), (2, 3, 6, 1)) == {0: 0, 1: 2, 2: 3, 3: 5, 4: 6, 5: 7, 6: 11}
    with pytest.raises(ValueError, match="every stage must keep or add blocks"):
        block_mapping((2, 3, 6, 1), (1, 2, 3, 1))


def _trained_micro() -> torch.nn.Module:
    """A micro model at 256 px whose every weight is random and nonzero (as after training)."""
    torch.manual_seed(0)
    model = build_model("napari_sam2_micro", device="cpu", image_size=256)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def test_grown_model_predicts_exactly_what_the_trained_one_did(tmp_path):
    micro = _trained_micro()
    mini = grow(micro, get_config("napari_sam2_mini"))
    assert mini.config.name == "napari_sam2_mini" and mini.image_size == 256
    assert len(mini.image_encoder.trunk.blocks) == 12 > len(micro.image_encoder.trunk.blocks) == 7
    image, labels = nuclei_image((256, 256), seed=3)
    outputs = []
    for model in (micro, mini):
        predictor = ImagePredictor(model, precision="fp32")
        predictor.set_image(image)
        ys, xs = np.nonzero(labels == labels.max())
        outputs.append(predictor.predict(points=np.array([[xs.mean(), ys.mean()]]), multimask_output=True))
    np.testing.assert_allclose(outputs[1].logits, outputs[0].logits, atol=1e-5)
    np.testing.assert_allclose(outputs[1].scores, outputs[0].scores, atol=1e-6)
    # saved in the official format, it is recognised as the deeper preset from its tensors
    torch.save({"model": mini.state_dict()}, tmp_path / "mini.pt")
    assert load_model(tmp_path / "mini.pt", device="cpu").config.name == "napari_sam2_mini"


def test_added_blocks_learn():
    mini = grow(_trained_micro(), get_config("napari_sam2_mini")).train()
    added = mini.image_encoder.trunk.blocks[8]  # the first block added at stride 16
    x = torch.rand(1, 3, 256, 256)
    features, _ = mini.image_encoder(x)
    sum(f.square().mean() for f in features).backward()
    assert added.mlp.layers[-1].weight.grad.abs().sum() > 0  # gradients reach the zeroed outputs


def test_grow_refuses_other_architectures():
    with pytest.raises(ValueError, match="not a deeper"):
        grow(_trained_micro(), get_config("sam2.1_hiera_tiny"))


def test_cli_grow_to_needs_a_trained_model(tmp_path, capsys):
    from napari_sam2.cli import main

    code = main(["train", str(tmp_path / "run"), "--from-scratch", "napari_sam2_micro", "--grow-to", "napari_sam2_mini"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--grow-to grows a trained model" in err[0]
    assert not (tmp_path / "run").exists()
