"""Optional torch.compile of the heavy parts (image encoder, memory attention, mask decoder)."""

from __future__ import annotations

import torch

from ..modeling.sam2 import SAM2Model


def compile_model(model: SAM2Model, mode: str | None = None) -> SAM2Model:
    """Compile `model`'s image encoder, memory attention and mask decoder in place; returns it.

    The memory attention is compiled with dynamic shapes (the number of memories varies); the
    others with static shapes. The first calls are slow (compilation), later ones faster.
    Works on CPU (needs a C++ compiler) and CUDA; calling it twice does nothing more.
    """
    if getattr(model, "_napari_sam2_compiled", False):
        return model
    model.image_encoder.forward = torch.compile(model.image_encoder.forward, mode=mode, dynamic=False)
    model.memory_attention.forward = torch.compile(model.memory_attention.forward, mode=mode, dynamic=True)
    model.sam_mask_decoder.forward = torch.compile(model.sam_mask_decoder.forward, mode=mode, dynamic=False)
    model._napari_sam2_compiled = True
    return model
