"""One image-training step: prompts sampled from ground truth, iterative correction clicks.

As SAM 2 is trained on images: each object is prompted by a click, a jittered box or its mask;
then correction clicks are added where the prediction is wrong, with the previous logits as the
mask prompt half of the time. Clicks on the background teach the model to answer 'nothing here'
(empty mask, low predicted IoU, absent), which is what keeps automatic segmentation clean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling.prompt_encoder import LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT
from ..modeling.sam2 import ImageFeatures, SAM2Model
from .losses import LossWeights, segmentation_loss
from .prompt_sampling import background_click, correction_click, jittered_box, random_click


@dataclass(frozen=True)
class PromptMix:
    """How objects are prompted in training."""

    box: float = 0.4  # share of objects prompted by a box
    mask: float = 0.1  # share prompted by their (low-res) mask
    corrections: int = 2  # correction clicks after the first prompt
    previous_logits: float = 0.5  # chance that a correction also gets the previous logits
    background: int = 1  # background clicks per image


@dataclass
class _Group:
    """Objects decoded together: same prompt kind, hence the same number of points."""

    image_index: torch.Tensor  # (N,) which image of the batch
    targets: torch.Tensor  # (N, S, S) float
    loss_targets: torch.Tensor  # (N, S/2, S/2) float, where the loss is computed
    present: torch.Tensor  # (N,) bool
    points: torch.Tensor | None  # (N, P, 2) model-input pixels
    labels: torch.Tensor | None  # (N, P)
    mask_input: torch.Tensor | None  # (N, 1, S/4, S/4) logits
    multimask: bool
    refine: bool  # gets correction clicks


def image_loss(
    model: SAM2Model,
    images: torch.Tensor,
    labels: list[np.ndarray],
    object_lists: list[np.ndarray],
    rng: np.random.Generator,
    mix: PromptMix = PromptMix(),
    weights: LossWeights = LossWeights(),
    train_encoder: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of a batch: images (B, 3, S, S), label images (S, S) and the object ids to prompt."""
    features = encode_images(model, images, train_encoder)
    embedding = model.add_no_memory(features.embedding)
    groups = _initial_groups(labels, object_lists, rng, mix, images.device)
    total, count, stats = images.new_zeros(()), 0, {}
    for group in groups:
        rounds = 1 + (mix.corrections if group.refine else 0)
        for round_ in range(rounds):
            idx = group.image_index
            out = model.decode(
                embedding[idx],
                [f[idx] for f in features.high_res],
                group.points,
                group.labels,
                group.mask_input,
                multimask_output=group.multimask and round_ == 0,
                pad_empty_prompt=group.points is None,
            )
            logits = loss_resolution(out.masks)
            loss, s = segmentation_loss(logits, out.iou, out.object_score, group.loss_targets, group.present, weights)
            n = len(idx)
            total = total + loss * n
            count += n
            for k, v in s.items():
                stats.setdefault(k, []).append(v)
            if round_ + 1 < rounds:
                _add_correction(group, out, logits, rng, mix)
    summary = {k: float(np.nanmean(v)) if not all(np.isnan(v)) else float("nan") for k, v in stats.items()}
    return total / max(count, 1), summary


def loss_resolution(low_res: torch.Tensor) -> torch.Tensor:
    """Low-res logits (B, M, S/4, S/4) upsampled x2: the loss is computed at half the input
    size, 4x cheaper than at full size on a CPU and fine enough for cells of a few pixels."""
    return F.interpolate(low_res.float(), scale_factor=2, mode="bilinear", align_corners=False)


def targets_for_loss(targets: torch.Tensor) -> torch.Tensor:
    """(B, S, S) binary targets -> (B, S/2, S/2), a pixel in where most of it is in."""
    return (F.avg_pool2d(targets[:, None].float(), 2)[:, 0] >= 0.5).float()


