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
    if not obj_ids:  # no object is tracked on this frame in this pass
        empty = np.zeros(0)
        return TrackResult(frame, [], np.zeros((0, *frame_hw), bool), np.zeros((0, 1, 1)), empty, empty, empty, empty.astype(bool))
    logits = torch.cat(low_res).float()  # (K, 1, 4h, 4w)
    if logits.device.type == "cpu" and all(n % m == 0 for n, m in zip(frame_hw, logits.shape[-2:])):
        masks = torch.from_numpy(_masks_by_crops(logits[:, 0], frame_hw, non_overlapping))
    else:
        masks = _masks_whole(logits, frame_hw, non_overlapping)
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


def _masks_whole(logits: torch.Tensor, frame_hw: tuple[int, int], non_overlapping: bool) -> torch.Tensor:
    """Every object's logits upscaled over the whole frame."""
    full = F.interpolate(logits, size=frame_hw, mode="bilinear", align_corners=False)[:, 0]
    masks = full > 0
    if non_overlapping and len(masks) > 1:
        # Only pixels inside two or more masks need the highest logit (cheap with many objects).
        contested = _contested(masks)
        if contested.any():
            winner = full[:, contested].argmax(dim=0)
            masks[:, contested] = torch.arange(len(masks), device=full.device)[:, None] == winner
    return masks


def _masks_by_crops(logits: torch.Tensor, frame_hw: tuple[int, int], non_overlapping: bool) -> np.ndarray:
    """The same masks as `_masks_whole` when the frame is a whole multiple of the low-res grid,
    upscaling only each object's box (with two low-res pixels around it) instead of the frame.

    A bilinear value is positive only next to a positive low-res pixel, and with a whole scale
    factor a crop's samples are the frame's samples, bit for bit, except within half a low-res
    pixel of the crop's edge, which lies two pixels from anything positive."""
    (h, w), (fy, fx) = logits.shape[-2:], (frame_hw[0] // logits.shape[-2], frame_hw[1] // logits.shape[-1])
    masks = np.zeros((len(logits), *frame_hw), bool)
    crops: list[tuple[int, slice, slice, np.ndarray]] = []  # object, rows, cols, upscaled logits
    count = np.zeros(frame_hw, np.uint16)
    for k, positive in enumerate((logits > 0).numpy()):
        rows, cols = np.flatnonzero(positive.any(1)), np.flatnonzero(positive.any(0))
        if len(rows) == 0:
            continue
        r0, r1 = max(rows[0] - 2, 0), min(rows[-1] + 3, h)
        c0, c1 = max(cols[0] - 2, 0), min(cols[-1] + 3, w)
        up = F.interpolate(
            logits[k, r0:r1, c0:c1][None, None], size=((r1 - r0) * fy, (c1 - c0) * fx), mode="bilinear", align_corners=False
        )[0, 0].numpy()
        where = (slice(r0 * fy, r1 * fy), slice(c0 * fx, c1 * fx))
        masks[k][where] = up > 0
        count[where] += masks[k][where]
        crops.append((k, *where, up))
    if non_overlapping and (count > 1).any():
        contested = count > 1
        best = np.full(frame_hw, -np.inf, np.float32)
        winner = np.full(frame_hw, -1, np.int64)
        for k, rows, cols, up in crops:
            here = contested[rows, cols] & (up > best[rows, cols])
            best[rows, cols][here] = up[here]
            winner[rows, cols][here] = k
        ys, xs = np.nonzero(contested)
        masks[:, ys, xs] = np.arange(len(logits))[:, None] == winner[ys, xs]
    return masks


def _contested(masks: torch.Tensor) -> torch.Tensor:
    """Pixels inside two or more of the masks (K, H, W); on the CPU counted with numpy in a
    small integer type (a torch sum converts every mask to int64 first)."""
    if masks.device.type != "cpu":
        return masks.sum(dim=0) > 1
    count = np.add.reduce(masks.numpy(), axis=0, dtype=np.uint8 if len(masks) < 256 else np.uint16)
    return torch.from_numpy(count > 1)
