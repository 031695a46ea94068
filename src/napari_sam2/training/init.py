"""Initialisation for training from scratch."""

from __future__ import annotations

import torch

from ..modeling.sam2 import SAM2Model


def tie_cross_attention(model: SAM2Model, gain: float = 1.0) -> None:
    """Start every image<->prompt attention of the decoder with equal query and key projections,
    so that an image position attends to a prompt at the same position from the first step
    (both carry the same random-Fourier position encoding)."""
    transformer = model.sam_mask_decoder.transformer
    attentions = [layer.cross_attn_token_to_image for layer in transformer.layers]
    attentions += [layer.cross_attn_image_to_token for layer in transformer.layers]
    attentions.append(transformer.final_attn_token_to_image)
    with torch.no_grad():
        for attn in attentions:
            attn.q_proj.weight.mul_(gain)
            attn.k_proj.weight.copy_(attn.q_proj.weight)
            attn.q_proj.bias.zero_()
            attn.k_proj.bias.zero_()


def init_from_scratch(model: SAM2Model, position_std: float = 1.0) -> SAM2Model:
    """Give the trunk's position embedding a random smooth pattern (it starts at zero in SAM 2).

    SAM 2's decoder can only tell one clicked object from its neighbours if the image features
    say where they are; a pretrained trunk's do, a zero-initialised one's do not, and training
    from scratch then settles on 'segment every object' for any click. With a random position
    code from the first step, click-specific masks are learned.
    """
    with torch.no_grad():
        model.image_encoder.trunk.pos_embed.normal_(0.0, position_std)
    return model
