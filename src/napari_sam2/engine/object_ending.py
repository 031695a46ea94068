"""When a tracked object ends: a per-frame object score and a threshold with hysteresis.

SAM 2's presence head rarely calls a nucleus absent on the slices past its end (on BBBC050 it
stays confident while the mask shrinks to a few pixels or jumps to a neighbour), so the score
combines three signs that the object is gone, each in [0, 1]:
- presence: sigmoid of the model's object-score logit;
- size: the mask's area relative to its area on the object's conditioning (prompted) frame;
- continuity: the share of the smaller of this and the previous frame's masks that the other
  covers (a mask that jumps to another object has little overlap with where it was);
- ownership: the share of the mask where no other tracked object's logit is higher (a mask
  that slides step by step onto a tracked neighbour loses it); only where objects may not
  overlap (the tracker's `non_overlapping`, the default).
The object score is the smallest of the four.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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
    absent_run: int = 0
    ended: bool = False


def mask_area(low_res: torch.Tensor) -> float:
    return float((low_res > 0).sum())


def object_score(
    low_res: torch.Tensor, presence_logit: float, state: EndingState, full_size: float, owned: float = 1.0
) -> float:
    """The object's score on a frame in [0, 1] (see the module docstring); `owned` is the
    ownership share (`owned_shares`)."""
    mask = low_res.reshape(low_res.shape[-2:]) > 0
    area = float(mask.sum())
    presence = float(torch.sigmoid(torch.tensor(presence_logit)))
    size = min(1.0, area / max(full_size * state.reference_area, 1.0))
    continuity = 1.0
    if state.previous is not None and area > 0:
        before = float(state.previous.sum())
        if before > 0:
            continuity = float((mask & state.previous).sum()) / min(area, before)
    return min(presence, size, continuity, owned)


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


def update(state: EndingState, score: float, low_res: torch.Tensor, rule: ObjectEnding) -> bool:
    """Record one frame's score; True when the object is absent on it."""
    absent = score < rule.absent_below
    if absent:
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
) -> dict[int, float]:
    """Each tracked object's score on `frame` (1 on its prompted frames, the presence alone
    without `ending`); the logits in `low_res` of objects absent there become empty.
    objects: the tracker's objects (their prompted frames `cond`); states: their outputs on
    `frame` (`score`, the presence logit); endings: their ending states in this pass."""
    scores = {}
    # Ownership only where objects may not overlap: nested objects (a nucleus in its cell) may.
    owned = owned_shares(low_res) if ending is not None and non_overlapping else {}
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
        scores[obj_id] = object_score(out, presence, state, ending.full_size, owned.get(obj_id, 1.0))
        if update(state, scores[obj_id], out, ending):
            low_res[obj_id] = torch.full_like(out, NO_OBJECT_SCORE)
    return scores
