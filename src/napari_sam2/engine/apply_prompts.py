"""One object's prompts on one frame, applied the same way by the widget, the API and the CLI,
so that a saved session replays to the same labels.

Segmenting a frame (ImagePredictor): clicks, a box and a mask decode to the best mask. A mask
prompt is handed to SAM 2 the way SAM 2 hands back its own predictions for refinement: resized
to the decoder's low-res mask input as logits of +/-10. The mask's bounding box goes with it
(unless a box is given) and, without clicks, one positive click on its most interior pixel, so
that the decoder is told where the object is and not only what shape it has.

Tracking (StackTracker): a mask alone is the object on its frame, as in the official video
predictor, and the labels keep that mask exactly there; clicks or a box given with a mask
correct the tracker's version of it, as corrections on a tracked frame do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .predictor import ImagePredictor, PromptError
from .zoom import prompt_extent, zoom_window

MASK_LOGIT = 10.0  # the magnitude the tracker gives a mask used as a prompt

GivenMasks = dict[tuple[int, int], np.ndarray]  # (frame, object id) -> mask to keep exactly


def mask_hint(mask: np.ndarray, low_res_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A binary (H, W) mask as decoder prompts: its box (x0, y0, x1, y1), its most interior
    pixel (x, y), and (1, h, w) low-res logits."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise PromptError("The mask prompt is empty: the label is not on this frame.")
    rows, cols = np.nonzero(mask)
    box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    centre = np.array([col, row], dtype=np.float64)
    soft = torch.from_numpy(mask.astype(np.float32))[None, None]
    soft = F.interpolate(soft, size=tuple(low_res_hw), mode="bilinear", align_corners=False, antialias=True)
    logits = (soft[0] * 2.0 - 1.0) * MASK_LOGIT
    return box, centre, logits.numpy()


def segment_object(
    predictor: ImagePredictor,
    points: Any = None,
    labels: Any = None,
    box: Any = None,
    mask: np.ndarray | None = None,
    zoom: bool = False,
) -> tuple[np.ndarray, float]:
    """The best mask and its predicted IoU for one object on the predictor's current image
    (`zoom`: on an enlarged crop around a small object, see `ImagePredictor.predict`)."""
    has_points = points is not None and len(points) > 0
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2) if has_points else None
    labels = np.asarray(labels, dtype=np.int64).reshape(-1) if has_points and labels is not None else None
    mask_input, window = None, zoom
    if mask is not None:
        low_res_hw = predictor.model.sam_prompt_encoder.mask_input_size
        hint_box, centre, mask_input = mask_hint(mask, low_res_hw)
        if zoom:  # the mask's logits must cover the zoomed window
            extent = prompt_extent(points, box, hint_box)
            window = zoom_window(extent, mask.shape, predictor.model.image_size)
            if window is not None:
                x0, y0, x1, y1 = window
                mask_input = mask_hint(mask[y0:y1, x0:x1], low_res_hw)[2]
        if box is None:
            box = hint_box
        if points is None:
            points, labels = centre[None], np.ones(1, dtype=np.int64)
    multimask = mask is None and box is None and points is not None and len(points) == 1
    result = predictor.predict(
        points=points, labels=labels, box=box, mask_input=mask_input, multimask_output=multimask, zoom=window
    )
    best = result.best
    return result.masks[best], float(result.scores[best])


def add_to_tracker(
    tracker: Any,
    frame: int,
    obj_id: int,
    points: Any = None,
    labels: Any = None,
    box: Any = None,
    mask: np.ndarray | None = None,
) -> None:
    """Prompt `obj_id` on `frame` of a StackTracker (see the module's rules)."""
    has_points = points is not None and len(points) > 0
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2) if has_points else None
    labels = np.asarray(labels, dtype=np.int64).reshape(-1) if has_points and labels is not None else None
    if mask is not None:
        tracker.add_mask(frame, obj_id, mask)
    if box is not None:
        tracker.add_box(frame, obj_id, box, points, labels)
    elif points is not None:
        tracker.add_points(frame, obj_id, points, labels, clear=False)
    elif mask is None:
        raise PromptError(f"Object {obj_id} has no prompt on frame {frame}.")


def is_given_mask(points: Any, box: Any, mask: Any) -> bool:
    """A mask with neither clicks nor a box: the object exactly as given on its frame."""
    return mask is not None and box is None and (points is None or len(points) == 0)


def keep_given_masks(result: Any, given: GivenMasks) -> None:
    """Put the given masks into a tracked frame's result (they win over the tracked objects)."""
    for k, obj_id in enumerate(result.obj_ids):
        mask = given.get((int(result.frame), int(obj_id)))
        if mask is None:
            continue
        mask = np.asarray(mask, dtype=bool)
        for j in range(len(result.obj_ids)):
            if j != k:
                result.masks[j] &= ~mask
        result.masks[k] = mask
