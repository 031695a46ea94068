"""Build the reference implementation with seeded random weights (for parity tests only)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

HAVE_ORACLE = importlib.util.find_spec("sam2") is not None and importlib.util.find_spec("hydra") is not None
requires_oracle = pytest.mark.skipif(not HAVE_ORACLE, reason="the reference `sam2` package is not installed")

CONFIG_FILES = {
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


def build_oracle(preset: str, image_size: int = 1024, seed: int = 0, video: bool = False):
    """The reference model in eval mode with every parameter randomised.

    Random init leaves many tensors at 0 or 1 (position embeddings, layer-scale gammas, norms)
    and calls every object absent; noise on every parameter and a positive object-score bias
    make all code paths matter.
    """
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    torch.manual_seed(seed)
    overrides = [f"++model.image_size={image_size}"]
    builder = build_sam2_video_predictor if video else build_sam2
    model = builder(CONFIG_FILES[preset], None, device="cpu", hydra_overrides_extra=overrides)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=generator))
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(2.0)
    return model.eval()


def save_official_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """Write `model` the way the official checkpoints are written: {"model": state_dict}.

    Fails with the figures when the disk cannot hold it (a large model's file is 0.9 GB).
    """
    state = model.state_dict()
    needed = sum(t.numel() * t.element_size() for t in state.values())
    free = shutil.disk_usage(path.parent).free
    if free < needed + 2**28:
        gb = 2**30
        pytest.fail(
            f"{path.parent} has {free / gb:.2f} GB free and this checkpoint needs "
            f"{needed / gb:.2f} GB: free some disk"
        )
    torch.save({"model": state}, path)
    return path
