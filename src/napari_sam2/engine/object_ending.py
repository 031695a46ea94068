"""When a tracked object ends: a per-frame object score and a threshold with hysteresis.

SAM 2's presence head rarely calls a nucleus absent on the slices past its end (on BBBC050 it
stays confident while the mask shrinks to a few pixels or jumps to a neighbour), so the score
combines signs that the object is gone, each in [0, 1]:
- presence: sigmoid of the model's object-score logit;
- size: the mask's area relative to its area on the object's conditioning (prompted) frame;
- continuity: the share of the smaller of this and the previous frame's masks that the other
  covers (a mask that jumps to another object has little overlap with where it was);
- ownership: the share of the mask where no other tracked object's logit is higher (a mask
  that slides step by step onto a tracked neighbour loses it); only where objects may not
  overlap (the tracker's `non_overlapping`, the default);
- contrast: how the mask stands out (its mean intensity minus that of a ring around it outside
  every object, and minus the frame's background), relative to the same on the object's
  prompted frame (a nucleus past its last slice leaves a dim, blurred blob that the model keeps
  following); the larger of the two counts, and only what stood out on the prompted frame.
The object score is the smallest of these. An object ends only on frames that come after one of
its prompted frames in the pass's direction: before it (tracked from a prompt further on, as the
official predictor does), a low score only hides its mask on that frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..modeling.sam2 import NO_OBJECT_SCORE


@dataclass(frozen=True)
class ObjectEnding:
    """An object is absent on a frame whose score is below `absent_below` (its mask is dropped);
    after `patience` absent frames in a row it ends and is no longer tracked in that pass. A
    frame counts as present again only when the score rises above `present_above` (hysteresis:
    a score hovering near the threshold does not reset the count)."""

    absent_below: float = 0.2
    present_above: float = 0.4
    patience: int = 1
    full_size: float = 0.5  # area ratio that counts as fully present (nuclei shrink near their ends)
    contrast: bool = True  # use the contrast sign (needs the frames' intensities)

    def __post_init__(self) -> None:
        if not 0 <= self.absent_below <= self.present_above <= 1:
            raise ValueError("ObjectEnding needs 0 <= absent_below <= present_above <= 1.")
        if self.patience < 1:
            raise ValueError("ObjectEnding.patience must be at least 1.")


@dataclass
class EndingState:
    """One object's state during one propagation pass."""

    reference_area: float
    previous: torch.Tensor | None = None  # bool low-res mask of the last frame
    reference_contrast: tuple[float, float] | None = None  # on the prompted frame (`mask_contrast`)
    absent_run: int = 0
    ended: bool = False


def mask_area(low_res: torch.Tensor) -> float:
    return float((low_res > 0).sum())


# Contrast on the prompted frame below this (intensities in [0, 1]) is too weak to rely on.
MIN_REFERENCE_CONTRAST = 0.03
RING = 3  # low-res pixels (12 model-input pixels) around the mask
BACKGROUND_PERCENTILE = 0.1  # of the frame's low-res intensities
BRIGHT_SHARE = 0.5  # a mask this much less above the background than when prompted has faded


def background(gray: torch.Tensor) -> float:
    """The frame's background level: the BACKGROUND_PERCENTILE of its low-res intensities."""
    flat = gray.flatten()
    return float(flat.kthvalue(max(1, int(BACKGROUND_PERCENTILE * flat.numel()))).values)


def mask_contrast(
    low_res: torch.Tensor, gray: torch.Tensor, others: torch.Tensor | None = None, level: float | None = None
) -> tuple[float, float] | None:
    """How the mask stands out on `gray` (the frame's intensities on the low-res grid): its mean
    minus that of a ring of RING pixels around it (outside `others`, other objects' masks; the
    ring's own mean when the ring is empty), and its mean minus the frame's background `level`
    (`background(gray)` when not given); None for an empty mask."""
    mask = low_res.reshape(low_res.shape[-2:]) > 0
    if not mask.any():
        return None
    inside = float(gray[mask].mean())
    grown = F.max_pool2d(mask[None, None].float(), 2 * RING + 1, stride=1, padding=RING)[0, 0] > 0
    ring = grown & ~mask
    if others is not None:
        ring &= ~others
    around = float(gray[ring].mean()) if ring.any() else inside
    return inside - around, inside - (background(gray) if level is None else level)


def contrast_share(contrast: tuple[float, float] | None, reference: tuple[float, float] | None) -> float:
    """The contrast sign in [0, 1]: the ring contrast relative to the prompted frame's, or, when
    larger, the height above the background relative to the prompted frame's mapped from
    BRIGHT_SHARE..1 to 0..1 (a mask inside a larger bright region has no contrast to its ring
    but stays bright; a faded object loses both); 1 when unknown or when the object did not
    stand out on its prompted frame."""
    if contrast is None or reference is None:
        return 1.0
    shares = [min(1.0, max(0.0, c / r)) if abs(r) >= MIN_REFERENCE_CONTRAST else None for c, r in zip(contrast, reference)]
    ring, above = shares
    if ring is None and above is None:
        return 1.0
    # above the background alone counts only from half the prompted frame's level up
    return max(ring or 0.0, 0.0 if above is None else max(0.0, (above - BRIGHT_SHARE) / (1 - BRIGHT_SHARE)))


