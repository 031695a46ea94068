"""Low-res mask logits to binary masks at the image size, with their stability scores.

A bilinear value is a weighted mean of its four low-res neighbours, so it exceeds a threshold
only next to a low-res pixel that does. When the image is a whole multiple of the low-res grid
(1024 px for SAM 2's 256 px logits), only the box of the low-res pixels above the lowest
threshold (the stability score's, threshold - offset), two pixels around it, is upscaled: the
crop's samples are the whole image's, bit for bit, and everything outside is below every
threshold. A click on a nucleus then upscales a few thousand pixels instead of three million.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..modeling.mask_decoder import stability_score


def upscaled_masks(
    logits: torch.Tensor, hw: tuple[int, int], threshold: float, offset: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks (M, H, W) of `logits` (M, h, w) upscaled bilinearly to `hw` and thresholded, and
    the stability score of each (IoU of the masks at threshold +/- offset)."""
    (h, w), (height, width) = logits.shape[-2:], hw
    whole = logits.device.type != "cpu" or height % h or width % w
    if not whole:
        low = (logits > min(threshold, threshold - offset)).any(0)
        rows, cols = low.any(1).nonzero()[:, 0], low.any(0).nonzero()[:, 0]
        if len(rows) == 0:  # nothing reaches the lowest threshold: empty, stable as the decoder says
            return torch.zeros((len(logits), height, width), dtype=torch.bool), torch.ones(len(logits))
        r0, r1 = max(int(rows[0]) - 2, 0), min(int(rows[-1]) + 3, h)
        c0, c1 = max(int(cols[0]) - 2, 0), min(int(cols[-1]) + 3, w)
        whole = (r1 - r0, c1 - c0) == (h, w)
    if whole:
        full = F.interpolate(logits[None], size=hw, mode="bilinear", align_corners=False)[0]
        return full > threshold, stability_score(full, threshold, offset)
    fy, fx = height // h, width // w
    masks = torch.zeros((len(logits), height, width), dtype=torch.bool)
    crop = F.interpolate(
        logits[None, :, r0:r1, c0:c1], size=((r1 - r0) * fy, (c1 - c0) * fx), mode="bilinear", align_corners=False
    )[0]
    masks[:, r0 * fy : r1 * fy, c0 * fx : c1 * fx] = crop > threshold
    return masks, stability_score(crop, threshold, offset)
