"""Toolbox for automatic mask generation: point grids, crops, box NMS, RLE, label images.

Torch and numpy only (no torchvision, no pycocotools). Boxes are XYXY in pixels, points (x, y).
Numbers match the official `sam2.utils.amg` helpers and torchvision's NMS.
"""

from __future__ import annotations

import math
from itertools import product
from typing import Any, Iterator, Sequence

import numpy as np
import torch

_NMS_BLOCK = 256


# --------------------------------------------------------------------------------------------
# Point grids and crops
# --------------------------------------------------------------------------------------------


def build_point_grid(n_per_side: int) -> np.ndarray:
    """(n*n, 2) points (x, y) in [0, 1] at cell centres (k + 0.5) / n; x varies fastest."""
    if n_per_side < 1:
        raise ValueError(f"n_per_side={n_per_side} must be at least 1.")
    half_cell = 1 / (2 * n_per_side)
    centres = np.linspace(half_cell, 1 - half_cell, n_per_side)
    xs, ys = np.meshgrid(centres, centres, indexing="xy")
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def build_all_layer_point_grids(
    n_per_side: int, n_layers: int, scale_per_layer: int
) -> list[np.ndarray]:
    """One grid per crop layer 0..n_layers: int(n_per_side / scale_per_layer**i) points per side."""
    grids = []
    for i in range(n_layers + 1):
        n = int(n_per_side / (scale_per_layer**i))
        if n < 1:
            raise ValueError(
                f"crop layer {i} would get {n} points per side "
                f"({n_per_side} / {scale_per_layer}**{i}); "
                "use fewer crop layers, a smaller downscale factor or more points per side."
            )
        grids.append(build_point_grid(n))
    return grids


