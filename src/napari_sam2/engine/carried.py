"""Tracking without memory: each object is found on a frame by a click where it was on the frame
before.

The prompts are a click at the point deepest inside the object's last mask and that mask's
logits (as a correction reuses them), decoded to one mask in a window around the object
(`windows.py`). Neither memory attention nor the memory encoder runs, so an object costs one
decoder pass over a few cells: the way to follow a hundred nuclei per frame. What memory adds is
carrying an object through occlusions, jumps larger than its radius and look-alike neighbours.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ..modeling.prompt_encoder import LABEL_POSITIVE
from ..modeling.sam2 import NO_OBJECT_SCORE, ImageFeatures, SAM2Model
from .object_memory import FrameState, TrackedObject
from .postprocess import LOGIT_CLAMP, with_holes_filled
from .precision import compute_precision
from .windows import GridWindow, window_around


def track_by_clicks(
    model: SAM2Model,
    objects: list[TrackedObject],
    frame: int,
    features: ImageFeatures,
    reverse: bool,
    max_window: int | None,
    dtype: torch.dtype,
    fill_hole_area: int = 8,
) -> dict[int, FrameState]:
    """Each object's state on `frame` from its last mask before it in the pass's direction;
    objects with the same window size run as one batch. max_window: the largest window in cells
    (None: whole frames). An object whose masks before `frame` are all empty is absent."""
    grid = model.config.feat_size
    states, batches = {}, {}
    for obj in objects:
        last = last_seen(obj, frame, reverse)
        if last is None:
            states[obj.obj_id] = absent_state(next(iter({**obj.tracked, **obj.cond}.values())))
            continue
        window = None if max_window is None else window_around(last.low_res, max_window, grid)
        if window is None or window.side >= grid:
            window = GridWindow(0, 0, grid, grid)
        batches.setdefault(window.side, []).append((obj, window, last.low_res))
    for batch in batches.values():
        states.update(_decode(model, batch, features, dtype, fill_hole_area))
    return states


def last_seen(obj: TrackedObject, frame: int, reverse: bool) -> FrameState | None:
    """The object's state on the nearest frame before `frame` (in the pass's direction) where
    its mask is not empty."""
    before = [f for f in (*obj.cond, *obj.tracked) if (f > frame if reverse else f < frame)]
    for f in sorted(before, key=lambda f: abs(f - frame)):
        state = obj.state(f)
        if bool((state.low_res > 0).any()):
            return state
    return None


def deepest_point(low_res: torch.Tensor, image_size: int) -> tuple[float, float]:
    """(x, y) in model-input pixels of the centre of the low-res pixel farthest from the border
    of a non-empty mask (`low_res` logits > 0)."""
    mask = low_res.reshape(low_res.shape[-2:]) > 0
    rows, cols = mask.any(dim=1).nonzero()[:, 0], mask.any(dim=0).nonzero()[:, 0]
    top, left = int(rows[0]), int(cols[0])
    crop = mask[top : int(rows[-1]) + 1, left : int(cols[-1]) + 1].cpu().numpy()
    depth = ndimage.distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    k = image_size / mask.shape[-1]  # model-input pixels per low-res pixel
    return ((left + x + 0.5) * k, (top + y + 0.5) * k)


def absent_state(like: FrameState) -> FrameState:
    """An object not found on a frame: empty logits and an absent score."""
    return FrameState(
        torch.full_like(like.low_res, NO_OBJECT_SCORE), like.obj_ptr, torch.full_like(like.score, NO_OBJECT_SCORE),
        torch.zeros_like(like.iou), False, absent=True,
    )


def _decode(model: SAM2Model, batch: list, features: ImageFeatures, dtype: torch.dtype, fill_hole_area: int) -> dict:
    objects, windows, last_logits = zip(*batch)
    device = features.embedding.device
    points = [deepest_point(logits, model.image_size) for logits in last_logits]
    coords = torch.tensor(points, dtype=torch.float32, device=device)[:, None]
    prior = torch.cat([w.crop(logits) for w, logits in zip(windows, last_logits)]).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
    labels = torch.full((len(objects), 1), LABEL_POSITIVE, dtype=torch.int32, device=device)
    pe = model.sam_prompt_encoder.dense_pe()
    with compute_precision(device, dtype):
        embedding = model.add_no_memory(torch.cat([w.crop(features.embedding) for w in windows]))
        high_res = [torch.cat([w.crop(f) for w in windows]) for f in features.high_res]
        image_pe = torch.cat([w.crop(pe) for w in windows]).to(embedding.dtype)
        out = model.decode_frame(embedding, high_res, coords, labels, prior, image_pe=image_pe)
    out = with_holes_filled(out, fill_hole_area)
    return {
        obj.obj_id: FrameState(
            window.paste(out.low_res_masks[i : i + 1].float()), out.obj_ptr[i : i + 1].float(),
            out.object_score[i : i + 1].float(), out.iou[i : i + 1].float(), False, None, window,
        )
        for i, (obj, window) in enumerate(zip(objects, windows))
    }
