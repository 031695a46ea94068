"""One frame's tracking result: every object's mask at the frame's size, with its scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class TrackResult:
    """Masks of the tracked objects on one frame."""

    frame: int
    obj_ids: list[int]
    masks: np.ndarray  # (K, H, W) bool at the frame's size
    logits: np.ndarray  # (K, 4h, 4w) low-res logits
    scores: np.ndarray  # (K,) predicted IoU of each mask
    present: np.ndarray  # (K,) object-presence logit; <= 0 means the object is absent here
    object_scores: np.ndarray  # (K,) object score in [0, 1] (see object_ending.py); 1 on prompts
    ended: np.ndarray  # (K,) bool: the object has ended in this pass (its mask is empty)


def track_result(
    frame: int,
    obj_ids: list[int],
    low_res: list[torch.Tensor],
    iou: list[torch.Tensor],
    score: list[torch.Tensor],
    frame_hw: tuple[int, int],
    non_overlapping: bool,
    object_scores: list[float] | None = None,
    ended: list[bool] | None = None,
) -> TrackResult:
    """Upscale each object's low-res logits to the frame; non_overlapping gives every pixel to
    the object with the highest logit there."""
    logits = torch.cat(low_res).float()  # (K, 1, 4h, 4w)
    full = F.interpolate(logits, size=frame_hw, mode="bilinear", align_corners=False)[:, 0]
    masks = full > 0
    if non_overlapping and len(obj_ids) > 1:
        # Only pixels inside two or more masks need the highest logit (cheap with many objects).
        contested = masks.sum(dim=0) > 1
        if contested.any():
            winner = full[:, contested].argmax(dim=0)
            masks[:, contested] = torch.arange(len(obj_ids), device=full.device)[:, None] == winner
    return TrackResult(
        frame=frame,
        obj_ids=list(obj_ids),
        masks=masks.cpu().numpy(),
        logits=logits[:, 0].cpu().numpy(),
        scores=torch.cat(iou).float().reshape(-1).cpu().numpy(),
        present=torch.cat(score).float().reshape(-1).cpu().numpy(),
        object_scores=np.ones(len(obj_ids)) if object_scores is None else np.asarray(object_scores, float),
        ended=np.zeros(len(obj_ids), bool) if ended is None else np.asarray(ended, bool),
    )
