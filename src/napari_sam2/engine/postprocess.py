"""Hole filling and sprinkle removal on mask logits, on every device (no CUDA extension needed).

The official predictor does this with a CUDA-only kernel and silently skips it elsewhere; here the
8-connected components come from scikit-image on the CPU, with the official rule and values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from skimage.measure import label

LOGIT_CLAMP = 32.0  # low-res logits are returned clamped, ready to feed back as mask_input


def _small_components(mask: np.ndarray, max_area: float) -> np.ndarray:
    """True where `mask` (N, H, W) belongs to an 8-connected component of area <= max_area.

    The N images are stacked into one tall image separated by empty rows, so one labelling call
    handles the whole batch without joining components across images.
    """
    n, h, w = mask.shape
    tall = np.zeros((n, h + 1, w), dtype=bool)
    tall[:, :h] = mask
    labels = label(tall.reshape(n * (h + 1), w), connectivity=2)
    areas = np.bincount(labels.ravel())
    small = areas <= max_area
    small[0] = False  # label 0 is outside the mask
    return small[labels].reshape(n, h + 1, w)[:, :h]


def fill_holes_and_remove_sprinkles(
    logits: torch.Tensor,
    max_hole_area: float,
    max_sprinkle_area: float,
    threshold: float = 0.0,
    *,
    hole_value: float | None = None,
    sprinkle_value: float | None = None,
) -> torch.Tensor:
    """Fill small background components and remove small foreground components of mask logits.

    logits: (..., H, W), e.g. (N, 1, H, W) or (N, H, W); each trailing H x W plane is separate.
    Official rule (SAM2Transforms.postprocess_masks): with 8-connectivity, every component of
    `logits <= threshold` with area <= max_hole_area (border-touching ones included) is set to
    `hole_value` (default threshold + 10), and every component of `logits > threshold` with area
    <= max_sprinkle_area is set to `sprinkle_value` (default threshold - 10). Both component sets
    are found on the input logits (not on the hole-filled ones), holes are written first, then
    sprinkles. A step is skipped when its area is <= 0; with both skipped the input is returned.
    The result keeps the input's device and dtype.
    """
    do_holes, do_sprinkles = max_hole_area > 0, max_sprinkle_area > 0
    if not (do_holes or do_sprinkles):
        return logits
    if logits.ndim < 2:
        raise ValueError(
            f"logits must have at least 2 dims (..., H, W); got shape {tuple(logits.shape)}."
        )
    if logits.numel() == 0:
        return logits
    planes = logits.detach().reshape(-1, *logits.shape[-2:]).to("cpu", torch.float32).numpy()
    out = logits
    if do_holes:
        is_hole = _small_components(planes <= threshold, max_hole_area)
        fill = threshold + 10.0 if hole_value is None else hole_value
        fill_t = torch.tensor(fill, dtype=logits.dtype)
        out = torch.where(_to_device(is_hole, logits), fill_t, out)
    if do_sprinkles:
        is_sprinkle = _small_components(planes > threshold, max_sprinkle_area)
        fill = threshold - 10.0 if sprinkle_value is None else sprinkle_value
        fill_t = torch.tensor(fill, dtype=logits.dtype)
        out = torch.where(_to_device(is_sprinkle, logits), fill_t, out)
    return out


def _to_device(mask: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """A (N, H, W) boolean array as a tensor shaped and placed like `like`."""
    return torch.from_numpy(mask).reshape(like.shape).to(like.device)


def with_holes_filled(out: Any, area: int) -> Any:
    """A decoder output (with `low_res_masks`) whose background holes up to `area` low-res pixels
    are filled with a small positive logit (0.1), as the tracker does on every frame."""
    if area <= 0:
        return out
    out.low_res_masks = fill_holes_and_remove_sprinkles(out.low_res_masks.float(), area, 0, hole_value=0.1)
    return out
