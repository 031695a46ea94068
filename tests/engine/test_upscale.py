"""Masks upscaled only around what is positive equal the masks of the whole upscale."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from napari_sam2.engine.upscale import upscaled_masks
from napari_sam2.modeling.mask_decoder import stability_score


def _whole(logits, hw, threshold=0.0, offset=1.0):
    full = F.interpolate(logits[None], size=hw, mode="bilinear", align_corners=False)[0]
    return full > threshold, stability_score(full, threshold, offset)


@pytest.mark.parametrize("hw", [(1024, 1024), (768, 512), (1000, 1000)])  # 4x, 3x/2x, not whole
@pytest.mark.parametrize("where", ["nucleus", "edge", "everywhere", "nowhere"])
def test_upscaled_masks_equal_the_whole_upscale(hw, where):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 256, 256, generator=g) * 2 - 12  # far below -1
    if where == "nucleus":
        logits[:, 100:130, 90:125] += 16
    elif where == "edge":
        logits[:, :20, 240:] += 16
    elif where == "everywhere":
        logits += 12
    else:
        logits.clamp_(max=-1.5)
    masks, stability = upscaled_masks(logits, hw, 0.0, 1.0)
    whole_masks, whole_stability = _whole(logits, hw)
    assert masks.shape == (3, *hw) and masks.dtype == torch.bool
    assert torch.equal(masks, whole_masks)
    assert torch.equal(stability, whole_stability)
    if where == "nucleus":
        assert 0 < masks.float().mean() < 0.05
    if where == "nowhere":
        assert not masks.any() and torch.equal(stability, torch.ones(3))
