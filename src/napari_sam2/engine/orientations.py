"""The image seen in several orientations (flips and transposes), each decoded and the logits
averaged: test-time augmentation for prompts.

A small model's mask depends on how the image happens to be turned; averaging its logits over
the 4 flips (or the 8 flips and transposes) gives steadier borders, at that many embeddings per
image. The model's input is the image stretched to a square, so every orientation is a flip or
a swap of axes in model-input coordinates and on the low-res grid.
"""

from __future__ import annotations

import numpy as np
import torch

from ..modeling.prompt_encoder import LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT
from ..modeling.sam2 import SAM2Model

CHOICES = (1, 4, 8)


def default_orientations(model: SAM2Model) -> int:
    """The orientations a model's prompts are averaged over unless told otherwise: its own
    (chosen on validation images and recorded in its metadata), else 1."""
    n = getattr(model, "prompt_orientations", 1)
    if n not in CHOICES:
        raise ValueError(
            f"The model's metadata asks for prompt_orientations {n!r}; it must be 1, 4 or 8: fix "
            "'prompt_orientations' in the .json file beside the checkpoint, or remove it."
        )
    return int(n)


def check_orientations(n: int) -> int:
    """`n` if it is a number of orientations the predictor averages over (1, 4 or 8)."""
    if n not in CHOICES:
        raise ValueError(f"orientations={n!r}: choose 1 (the image as it is), 4 (its flips) or 8 (flips and transposes).")
    return int(n)


def _parts(view: int) -> tuple[bool, bool, bool]:
    """(transpose, flip left-right, flip up-down) of orientation `view` (0 = the image as is)."""
    return view >= 4, bool(view & 1), bool(view & 2)


def oriented_image(rgb: np.ndarray, view: int) -> np.ndarray:
    """An (H, W, C) image in orientation `view`: transposed first, then flipped."""
    transpose, flip_x, flip_y = _parts(view)
    if transpose:
        rgb = rgb.transpose(1, 0, 2)
    if flip_x:
        rgb = rgb[:, ::-1]
    if flip_y:
        rgb = rgb[::-1]
    return np.ascontiguousarray(rgb)


def oriented_points(coords: torch.Tensor, view: int, size: int) -> torch.Tensor:
    """(..., 2) (x, y) model-input coordinates of a square `size` input in orientation `view`."""
    transpose, flip_x, flip_y = _parts(view)
    x, y = coords[..., 0], coords[..., 1]
    if transpose:
        x, y = y, x
    if flip_x:
        x = size - x
    if flip_y:
        y = size - y
    return torch.stack([x, y], dim=-1)


def oriented_boxes(coords: torch.Tensor, labels: torch.Tensor, view: int, size: int) -> torch.Tensor:
    """`oriented_points`, with each box's two corners made its top-left and bottom-right again."""
    out = oriented_points(coords, view, size)
    first, second = labels == LABEL_BOX_TOP_LEFT, labels == LABEL_BOX_BOTTOM_RIGHT
    if bool(first.any()):
        a, b = out[first], out[second]
        out[first], out[second] = torch.minimum(a, b), torch.maximum(a, b)
    return out


def oriented_grid(grid: torch.Tensor, view: int) -> torch.Tensor:
    """A square (..., h, w) grid (low-res logits, a mask prompt) in orientation `view`."""
    transpose, flip_x, flip_y = _parts(view)
    if transpose:
        grid = grid.transpose(-1, -2)
    if flip_x:
        grid = grid.flip(-1)
    if flip_y:
        grid = grid.flip(-2)
    return grid


def upright_grid(grid: torch.Tensor, view: int) -> torch.Tensor:
    """The inverse of `oriented_grid`: a grid of orientation `view` back in the image's own."""
    transpose, flip_x, flip_y = _parts(view)
    if flip_y:
        grid = grid.flip(-2)
    if flip_x:
        grid = grid.flip(-1)
    if transpose:
        grid = grid.transpose(-1, -2)
    return grid


def oriented_prompts(views: int, coords, labels, mask, size: int):
    """Decoder prompts ((B, N, 2) model-input points, (B, N) labels, (B or 1, 1, h, w) mask
    logits; each may be None) for every orientation, orientation after orientation, as an
    embedding of `views` orientations orders its batch."""
    if coords is not None:
        coords = torch.cat([oriented_boxes(coords, labels, v, size) for v in range(views)])
        labels = labels.repeat(views, 1)
    if mask is not None:
        if coords is not None and len(mask) != len(coords) // views:
            mask = mask.expand(len(coords) // views, -1, -1, -1)
        mask = torch.cat([oriented_grid(mask, v) for v in range(views)])
    return coords, labels, mask


def upright_mean(low_res: torch.Tensor, iou: torch.Tensor, views: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder outputs of `views` orientations, orientation after orientation ((V * B, M, h, w)
    logits, (V * B, M) predicted IoU), turned back and averaged to (B, M, h, w) and (B, M)."""
    grids = torch.stack([upright_grid(part, v) for v, part in enumerate(low_res.chunk(views))])
    return grids.mean(0), iou.reshape(views, -1, iou.shape[-1]).mean(0)
