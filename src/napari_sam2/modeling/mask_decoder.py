"""Mask decoder: mask logits, predicted IoU and object presence from image features and prompts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .common import MLP, LayerNorm2d
from .two_way_transformer import ImageProjections, TwoWayTransformer


@dataclass
class DecoderOutput:
    masks: torch.Tensor  # (B, M, 4h, 4w) low-resolution mask logits
    iou: torch.Tensor  # (B, M) predicted IoU
    tokens: torch.Tensor  # (B, M, C) mask tokens for the object pointer
    object_score: torch.Tensor  # (B, 1) logit, object present iff > 0


def stability_score(logits: torch.Tensor, threshold: float, offset: float, empty: float = 1.0) -> torch.Tensor:
    """IoU of masks thresholded at threshold +/- offset, per mask: (..., H, W) -> (...).

    The high mask lies inside the low one, so IoU = count(> thr + off) / count(> thr - off).
    Where the low mask is empty the score is `empty`: 1 in the decoder (SAM 2's choice when it
    picks a mask), 0 in segment-everything (an empty mask fails every filter).
    """
    inner = _count_inside(logits > threshold + offset)
    outer = _count_inside(logits > threshold - offset)
    return torch.where(outer > 0, inner / outer.clamp(min=1), empty)


def _count_inside(inside: torch.Tensor) -> torch.Tensor:
    """True pixels per mask, (..., H, W) -> (...); on the CPU through numpy, whose count of a
    bool array is ~10x faster than a sum that converts it to integers."""
    if inside.device.type != "cpu":
        return inside.sum(dim=(-2, -1), dtype=torch.int32)
    flat = inside.reshape(-1, inside.shape[-2] * inside.shape[-1]).numpy()
    counts = np.fromiter((np.count_nonzero(row) for row in flat), dtype=np.int64, count=len(flat))
    return torch.from_numpy(counts).reshape(inside.shape[:-2])


def _channels_last(features: torch.Tensor) -> torch.Tensor:
    """Features channels-last; one image expanded over a batch (a tracker's objects) is
    converted once and expanded again, not copied per object."""
    if features.shape[0] > 1 and features.stride(0) == 0:
        return features[:1].contiguous(memory_format=torch.channels_last).expand(features.shape)
    return features.contiguous(memory_format=torch.channels_last)


class MaskDecoder(nn.Module):
    def __init__(
        self,
        transformer_dim: int = 256,
        num_multimask_outputs: int = 3,
        stability_delta: float = 0.05,
        stability_thresh: float = 0.98,
    ) -> None:
        super().__init__()
        d = transformer_dim
        self.transformer = TwoWayTransformer(embedding_dim=d)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, d)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, d)
        self.obj_score_token = nn.Embedding(1, d)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(d, d // 4, kernel_size=2, stride=2),
            LayerNorm2d(d // 4),
            nn.GELU(),
            nn.ConvTranspose2d(d // 4, d // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.conv_s0 = nn.Conv2d(d, d // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(d, d // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(d, d, d // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(d, 256, self.num_mask_tokens, 3, sigmoid_output=True)
        self.pred_obj_score_head = MLP(d, d, 1, 3)
        self.stability_delta = stability_delta
        self.stability_thresh = stability_thresh

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompts: torch.Tensor,
        dense_prompts: torch.Tensor,
        high_res_features: list[torch.Tensor],
        multimask_output: bool,
        repeat_image: bool = False,
        projected: ImageProjections | None = None,
    ) -> DecoderOutput:
        """Decode B prompt sets. A single image embedding serves all of them; with `repeat_image`,
        n images serve B / n consecutive prompt sets each.

        multimask_output=True gives the three multimask outputs; otherwise the single-mask
        output, replaced by the best multimask one when it is unstable (as SAM 2 does at eval).
        projected: `project_image` of this image and dense prompt (made once per image).
        """
        masks, iou, mask_tokens, object_score = self._predict(
            image_embeddings, image_pe, sparse_prompts, dense_prompts, high_res_features, repeat_image, projected
        )
        if multimask_output:
            return DecoderOutput(masks[:, 1:], iou[:, 1:], mask_tokens[:, 1:], object_score)
        if not self.training:
            masks, iou = self._fallback_if_unstable(masks, iou)
        else:
            masks, iou = masks[:, :1], iou[:, :1]
        return DecoderOutput(masks, iou, mask_tokens[:, :1], object_score)

    def project_image(self, image: torch.Tensor, image_pe: torch.Tensor, dense: torch.Tensor) -> ImageProjections:
        """The transformer's projections of one image (1, C, h, w) under a dense prompt (1, C,
        h, w) that no click or box changes (the no-mask embedding)."""
        return self.transformer.project_image(image + dense, image_pe)

    def _predict(self, image, image_pe, sparse, dense, high_res, repeat_image, projected=None):
        tokens_out, src, high_res = self.attend(image, image_pe, sparse, dense, high_res, repeat_image, projected)
        iou, object_score, mask_tokens = self.heads(tokens_out)
        upscaled = self.upscale(src, high_res)
        masks = self.mask_logits(upscaled, mask_tokens, range(self.num_mask_tokens))
        return masks, iou, mask_tokens, object_score

    def attend(self, image, image_pe, sparse, dense, high_res, repeat_image=False, projected=None):
        """Run the two-way transformer: (output tokens (B, T, C), image tokens (B, C, h, w),
        high-res features matched to the batch)."""
        b = sparse.shape[0]
        output_tokens = torch.cat(
            [self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], dim=0
        )
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        if repeat_image and image.shape[0] not in (1, b):
            # Several images, each with b / n_images prompt sets, in image order.
            image = image.repeat_interleave(b // image.shape[0], dim=0)
            high_res = [f.repeat_interleave(b // f.shape[0], dim=0) for f in high_res]
        src = image + dense  # a single image broadcasts over the prompt sets
        pos = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape
        hs, src = self.transformer(src, pos, tokens, projected)
        return hs, src.transpose(1, 2).reshape(b, c, h, w), high_res

    def heads(self, tokens_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predicted IoU (B, 4), object score (B, 1) and mask tokens (B, 4, C)."""
        iou = self.iou_prediction_head(tokens_out[:, 1])
        object_score = self.pred_obj_score_head(tokens_out[:, 0])
        return iou, object_score, tokens_out[:, 2 : 2 + self.num_mask_tokens]

    def upscale(self, src: torch.Tensor, high_res: list[torch.Tensor]) -> torch.Tensor:
        """Image tokens (B, C, h, w) -> (B, C/8, 4h, 4w) with the high-res skip features, all
        channels-last (the transposed convolutions and layer norm run 2-3x faster on the CPU;
        the predictor keeps its skip features so)."""
        up1, ln1, act1, up2, act2 = self.output_upscaling
        last = torch.channels_last
        feat_s0, feat_s1 = (_channels_last(f) for f in high_res)
        upscaled = act1(ln1(feat_s1 + up1(src.contiguous(memory_format=last))))
        return act2(feat_s0 + up2(upscaled.contiguous(memory_format=last)))

    def mask_logits(self, upscaled: torch.Tensor, mask_tokens: torch.Tensor, which) -> torch.Tensor:
        """(B, len(which), 4h, 4w) logits of the mask tokens listed in `which`."""
        hyper_in = torch.stack(
            [self.output_hypernetworks_mlps[i](mask_tokens[:, i]) for i in which], dim=1
        )
        b, c, h, w = upscaled.shape
        if upscaled.is_contiguous() or not upscaled.is_contiguous(memory_format=torch.channels_last):
            return (hyper_in @ upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)
        pixels = upscaled.permute(0, 2, 3, 1).reshape(b, h * w, c)  # channels-last: a view
        return (pixels @ hyper_in.transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)

    def _fallback_if_unstable(
        self, masks: torch.Tensor, iou: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-mask output, or the best multimask output where the single mask is unstable."""
        multi_masks, multi_iou = masks[:, 1:], iou[:, 1:]
        best = multi_iou.argmax(dim=-1)
        rows = torch.arange(masks.shape[0], device=masks.device)
        best_masks = multi_masks[rows, best].unsqueeze(1)
        best_iou = multi_iou[rows, best].unsqueeze(1)
        single_masks, single_iou = masks[:, :1], iou[:, :1]
        stable = stability_score(single_masks, 0.0, self.stability_delta) >= self.stability_thresh
        masks = torch.where(stable[..., None, None], single_masks, best_masks)
        iou = torch.where(stable, single_iou, best_iou)
        return masks, iou
