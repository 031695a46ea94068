"""SAM 2's training losses: focal + dice on masks, L1 on predicted IoU, BCE on object presence."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    """SAM 2's weights: focal 20, dice 1, IoU 1, presence 1."""

    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    presence: float = 1.0


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Mean sigmoid focal loss per mask: (B, M, H, W) logits, (B, 1, H, W) target -> (B, M)."""
    target = target.expand_as(logits)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    weight = alpha * target + (1 - alpha) * (1 - target)
    return (weight * ce * (1 - p_t) ** gamma).flatten(2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice per mask: (B, M, H, W) logits, (B, 1, H, W) target -> (B, M)."""
    p = torch.sigmoid(logits).flatten(2)
    t = target.expand_as(logits).flatten(2)
    return 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of the thresholded masks with the target: (B, M); 0 for a non-empty mask of nothing."""
    pred = (logits > 0).flatten(2)
    t = target.expand_as(logits).flatten(2) > 0.5
    inter = (pred & t).sum(-1).float()
    union = (pred | t).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))


def segmentation_loss(
    logits: torch.Tensor,
    iou_pred: torch.Tensor,
    object_score: torch.Tensor,
    target: torch.Tensor,
    present: torch.Tensor,
    weights: LossWeights = LossWeights(),
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one decoder output against its targets.

    logits (B, M, H, W) at the target's size; iou_pred (B, M); object_score (B, 1);
    target (B, H, W) float; present (B,) bool. With several masks only the best one (lowest
    focal + dice) learns the mask, as in SAM 2; every mask learns its IoU. For absent objects
    the mask learns to be empty (focal only), the IoU to be 0 and the presence score to be low.
    The loss is computed in fp32 whatever the logits' dtype (bf16 training).
    """
    logits = logits.float()
    target = target[:, None].to(logits.dtype)
    present_f = present.to(logits.dtype)
    focal = focal_loss(logits, target)
    dice = dice_loss(logits, target)
    combined = weights.focal * focal + weights.dice * dice * present_f[:, None]
    best = combined.argmin(dim=1)
    rows = torch.arange(logits.shape[0], device=logits.device)
    mask_term = combined[rows, best].mean()
    with torch.no_grad():
        true_iou = mask_iou(logits.detach(), target) * present_f[:, None]
    iou_term = F.l1_loss(iou_pred.float(), true_iou, reduction="mean")
    presence_term = F.binary_cross_entropy_with_logits(object_score.float()[:, 0], present_f)
    total = mask_term + weights.iou * iou_term + weights.presence * presence_term
    stats = {
        "mask": float(mask_term.detach()),
        "iou_loss": float(iou_term.detach()),
        "presence": float(presence_term.detach()),
        "iou": float(true_iou[rows, best][present].mean()) if bool(present.any()) else float("nan"),
    }
    return total, stats
