"""Automatic segmentation ("segment everything"): a grid of single-click prompts over the image
(and optionally over zoomed crops), filtered by predicted quality and stability, de-duplicated
by box NMS. Same algorithm and parameters as the official generator, with less wasted work:
masks are only computed and upsampled for candidates that pass the predicted-IoU filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..images.model_input import prepare_image
from ..images.normalization import Normalization
from ..modeling.mask_decoder import stability_score
from ..modeling.sam2 import SAM2Model
from ..progress import Cancelled, ProgressCallback, StopCheck
from .mask_tools import (
    area_from_rle,
    batched_box_nms,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_to_rle_pytorch,
    masks_to_boxes,
    records_to_label_image,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)
from .orientations import oriented_prompts, upright_mean
from .postprocess import LOGIT_CLAMP, fill_holes_and_remove_sprinkles
from .precision import compute_precision
from .predictor import ImageEmbedding, ImagePredictor

OUTPUT_MODES = ("binary_mask", "uncompressed_rle")
_UPSAMPLE_CHUNK = 32  # candidates upsampled at once (bounds memory on large crops)


@dataclass
class _Masks:
    """Candidate masks of one crop, in crop pixels."""

    masks: torch.Tensor  # (K, h, w) bool
    iou: torch.Tensor  # (K,)
    stability: torch.Tensor  # (K,)
    points: torch.Tensor  # (K, 2) (x, y)
    boxes: torch.Tensor  # (K, 4) XYXY

    def select(self, keep: torch.Tensor) -> _Masks:
        return _Masks(*(getattr(self, f)[keep] for f in ("masks", "iou", "stability", "points", "boxes")))

    @staticmethod
    def cat(parts: list[_Masks], hw: tuple[int, int]) -> _Masks:
        if not parts:
            empty = torch.zeros(0)
            return _Masks(torch.zeros(0, *hw, dtype=torch.bool), empty, empty, torch.zeros(0, 2), torch.zeros(0, 4, dtype=torch.int64))
        return _Masks(*(torch.cat([getattr(p, f) for p in parts]) for f in ("masks", "iou", "stability", "points", "boxes")))


OFFICIAL_FILTERS = {"pred_iou_thresh": 0.8, "stability_score_thresh": 0.95}


def default_filters(model: SAM2Model) -> dict[str, float]:
    """The mask filters segment-everything uses for a model unless told otherwise: the model's
    own (chosen on validation images and recorded in its metadata, `segment_everything`), else
    the official generator's. A small model rates its masks lower than Meta's weights do, so
    the official thresholds would drop every mask it makes."""
    return {**OFFICIAL_FILTERS, **getattr(model, "segment_everything_defaults", {})}


class AutomaticMaskGenerator:
    """Segment everything in an image. Parameters and defaults are the official generator's,
    except the two mask filters, which default to the model's own (`default_filters`).

    min_mask_region_area fills holes and removes specks up to that area on the low-res logits
    on every device (the official generator needs a CUDA extension and skips it elsewhere).
    precision: as for `ImagePredictor` ('auto' takes the fast path where the hardware has it).
    orientations: each grid point decoded in the image's 1, 4 (flips) or 8 (flips and
    transposes) orientations and the masks averaged before filtering (`ImagePredictor`); that
    many embeddings and decoder passes per crop.
    """

    def __init__(
        self,
        model: SAM2Model,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float | None = None,
        stability_score_thresh: float | None = None,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: Sequence[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
        precision: str = "auto",
        orientations: int = 1,
    ) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("Give exactly one of points_per_side and point_grids.")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, not {output_mode!r}.")
        if points_per_batch < 1:
            raise ValueError("points_per_batch must be at least 1.")
        if points_per_side is not None:
            self.point_grids = build_all_layer_point_grids(
                points_per_side, crop_n_layers, crop_n_points_downscale_factor
            )
        else:
            self.point_grids = [np.asarray(g, dtype=np.float64) for g in point_grids]
            if len(self.point_grids) < crop_n_layers + 1:
                raise ValueError(f"point_grids needs one grid per crop layer ({crop_n_layers + 1}).")
        self.predictor = ImagePredictor(
            model, precision=precision, mask_threshold=mask_threshold, orientations=orientations
        )
        self.points_per_batch = points_per_batch
        filters = default_filters(model)
        self.pred_iou_thresh = filters["pred_iou_thresh"] if pred_iou_thresh is None else pred_iou_thresh
        self.stability_score_thresh = (
            filters["stability_score_thresh"] if stability_score_thresh is None else stability_score_thresh
        )
        self.stability_score_offset = stability_score_offset
        self.mask_threshold = mask_threshold
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.use_m2m = use_m2m
        self.multimask_output = multimask_output

    @property
    def model(self) -> SAM2Model:
        return self.predictor.model

    # ------------------------------------------------------------------ public

    def generate(
        self,
        image: np.ndarray,
        normalization: str | Normalization | None = "auto",
        channels: Sequence[int] | None = None,
        progress: ProgressCallback | None = None,
        should_stop: StopCheck | None = None,
    ) -> list[dict]:
        """Mask records, as the official generator: segmentation, area, bbox (XYWH),
        predicted_iou, point_coords, stability_score, crop_box (XYWH).

        progress(done, total) is called after each batch of prompts; should_stop() is checked
        between batches and raises `Cancelled` when it returns True.
        """
        rgb = prepare_image(image, normalization, channels=channels)
        data, crop_boxes = self._generate(rgb, progress, should_stop)
        return self._records(data, crop_boxes, rgb.shape[:2])

    def generate_labels(
        self,
        image: np.ndarray,
        normalization: str | Normalization | None = "auto",
        channels: Sequence[int] | None = None,
        progress: ProgressCallback | None = None,
        should_stop: StopCheck | None = None,
        order: str = "quality",
    ) -> np.ndarray:
        """A uint32 label image (0 = background), labels 1..N. order="quality": one label per
        object, best predicted IoU first, masks that would keep less than half their pixels
        (duplicates, fragments, merges) dropped; order="area": larger masks painted first and
        smaller ones on top (a nucleus inside its cell stays visible). See `records_to_label_image`."""
        records = self.generate(image, normalization, channels, progress, should_stop)
        return records_to_label_image(records, np.shape(image)[:2], order)

    # ------------------------------------------------------------------ algorithm

    @torch.inference_mode()
    def _generate(self, rgb, progress, should_stop):
        h, w = rgb.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes((h, w), self.crop_n_layers, self.crop_overlap_ratio)
        total = sum(
            -(-len(self.point_grids[layer]) // self.points_per_batch) for layer in layer_idxs
        )
        counter = _Counter(total, progress, should_stop)
        parts, part_crops = [], []
        for crop_box, layer in zip(crop_boxes, layer_idxs):
            part = self._process_crop(rgb, crop_box, layer, (h, w), counter)
            parts.append(part)
            part_crops += [crop_box] * len(part.iou)
        crops = torch.tensor(part_crops, dtype=torch.int64).reshape(-1, 4)
        full = [_uncrop(p, box, (h, w)) for p, box in zip(parts, crop_boxes)]
        data = _Masks.cat(full, (h, w))
        if len(crop_boxes) > 1 and len(data.iou):
            # Between crops, prefer masks from smaller crops.
            scores = 1 / ((crops[:, 2] - crops[:, 0]) * (crops[:, 3] - crops[:, 1])).float()
            keep = batched_box_nms(data.boxes.float(), scores, torch.zeros(len(scores)), self.crop_nms_thresh)
            data, crops = data.select(keep), crops[keep]
        return data, crops

    def _process_crop(self, rgb, crop_box, layer, orig_hw, counter) -> _Masks:
        x0, y0, x1, y1 = crop_box
        crop = rgb[y0:y1, x0:x1]
        ch, cw = crop.shape[:2]
        counter.check()
        embedding = self.predictor.embed_prepared([crop])[0]
        points = self.point_grids[layer] * np.array([cw, ch])[None]
        parts = []
        for start in range(0, len(points), self.points_per_batch):
            batch = points[start : start + self.points_per_batch]
            parts.append(self._process_batch(embedding, batch, (ch, cw), crop_box, orig_hw))
            counter.step()
        data = _Masks.cat(parts, (ch, cw))
        if len(data.iou):
            keep = batched_box_nms(data.boxes.float(), data.iou, torch.zeros(len(data.iou)), self.box_nms_thresh)
            data = data.select(keep)
        return data

    def _process_batch(self, emb: ImageEmbedding, points: np.ndarray, crop_hw, crop_box, orig_hw) -> _Masks:
        model = self.model
        device = self.predictor.device
        ch, cw = crop_hw
        points_t = torch.as_tensor(points, dtype=torch.float32)
        scale = torch.tensor([model.image_size / cw, model.image_size / ch])
        coords = (points_t * scale).to(device)[:, None, :]
        labels = torch.ones(len(points), 1, dtype=torch.int32, device=device)
        if self.multimask_output and not self.use_m2m and len(emb.embedding) == 1:
            low_res, iou, which = self._decode_kept_multimasks(emb, coords, labels)
        else:
            out = self._decode(emb, coords, labels, None, self.multimask_output)
            low_res, iou = out
            which = torch.arange(low_res.shape[0] * low_res.shape[1])
            low_res, iou = low_res.flatten(0, 1), iou.flatten(0, 1)
            if self.use_m2m:
                low_res, iou = self._refine_with_m2m(emb, coords, labels, low_res, which, low_res.shape[0] // len(points))
            keep = iou > self.pred_iou_thresh if self.pred_iou_thresh > 0 else torch.ones_like(iou, dtype=torch.bool)
            low_res, iou, which = low_res[keep], iou[keep], which[keep]
        per_prompt = 3 if self.multimask_output else 1
        cand_points = points_t[which.cpu() // per_prompt]
        return self._finish(low_res, iou, cand_points, crop_hw, crop_box, orig_hw)

    def _decode_kept_multimasks(self, emb, coords, labels):
        """Multimask candidates whose predicted IoU passes the filter, without computing or
        upsampling the others: (low-res logits (K, 4h, 4w), iou (K,), flat candidate index (K,))."""
        decoder = self.model.sam_mask_decoder
        with compute_precision(self.predictor.device, self.predictor.dtype):
            sparse, dense = self.model.sam_prompt_encoder(coords, labels, None)
            tokens, src, high_res = decoder.attend(
                emb.embedding, self.model.sam_prompt_encoder.dense_pe(), sparse, dense, emb.high_res
            )
            iou_all, _, mask_tokens = decoder.heads(tokens)
            iou = iou_all[:, 1:].float()
            keep = iou > self.pred_iou_thresh if self.pred_iou_thresh > 0 else torch.ones_like(iou, dtype=torch.bool)
            prompts = keep.any(dim=1).nonzero().squeeze(1)
            if len(prompts) == 0:
                empty = torch.zeros(0, *self.model.sam_prompt_encoder.mask_input_size, device=iou.device)
                return empty, iou.new_zeros(0), torch.zeros(0, dtype=torch.int64)
            upscaled = decoder.upscale(src[prompts], high_res)
            masks = decoder.mask_logits(upscaled, mask_tokens[prompts], range(1, decoder.num_mask_tokens))
        sub_keep = keep[prompts]  # (P', 3)
        which = (prompts[:, None] * 3 + torch.arange(3, device=prompts.device))[sub_keep]
        return masks.float()[sub_keep], iou[keep], which.cpu()

    def _decode(self, emb, coords, labels, mask_input, multimask):
        views = len(emb.embedding)
        if views > 1:
            coords, labels, mask_input = oriented_prompts(views, coords, labels, mask_input, self.model.image_size)
        with compute_precision(self.predictor.device, self.predictor.dtype):
            out = self.model.decode(
                emb.embedding, emb.high_res, coords, labels, mask_input, multimask, pad_empty_prompt=False
            )
        if views > 1:
            return upright_mean(out.masks.float(), out.iou.float(), views)
        return out.masks.float(), out.iou.float()

    def _refine_with_m2m(self, emb, coords, labels, low_res, which, per_prompt):
        """One more decoder pass per candidate with its own low-res logits as mask prompt."""
        prompt_of = which // per_prompt
        masks, ious = [], []
        for start in range(0, len(which), self.points_per_batch):
            idx = prompt_of[start : start + self.points_per_batch].to(coords.device)
            prior = low_res[start : start + self.points_per_batch].clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
            m, i = self._decode(emb, coords[idx], labels[idx], prior[:, None], False)
            masks.append(m[:, 0])
            ious.append(i[:, 0])
        return torch.cat(masks), torch.cat(ious)

    def _clean(self, low_res: torch.Tensor) -> torch.Tensor:
        if self.min_mask_region_area > 0:
            area = self.min_mask_region_area
            return fill_holes_and_remove_sprinkles(low_res, area, area, self.mask_threshold)
        return low_res

    def _finish(self, low_res, iou, points, crop_hw, crop_box, orig_hw) -> _Masks:
        """Clean holes/specks, upsample, filter by stability, binarise, drop masks cut by a crop edge."""
        low_res = self._clean(low_res[:, None])[:, 0]
        masks, stabilities, kept = [], [], []
        for start in range(0, len(iou), _UPSAMPLE_CHUNK):
            chunk = low_res[start : start + _UPSAMPLE_CHUNK]
            logits = F.interpolate(chunk[:, None], size=crop_hw, mode="bilinear", align_corners=False)[:, 0]
            stability = stability_score(logits, self.mask_threshold, self.stability_score_offset, empty=0.0)
            keep = stability >= self.stability_score_thresh if self.stability_score_thresh > 0 else torch.ones_like(stability, dtype=torch.bool)
            masks.append((logits[keep] > self.mask_threshold).cpu())
            stabilities.append(stability[keep].cpu())
            kept.append(keep.cpu())
        if not masks:
            return _Masks.cat([], crop_hw)
        keep = torch.cat(kept)
        data = _Masks(
            masks=torch.cat(masks),
            iou=iou.cpu()[keep],
            stability=torch.cat(stabilities),
            points=points[keep],
            boxes=torch.zeros(0, 4, dtype=torch.int64),
        )
        data.boxes = masks_to_boxes(data.masks)
        h, w = orig_hw
        near_edge = is_box_near_crop_edge(data.boxes, list(crop_box), [0, 0, w, h])
        return data.select(~near_edge) if near_edge.any() else data

    def _records(self, data: _Masks, crop_boxes: torch.Tensor, hw) -> list[dict]:
        records = []
        rles = mask_to_rle_pytorch(data.masks) if self.output_mode == "uncompressed_rle" else None
        for i in range(len(data.iou)):
            box = data.boxes[i].tolist()
            crop = crop_boxes[i].tolist()
            mask = data.masks[i]
            records.append(
                {
                    "segmentation": rles[i] if rles is not None else mask.numpy(),
                    "area": area_from_rle(rles[i]) if rles is not None else int(mask.sum()),
                    "bbox": box_xyxy_to_xywh(box),
                    "predicted_iou": float(data.iou[i]),
                    "point_coords": [data.points[i].tolist()],
                    "stability_score": float(data.stability[i]),
                    "crop_box": box_xyxy_to_xywh(crop),
                }
            )
        return records


def _uncrop(data: _Masks, crop_box, hw) -> _Masks:
    """Move crop-local masks, boxes and points into the full image."""
    if tuple(crop_box) == (0, 0, hw[1], hw[0]):
        return data
    masks = uncrop_masks(data.masks, crop_box, *hw)
    return _Masks(masks, data.iou, data.stability, uncrop_points(data.points, crop_box), uncrop_boxes_xyxy(data.boxes, crop_box))


class _Counter:
    """Counts finished batches for progress reports and checks for a stop request."""

    def __init__(self, total: int, progress: ProgressCallback | None, should_stop: StopCheck | None):
        self.total, self.done = total, 0
        self.progress, self.should_stop = progress, should_stop

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled(f"stopped after {self.done} of {self.total} batches")

    def step(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)
        self.check()