def object_score(
    low_res: torch.Tensor, presence_logit: float, state: EndingState, full_size: float, owned: float = 1.0,
    contrast: float = 1.0,
) -> float:
    """The object's score on a frame in [0, 1] (see the module docstring); `owned` is the
    ownership share (`owned_shares`), `contrast` the contrast sign (`contrast_share`)."""
    mask = low_res.reshape(low_res.shape[-2:]) > 0
    area = float(mask.sum())
    presence = float(torch.sigmoid(torch.tensor(presence_logit)))
    size = min(1.0, area / max(full_size * state.reference_area, 1.0))
    continuity = 1.0
    if state.previous is not None and area > 0:
        before = float(state.previous.sum())
        if before > 0:
            continuity = float((mask & state.previous).sum()) / min(area, before)
    return min(presence, size, continuity, owned, contrast)


def owned_shares(low_res: dict[int, torch.Tensor]) -> dict[int, float]:
    """For each object, the share of its mask (logits > 0) where its logit is the highest of all
    objects' (1.0 for an empty mask or a lone object)."""
    if len(low_res) < 2:
        return {i: 1.0 for i in low_res}
    ids = list(low_res)
    logits = torch.stack([low_res[i].reshape(low_res[i].shape[-2:]) for i in ids])
    winner = logits.argmax(dim=0)
    shares = {}
    for k, i in enumerate(ids):
        mask = logits[k] > 0
        area = int(mask.sum())
        shares[i] = float((mask & (winner == k)).sum()) / area if area else 1.0
    return shares


def update(state: EndingState, score: float, low_res: torch.Tensor, rule: ObjectEnding, may_end: bool = True) -> bool:
    """Record one frame's score; True when the object is absent on it. Without `may_end` (a
    frame before the object's prompt in this pass) absence hides the mask but does not count."""
    absent = score < rule.absent_below
    if absent and may_end:
        state.absent_run += 1
        state.ended = state.absent_run >= rule.patience
    elif score > rule.present_above:
        state.absent_run = 0
    if not absent:
        state.previous = low_res.reshape(low_res.shape[-2:]) > 0
    return absent


def end_objects(
    frame: int,
    objects: dict,
    low_res: dict[int, torch.Tensor],
    states: dict,
    endings: dict[int, EndingState],
    ending: ObjectEnding | None,
    non_overlapping: bool,
    reverse: bool = False,
    gray: Callable[[int], torch.Tensor] | None = None,
    competitors: dict[int, torch.Tensor] | None = None,
) -> dict[int, float]:
    """Each tracked object's score on `frame` (1 on its prompted frames, the presence alone
    without `ending`); the logits in `low_res` of objects absent there become empty.
    objects: the tracker's objects (their prompted frames `cond`); states: their outputs on
    `frame` (`score`, the presence logit); endings: their ending states in this pass; reverse:
    the pass's direction; gray: a frame's intensities on the low-res grid (for the contrast
    sign; None: no contrast sign); competitors: low-res logits of other objects on this frame
    from another pass (they take part in ownership and contrast rings, and are not scored)."""
    scores = {}
    everyone = {**(competitors or {}), **low_res}
    # Ownership only where objects may not overlap: nested objects (a nucleus in its cell) may.
    owned = owned_shares(everyone) if ending is not None and non_overlapping else {}
    use_contrast = ending is not None and ending.contrast and gray is not None
    masks = {i: out.reshape(out.shape[-2:]) > 0 for i, out in everyone.items()} if use_contrast else {}
    covered = torch.stack(list(masks.values())).sum(dim=0) if masks else None  # objects per pixel
    level = background(gray(frame)) if use_contrast else None
    for obj_id, out in list(low_res.items()):
        obj = objects[obj_id]
        if frame in obj.cond:
            endings[obj_id] = EndingState(mask_area(out), out.reshape(out.shape[-2:]) > 0)
            scores[obj_id] = 1.0
            continue
        presence = float(states[obj_id].score.reshape(-1)[0])
        if ending is None:
            scores[obj_id] = float(torch.sigmoid(torch.tensor(presence)))
            continue
        state = endings.get(obj_id)
        if state is None:
            state = endings[obj_id] = EndingState(max(mask_area(s.low_res) for s in obj.cond.values()))
        contrast = 1.0
        if use_contrast:
            if state.reference_contrast is None:
                state.reference_contrast = _reference_contrast(obj, gray)
            others = (covered - masks[obj_id].to(covered.dtype)) > 0
            contrast = contrast_share(mask_contrast(out, gray(frame), others, level), state.reference_contrast)
        scores[obj_id] = object_score(out, presence, state, ending.full_size, owned.get(obj_id, 1.0), contrast)
        after_prompt = any(f >= frame if reverse else f <= frame for f in obj.cond)
        if update(state, scores[obj_id], out, ending, may_end=after_prompt):
            low_res[obj_id] = torch.full_like(out, NO_OBJECT_SCORE)
            states[obj_id].absent = True
    return scores


def _reference_contrast(obj, gray: Callable[[int], torch.Tensor]) -> tuple[float, float]:
    """The object's contrasts on its largest prompted frame (zeros when not measurable there,
    so that the contrast sign stays off)."""
    frame, state = max(obj.cond.items(), key=lambda item: mask_area(item[1].low_res))
    value = mask_contrast(state.low_res, gray(frame))
    return (0.0, 0.0) if value is None else value


def shown_elsewhere(objects, frame: int, states: dict) -> dict[int, torch.Tensor]:
    """Low-res logits of objects not tracked on `frame` in this pass (not in `states`) but shown
    there by another (the forward pass of 'both'): competitors for `end_objects`."""
    shown = {}
    for obj in objects:
        if obj.obj_id not in states:
            state = obj.tracked.get(frame)
            if state is not None and not state.absent:
                shown[obj.obj_id] = state.low_res
    return shown