def encode_images(model: SAM2Model, images: torch.Tensor, train_encoder: bool):
    """Image features (B images) for the decoder; the trunk and neck without gradients unless
    `train_encoder`, while the decoder's high-res projections always learn."""
    if train_encoder:
        return model.encode_image(images)
    with torch.no_grad():
        features, positions = model.image_encoder(images)
    high_res = [model.sam_mask_decoder.conv_s0(features[0]), model.sam_mask_decoder.conv_s1(features[1])]
    return ImageFeatures(features[2], positions[2], high_res)


def _initial_groups(labels, object_lists, rng, mix: PromptMix, device) -> list[_Group]:
    """Clicks, boxes, masks and background clicks, one group each."""
    kinds: dict[str, list] = {"click": [], "box": [], "mask": [], "background": []}
    for b, (lab, ids) in enumerate(zip(labels, object_lists)):
        for obj in ids:
            mask = lab == obj
            r = rng.random()
            if r < mix.box:
                box = jittered_box(mask, rng)
                kinds["box"].append((b, mask, True, box.reshape(2, 2), [LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT]))
            elif r < mix.box + mix.mask:
                kinds["mask"].append((b, mask, True, None, None))
            else:
                kinds["click"].append((b, mask, True, random_click(mask, rng)[None], [1]))
        for _ in range(mix.background):
            point = background_click(lab, rng)
            if point is not None:
                kinds["background"].append((b, np.zeros_like(lab, dtype=bool), False, point[None], [1]))
    groups = []
    for kind, items in kinds.items():
        if not items:
            continue
        targets = torch.from_numpy(np.stack([it[1] for it in items])).float().to(device)
        index = torch.tensor([it[0] for it in items], device=device)
        present = torch.tensor([it[2] for it in items], device=device)
        points = labels_t = mask_input = None
        if kind != "mask":
            points = torch.tensor(np.stack([it[3] for it in items]), dtype=torch.float32, device=device)
            labels_t = torch.tensor([it[4] for it in items], dtype=torch.int32, device=device)
        else:
            size = targets.shape[-1] // 4
            low = F.interpolate(targets[:, None], size=(size, size), mode="bilinear", antialias=True)
            mask_input = low * 20.0 - 10.0
        groups.append(
            _Group(index, targets, targets_for_loss(targets), present, points, labels_t, mask_input, kind in ("click", "background"), kind != "background")
        )
    return groups


def _add_correction(group: _Group, out, logits: torch.Tensor, rng, mix: PromptMix) -> None:
    """Append a correction click per object (where its best mask is most wrong)."""
    with torch.no_grad():
        best = out.iou.argmax(dim=1)
        rows = torch.arange(len(best), device=best.device)
        size = group.targets.shape[-1]
        chosen = F.interpolate(out.masks[rows, best][:, None].float(), size=(size, size), mode="bilinear")[:, 0] > 0
        low_res = out.masks[rows, best][:, None].detach()
    predicted = chosen.cpu().numpy()
    targets = group.targets.cpu().numpy() > 0.5
    points, labels = [], []
    for pred, target in zip(predicted, targets):
        click = correction_click(pred, target, rng)
        if click is None:  # already exact: a redundant positive click at the centre
            points.append(random_click(target, rng) if target.any() else np.zeros(2))
            labels.append(1 if target.any() else -1)
        else:
            points.append(click[0])
            labels.append(click[1])
    new_points = torch.tensor(np.stack(points), dtype=torch.float32, device=group.targets.device)[:, None]
    new_labels = torch.tensor(labels, dtype=torch.int32, device=group.targets.device)[:, None]
    if group.points is None:
        group.points, group.labels = new_points, new_labels
    else:
        group.points = torch.cat([group.points, new_points], dim=1)
        group.labels = torch.cat([group.labels, new_labels], dim=1)
    use_logits = rng.random() < mix.previous_logits
    group.mask_input = low_res.clamp(-32, 32) if use_logits else None
