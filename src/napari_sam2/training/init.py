"""Initialisation for training from scratch."""

from __future__ import annotations

import torch

from ..modeling.sam2 import SAM2Model


def tie_cross_attention(model: SAM2Model, gain: float = 4.0) -> None:
    """Start every image<->prompt attention of the decoder with equal query and key projections,
    scaled by `gain`, so that an image position attends to a prompt at the same position from the
    first step (both carry the same random-Fourier position encoding).

    With default-initialised projections the attention logits of matching positions differ by
    ~0.5 from the rest, too flat to matter; gain 4 (16x the logits) makes the match sharp.
    """
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


def init_from_scratch(model: SAM2Model, position_std: float = 1.0, attention_gain: float = 4.0) -> SAM2Model:
    """Initialise a random model so that it learns which object a prompt means.

    Trained from scratch with SAM 2's own initialisation, the decoder settles on 'segment every
    object' for any click. Two changes fix that: the trunk's position embedding (zero in SAM 2)
    gets a random smooth pattern, so image features say where they are; and the decoder's
    image<->prompt attentions start tied and sharp (`tie_cross_attention`), so a click attends
    to its own place from the first step. On synthetic nuclei, 1-click IoU then leaves the
    'every object' plateau after ~250 steps instead of never.
    """
    with torch.no_grad():
        model.image_encoder.trunk.pos_embed.normal_(0.0, position_std)
    tie_cross_attention(model, attention_gain)
    return model
