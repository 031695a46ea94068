"""Grow a trained model's trunk deeper without changing what it computes.

A deeper trunk is built; every trained block keeps its place within its stage (the first block
of a stage pools and widens, so it stays first) and every added block starts as the identity
(its attention and MLP output projections zero), so the grown model's outputs equal the trained
one's and training goes on from there instead of from scratch.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..modeling.config import SAM2Config
from ..modeling.sam2 import SAM2Model


def block_mapping(old_stages: tuple[int, ...], new_stages: tuple[int, ...]) -> dict[int, int]:
    """New block index of each old block: stage by stage, the old blocks first."""
    if len(old_stages) != len(new_stages) or any(n < o for o, n in zip(old_stages, new_stages)):
        raise ValueError(f"cannot grow stages {old_stages} into {new_stages}: every stage must keep or add blocks")
    mapping, old_start, new_start = {}, 0, 0
    for old, new in zip(old_stages, new_stages):
        for j in range(old):
            mapping[old_start + j] = new_start + j
        old_start, new_start = old_start + old, new_start + new
    return mapping


def _check_compatible(old: SAM2Config, new: SAM2Config) -> None:
    """Only the trunk's blocks per stage (and where attention is global) may differ."""
    depth = {"stages": old.trunk.stages, "global_att_blocks": old.trunk.global_att_blocks}
    names = {"name": old.name, "checkpoint_file": old.checkpoint_file, "aliases": old.aliases}
    if replace(new, trunk=replace(new.trunk, **depth), image_size=old.image_size, **names) != old:
        raise ValueError(f"{new.name} is not a deeper {old.name}: only the number of blocks per stage may differ")


def grow(model: SAM2Model, target: SAM2Config) -> SAM2Model:
    """`target`'s architecture holding `model`'s weights; added trunk blocks are identities."""
    _check_compatible(model.config, target)
    mapping = block_mapping(model.config.trunk.stages, target.trunk.stages)
    old_global = {mapping[i] for i in model.config.trunk.global_att_blocks}
    if not old_global <= set(target.trunk.global_att_blocks):
        raise ValueError(f"{target.name} must keep global attention at the grown blocks {sorted(old_global)}")
    grown = SAM2Model(target.with_image_size(model.image_size))
    grown.to(device=next(model.parameters()).device, dtype=next(model.parameters()).dtype)
    state = {}
    for key, value in model.state_dict().items():
        prefix = "image_encoder.trunk.blocks."
        if key.startswith(prefix):
            index, rest = key[len(prefix):].split(".", 1)
            key = f"{prefix}{mapping[int(index)]}.{rest}"
        state[key] = value
    added = set(range(len(grown.image_encoder.trunk.blocks))) - set(mapping.values())
    with torch.no_grad():
        for i in added:
            block = grown.image_encoder.trunk.blocks[i]
            for layer in (block.attn.proj, block.mlp.layers[-1]):
                layer.weight.zero_()
                layer.bias.zero_()
            for key, value in block.state_dict().items():
                state[f"image_encoder.trunk.blocks.{i}.{key}"] = value
    grown.load_state_dict(state, strict=True)
    if getattr(model, "upscale_smoothing", None):  # the input rule goes on with the weights
        grown.upscale_smoothing = model.upscale_smoothing
    return grown.train(model.training)
