"""One video-training step: prompt objects on a clip's first frame, track them with memory.

As SAM 2 is trained on videos: the first frame is prompted (click, box or mask), later frames
are decoded from memory attention over the previous frames' memories and object pointers
(multimask, the best mask learns), and sometimes one later frame gets correction clicks and
becomes a conditioning frame. Presence is learned from cells that leave or enter the field.
The memory layout (slots, pointer distances) is the tracker's own (`select_memory`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..engine.memory_bank import select_memory
from ..modeling.prompt_encoder import LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT
from ..modeling.sam2 import NO_OBJECT_SCORE, SAM2Model, SpatialMemory
from .image_step import encode_images, loss_resolution, targets_for_loss
from .losses import LossWeights, segmentation_loss
from .prompt_sampling import correction_click, jittered_box, random_click

# Clips are short, but the tracker meets long stacks: pointer distances are encoded as in a
# stack of this many frames.
VIRTUAL_STACK = 16


class _State:
    def __init__(self, maskmem: torch.Tensor, pos: torch.Tensor, pointer: torch.Tensor) -> None:
        self.maskmem, self.pos, self.pointer = maskmem, pos, pointer


def clip_loss(
    model: SAM2Model,
    frames: torch.Tensor,
    masks: np.ndarray,
    rng: np.random.Generator,
    weights: LossWeights = LossWeights(),
    train_encoder: bool = True,
    correction_chance: float = 0.5,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of tracking K objects through a clip: frames (T, 3, S, S), masks (K, T, S, S) bool
    with every object present on frame 0."""
    t_len, k = frames.shape[0], masks.shape[0]
    device = frames.device
    features = encode_images(model, frames, train_encoder)
    targets = torch.from_numpy(masks).float().to(device)
    present = targets.flatten(2).amax(-1) > 0  # (K, T)
    cond: dict[int, _State] = {}
    tracked: dict[int, _State] = {}
    correct_at = int(rng.integers(1, t_len)) if t_len > 1 and rng.random() < correction_chance else -1
    total, stats = frames.new_zeros(()), {}

    def expand(t: int):
        return [f[t : t + 1].expand(k, -1, -1, -1) for f in features.high_res]

    points, labels = _first_prompt(masks[:, 0], rng, device)
    for t in range(t_len):
        if t == 0:
            embedding = model.add_no_memory(features.embedding[:1]).expand(k, -1, -1, -1)
            multimask = points is not None and points.shape[1] == 1
            mask_input = None
            if points is None:
                mask_input = _mask_logits(targets[:, 0], model)
            out = model.decode(embedding, expand(0), points, labels, mask_input, multimask, pad_empty_prompt=points is None)
        else:
            embedding = _conditioned(model, features, t, cond, tracked, k)
            out = model.decode(embedding, expand(t), multimask_output=True)
        loss, s = _score(model, out, targets[:, t], present[:, t], weights, stats)
        total = total + loss
        from_prompt = t == 0
        if t == correct_at:
            click_points, click_labels = _corrections(model, out, targets[:, t], rng)
            out = model.decode(embedding, expand(t), click_points, click_labels, None, False, pad_empty_prompt=False)
            loss, _ = _score(model, out, targets[:, t], present[:, t], weights, stats)
            total = total + loss
            from_prompt = True
        state = _remember(model, features.embedding[t : t + 1].expand(k, -1, -1, -1), out, from_prompt)
        (cond if from_prompt else tracked)[t] = state
    summary = {key: float(np.nanmean(v)) if not np.all(np.isnan(v)) else float("nan") for key, v in stats.items()}
    return total / t_len, summary


def _first_prompt(masks: np.ndarray, rng: np.random.Generator, device):
    """A click (50%), a box (35%) or the mask itself (15%) for every object on the first frame."""
    r = rng.random()
    if r < 0.5:
        pts = np.stack([random_click(m, rng)[None] for m in masks])
        return torch.tensor(pts, dtype=torch.float32, device=device), torch.ones(len(masks), 1, dtype=torch.int32, device=device)
    if r < 0.85:
        pts = np.stack([jittered_box(m, rng).reshape(2, 2) for m in masks])
        lab = torch.tensor([[LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT]] * len(masks), dtype=torch.int32, device=device)
        return torch.tensor(pts, dtype=torch.float32, device=device), lab
    return None, None


def _mask_logits(masks: torch.Tensor, model: SAM2Model) -> torch.Tensor:
    return model.resize_mask_prompt(masks[:, None] * 20.0 - 10.0)


def _score(model, out, target, present, weights, stats):
    logits = loss_resolution(out.masks)
    loss, s = segmentation_loss(logits, out.iou, out.object_score, targets_for_loss(target), present, weights)
    for key, v in s.items():
        stats.setdefault(key, []).append(v)
    return loss, s


def _chosen(out) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask (B, 1, h, w) and token the tracker keeps: the best by predicted IoU."""
    rows = torch.arange(out.masks.shape[0], device=out.masks.device)
    best = out.iou.argmax(dim=-1) if out.masks.shape[1] > 1 else torch.zeros_like(rows)
    return out.masks[rows, best][:, None], out.tokens[rows, best if out.tokens.shape[1] > 1 else 0]


def _remember(model: SAM2Model, raw_embedding: torch.Tensor, out, from_prompt: bool) -> _State:
    """The frame's memory and object pointer, as the tracker makes them (masks detached)."""
    low_res, token = _chosen(out)
    gated = torch.where(out.object_score[:, :, None, None] > 0, low_res.detach(), NO_OBJECT_SCORE)
    maskmem, pos = model.encode_memory(raw_embedding, model.upscale(gated), out.object_score.detach(), binarize=from_prompt)
    pointer = model.object_pointer(model.obj_ptr_proj(token), out.object_score.detach())
    return _State(maskmem, pos, pointer)


def _conditioned(model: SAM2Model, features, t: int, cond: dict, tracked: dict, k: int) -> torch.Tensor:
    config = model.config
    selection = select_memory(
        t, list(cond), tracked.keys(), VIRTUAL_STACK, False, config.num_maskmem, config.max_obj_ptrs_in_encoder, signed_distances=config.is_v21
    )
    states = {**tracked, **cond}
    memories = [SpatialMemory(states[f].maskmem, states[f].pos, slot) for f, slot in selection.spatial]
    pointers = [(states[f].pointer, d) for f, d in selection.pointers]
    max_ptrs = min(VIRTUAL_STACK, config.max_obj_ptrs_in_encoder)
    return model.condition_on_memory(
        features.embedding[t : t + 1].expand(k, -1, -1, -1),
        features.pos[t : t + 1].expand(k, -1, -1, -1),
        memories,
        pointers,
        max_ptrs,
    )


def _corrections(model: SAM2Model, out, target: torch.Tensor, rng):
    """One correction click per object on a tracked frame (negative on a lost object's mask)."""
    low_res, _ = _chosen(out)
    predicted = (model.upscale(low_res.detach())[:, 0] > 0).cpu().numpy()
    truth = target.cpu().numpy() > 0.5
    pts, labs = [], []
    for pred, tru in zip(predicted, truth):
        click = correction_click(pred, tru, rng)
        if click is None:
            pts.append(random_click(tru, rng) if tru.any() else np.zeros(2))
            labs.append(1 if tru.any() else -1)
        else:
            pts.append(click[0])
            labs.append(click[1])
    device = target.device
    return (
        torch.tensor(np.stack(pts)[:, None], dtype=torch.float32, device=device),
        torch.tensor(labs, dtype=torch.int32, device=device)[:, None],
    )