def generate_crop_boxes(
    im_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes (XYXY) and layer indices: the whole image, then 2**i x 2**i overlapping crops.

    Layer i's overlap is int(overlap_ratio * short_side * 2 / 2**i) pixels; crops are ordered by x
    start, then y start, and clipped to the image.
    """
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes: list[list[int]] = [[0, 0, im_w, im_h]]
    layers = [0]
    for layer in range(1, n_layers + 1):
        n_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / n_side))
        crop_w = math.ceil((overlap * (n_side - 1) + im_w) / n_side)
        crop_h = math.ceil((overlap * (n_side - 1) + im_h) / n_side)
        x_starts = [int((crop_w - overlap) * i) for i in range(n_side)]
        y_starts = [int((crop_h - overlap) * i) for i in range(n_side)]
        for x0, y0 in product(x_starts, y_starts):
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layers.append(layer)
    return boxes, layers


# --------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------


def _float_boxes(boxes: torch.Tensor) -> torch.Tensor:
    return boxes if boxes.is_floating_point() else boxes.to(torch.float32)


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _pairwise_iou(a, b, area_a, area_b):
    """IoU (N, M) of torch tensors or numpy arrays, in torchvision's float operations."""
    xp = np if isinstance(a, np.ndarray) else torch
    x0, y0 = xp.maximum(a[:, 0, None], b[None, :, 0]), xp.maximum(a[:, 1, None], b[None, :, 1])
    x1, y1 = xp.minimum(a[:, 2, None], b[None, :, 2]), xp.minimum(a[:, 3, None], b[None, :, 3])
    w, h = (x1 - x0).clip(min=0), (y1 - y0).clip(min=0)
    inter = w * h
    with np.errstate(divide="ignore", invalid="ignore"):  # empty boxes: 0 / 0 = NaN, no effect
        return inter / (area_a[:, None] + area_b[None, :] - inter)


def _float32_threshold(threshold: float) -> float:
    """The float32 t with (x > t) == (float64(x) > threshold) for all float32 x."""
    t = np.float32(threshold)
    if float(t) > threshold:
        t = np.nextafter(t, np.float32(-np.inf))
    return float(t)


def batched_box_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Greedy NMS within each category: indices (int64) of kept boxes, by decreasing score.

    torchvision semantics: boxes are visited by a stable descending sort of `scores` (ties: lower
    index first) and a box is dropped when its IoU with an already kept box of the same category
    is > iou_threshold (exactly as torchvision's float64 comparison). Memory stays O(block * N).
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (N, 4) XYXY; got shape {tuple(boxes.shape)}.")
    n = boxes.shape[0]
    if scores.shape != (n,) or idxs.shape != (n,):
        raise ValueError(
            f"scores {tuple(scores.shape)} and idxs {tuple(idxs.shape)} "
            f"must both be ({n},) like boxes."
        )
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    ordered = boxes.detach()[order]
    if ordered.dtype != torch.float64:
        ordered = ordered.to(torch.float32)
    if ordered.dtype == torch.float32:
        threshold = _float32_threshold(iou_threshold)
    else:
        threshold = iou_threshold
    areas = _area(ordered)
    categories = idxs.detach()[order]
    if _numpy_on(boxes.device):
        ordered, areas, categories = ordered.numpy(), areas.numpy(), categories.numpy()
    suppressed = np.zeros(n, dtype=bool)
    kept: list[int] = []
    for start in range(0, n, _NMS_BLOCK):
        rows = np.flatnonzero(~suppressed[start : start + _NMS_BLOCK]) + start
        if rows.size == 0:
            continue
        cols = np.flatnonzero(~suppressed[start:]) + start  # suppressed boxes need no IoU
        r_boxes, r_areas, r_cats = (_take(v, rows) for v in (ordered, areas, categories))
        c_boxes, c_areas, c_cats = (_take(v, cols) for v in (ordered, areas, categories))
        overlaps = (_pairwise_iou(r_boxes, c_boxes, r_areas, c_areas) > threshold) & (
            r_cats[:, None] == c_cats[None, :]
        )
        if isinstance(overlaps, torch.Tensor):
            overlaps = overlaps.cpu().numpy()
        for r, i in enumerate(rows):
            if suppressed[i]:
                continue
            kept.append(int(i))
            suppressed[cols[overlaps[r]]] = True
    return order[torch.tensor(kept, dtype=torch.int64, device=boxes.device)]


def _numpy_on(device: torch.device) -> bool:
    """NMS blocks run in numpy on the CPU: same IEEE results, no thread-pool overhead."""
    return device.type == "cpu"


def _take(values, index: np.ndarray):
    """values[index] for a numpy array or a tensor (on any device)."""
    if isinstance(values, np.ndarray):
        return values[index]
    return values[torch.from_numpy(index).to(values.device)]


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight XYXY boxes (..., 4) int64 around masks (..., H, W), inclusive indices; empty -> 0s.

    Same numbers as the official `batched_mask_to_box` (non-bool masks: nonzero = inside).
    """
    if masks.ndim < 2:
        raise ValueError(f"masks must be (..., H, W); got shape {tuple(masks.shape)}.")
    lead = masks.shape[:-2]
    if masks.numel() == 0:
        return torch.zeros(*lead, 4, dtype=torch.int64, device=masks.device)
    inside = masks if masks.dtype == torch.bool else masks != 0
    h, w = inside.shape[-2:]
    rows = _any(inside, -1).to(torch.uint8)  # (..., H)
    # Columns only over the rows any mask reaches (small objects: a thin band, far cheaper).
    reached = rows.reshape(-1, h).amax(dim=0).nonzero()
    band = inside[..., int(reached[0]) : int(reached[-1]) + 1, :] if len(reached) else inside[..., :1, :]
    cols = _any(band, -2).to(torch.uint8)  # (..., W)
    top = rows.argmax(dim=-1)
    bottom = (h - 1) - rows.flip(-1).argmax(dim=-1)
    left = cols.argmax(dim=-1)
    right = (w - 1) - cols.flip(-1).argmax(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    empty = rows.amax(dim=-1) == 0
    return boxes.masked_fill(empty[..., None], 0)


def _any(inside: torch.Tensor, dim: int) -> torch.Tensor:
    """`inside.any(dim)`; on the CPU through numpy, whose bool reductions are ~20x faster."""
    if inside.device.type == "cpu":
        return torch.from_numpy(np.asarray(inside.numpy().any(axis=dim)))
    return inside.any(dim=dim)


def box_xyxy_to_xywh(box_xyxy: Any) -> Any:
    """(..., 4) XYXY -> XYWH; keeps the kind of input (tensor, array, or list for sequences)."""
    if isinstance(box_xyxy, torch.Tensor):
        out = box_xyxy.clone()
    else:
        out = np.array(box_xyxy)
    out[..., 2] = out[..., 2] - out[..., 0]
    out[..., 3] = out[..., 3] - out[..., 1]
    if isinstance(box_xyxy, (list, tuple)):
        return out.tolist()
    return out


def is_box_near_crop_edge(
    boxes: torch.Tensor, crop_box: Sequence[int], orig_box: Sequence[int], atol: float = 20.0
) -> torch.Tensor:
    """(N,) True for boxes (crop coordinates) near (atol) a crop edge not on the image edge."""
    image_boxes = uncrop_boxes_xyxy(boxes, crop_box).float()
    crop = torch.as_tensor(crop_box, dtype=torch.float32, device=boxes.device)
    orig = torch.as_tensor(orig_box, dtype=torch.float32, device=boxes.device)
    near_crop = (image_boxes - crop).abs() <= atol
    near_image = (image_boxes - orig).abs() <= atol
    return (near_crop & ~near_image).any(dim=-1)


# --------------------------------------------------------------------------------------------
# Crops back to the image
# --------------------------------------------------------------------------------------------


def uncrop_boxes_xyxy(boxes: torch.Tensor, crop_box: Sequence[int]) -> torch.Tensor:
    """Boxes (..., 4) from crop to image coordinates (shift by the crop's x0, y0)."""
    x0, y0 = int(crop_box[0]), int(crop_box[1])
    return boxes + torch.tensor([x0, y0, x0, y0], device=boxes.device)


def uncrop_points(points: torch.Tensor, crop_box: Sequence[int]) -> torch.Tensor:
    """Points (..., 2) from crop to image coordinates."""
    x0, y0 = int(crop_box[0]), int(crop_box[1])
    return points + torch.tensor([x0, y0], device=points.device)


def uncrop_masks(
    masks: torch.Tensor, crop_box: Sequence[int], orig_h: int, orig_w: int
) -> torch.Tensor:
    """Masks (..., h, w) of a crop zero-padded to the full image (..., orig_h, orig_w)."""
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    if (x0, y0, x1, y1) == (0, 0, orig_w, orig_h):
        return masks
    pad = (x0, orig_w - x1, y0, orig_h - y1)  # left, right, top, bottom
    return torch.nn.functional.pad(masks, pad, value=0)


# --------------------------------------------------------------------------------------------
# Uncompressed RLE (COCO layout: column-major, counts start with a background run)
# --------------------------------------------------------------------------------------------


def mask_to_rle_pytorch(masks: torch.Tensor) -> list[dict[str, Any]]:
    """Binary masks (B, H, W) -> [{'size': [H, W], 'counts': [...]}] in COCO uncompressed RLE."""
    if masks.ndim != 3:
        raise ValueError(f"masks must be (B, H, W); got shape {tuple(masks.shape)}.")
    b, h, w = masks.shape
    flat = masks.bool().transpose(1, 2).reshape(b, h * w)  # column-major
    changes = (flat[:, 1:] != flat[:, :-1]).nonzero().cpu().numpy()
    first = flat[:, 0].cpu().numpy() if h * w else np.zeros(b, dtype=bool)
    per_mask = np.split(changes[:, 1] + 1, np.cumsum(np.bincount(changes[:, 0], minlength=b))[:-1])
    out = []
    for i in range(b):
        bounds = np.concatenate([[0], per_mask[i], [h * w]])
        counts = np.diff(bounds).tolist()
        if first[i]:
            counts.insert(0, 0)
        out.append({"size": [h, w], "counts": counts})
    return out


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """COCO uncompressed RLE -> bool mask (H, W)."""
    h, w = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != h * w:
        raise ValueError(
            f"RLE counts sum to {int(counts.sum())}, not H*W = {h * w} for size {[h, w]}."
        )
    values = np.arange(counts.size) % 2 == 1
    return np.ascontiguousarray(np.repeat(values, counts).reshape(w, h).T)


def area_from_rle(rle: dict[str, Any]) -> int:
    """Foreground pixel count of an uncompressed RLE (the odd-position runs)."""
    return int(sum(rle["counts"][1::2]))


# --------------------------------------------------------------------------------------------
# Scores and batching
# --------------------------------------------------------------------------------------------


def batch_iterator(batch_size: int, *args: Sequence[Any]) -> Iterator[list[Any]]:
    """Yield [arg[i:i+batch_size] for each arg] over equally long sequences."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1.")
    if not args or any(len(a) != len(args[0]) for a in args):
        raise ValueError("batch_iterator needs at least one sequence, all of the same length.")
    for start in range(0, len(args[0]), batch_size):
        yield [a[start : start + batch_size] for a in args]


# --------------------------------------------------------------------------------------------
# Records -> label image
# --------------------------------------------------------------------------------------------


def _record_mask(record: dict[str, Any], shape: tuple[int, int]) -> np.ndarray:
    seg = record["segmentation"]
    mask = rle_to_mask(seg) if isinstance(seg, dict) else np.asarray(seg, dtype=bool)
    if mask.shape != shape:
        raise ValueError(
            f"a record's segmentation has shape {mask.shape}, not the label shape {shape}."
        )
    return mask


LABEL_ORDERS = ("quality", "area", "predicted_iou", "given")


def records_to_label_image(
    records: Sequence[dict[str, Any]],
    shape: tuple[int, int],
    order: str = "quality",
    min_kept: float = 0.5,
) -> np.ndarray:
    """Non-overlapping uint32 label image (H, W) from mask records ('segmentation' bool or RLE).

    order="quality" (instances): masks are placed best first (higher 'predicted_iou', then
    'stability_score', then smaller area); each takes only pixels no better mask took, and a mask
    left with less than `min_kept` of its pixels is dropped, so duplicates, fragments and merges
    of objects already placed disappear instead of leaving slivers.
    The other orders paint layers, later on top, and drop only masks left with no pixel:
    order="area" paints larger masks first and smaller ones on top (a nucleus inside its cell
    stays visible; equal areas: higher 'predicted_iou' on top); order="predicted_iou" puts higher
    IoU on top; order="given" follows the record order. Labels are 1..N in placing order.
    """
    shape = (int(shape[0]), int(shape[1]))

    def area(i: int) -> int:
        rec = records[i]
        return int(rec["area"]) if "area" in rec else int(_record_mask(rec, shape).sum())

    if order == "quality":
        def key(i: int) -> tuple:
            rec = records[i]
            return (-rec.get("predicted_iou", 0.0), -rec.get("stability_score", 0.0), area(i), i)
    elif order == "area":
        def key(i: int) -> tuple:
            return (-area(i), records[i].get("predicted_iou", 0.0), i)
    elif order == "predicted_iou":
        def key(i: int) -> tuple:
            return (records[i].get("predicted_iou", 0.0), i)
    elif order == "given":
        def key(i: int) -> tuple:
            return (i,)
    else:
        raise ValueError(f"order={order!r} is not one of {', '.join(map(repr, LABEL_ORDERS))}.")

    labels = np.zeros(shape, dtype=np.uint32)
    painting = sorted(range(len(records)), key=key)
    if order == "quality":
        value = 0
        for i in painting:
            mask = _record_mask(records[i], shape)
            free = mask & (labels == 0)
            kept = int(free.sum())
            if kept and kept >= min_kept * int(mask.sum()):
                value += 1
                labels[free] = value
        return labels
    for value, i in enumerate(painting, start=1):
        labels[_record_mask(records[i], shape)] = value
    visible = np.zeros(len(records) + 1, dtype=bool)
    visible[np.unique(labels)] = True
    visible[0] = False
    relabel = np.zeros(len(records) + 1, dtype=np.uint32)
    relabel[visible] = np.arange(1, int(visible.sum()) + 1, dtype=np.uint32)
    return relabel[labels]
