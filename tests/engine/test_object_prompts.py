"""One object's prompts applied alike everywhere: masks as decoder prompts, the tracker's rules,
masks kept exactly, and replaying sessions of 4-D and multichannel images."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from napari_sam2 import load_model
from napari_sam2.api import _at_position, _channels_last, propagate, run_session, segment_objects
from napari_sam2.engine.apply_prompts import (
    MASK_LOGIT,
    add_to_tracker,
    keep_given_masks,
    mask_hint,
    segment_object,
)
from napari_sam2.engine.predictor import PromptError
from napari_sam2.prompt_file import Prompt, PromptSession


def test_mask_hint_gives_box_interior_click_and_low_res_logits():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 5:25] = True
    mask[15:20, 25:55] = True  # a thin arm: the most interior pixel stays in the square
    box, centre, logits = mask_hint(mask, (16, 16))
    np.testing.assert_array_equal(box, [5, 10, 55, 30])
    x, y = centre.astype(int)
    assert mask[y, x] and 12 <= x <= 17 and 17 <= y <= 22
    assert logits.shape == (1, 16, 16) and logits.max() > 0 > logits.min()
    assert np.abs(logits).max() <= MASK_LOGIT
    with pytest.raises(PromptError, match="empty"):
        mask_hint(np.zeros((40, 60), bool), (16, 16))


class _Recorder:
    """Stands in for ImagePredictor and StackTracker: records what it is asked."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.model = SimpleNamespace(sam_prompt_encoder=SimpleNamespace(mask_input_size=(16, 16)))

    def predict(self, **kwargs):
        self.calls.append(("predict", kwargs))
        return SimpleNamespace(masks=np.zeros((1, 40, 60), bool), scores=np.array([0.5]), best=0)

    def add_mask(self, frame, obj_id, mask):
        self.calls.append(("mask", frame, obj_id))

    def add_box(self, frame, obj_id, box, points=None, labels=None):
        self.calls.append(("box", frame, obj_id, points is not None))

    def add_points(self, frame, obj_id, points, labels=None, clear=True):
        self.calls.append(("points", frame, obj_id, clear))


def test_segment_object_gives_a_mask_with_its_box_and_a_click():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 5:25] = True
    recorder = _Recorder()
    segment_object(recorder, mask=mask)
    call = recorder.calls[-1][1]
    np.testing.assert_array_equal(call["box"], [5, 10, 25, 30])
    assert call["points"].shape == (1, 2) and list(call["labels"]) == [1]
    assert call["mask_input"].shape == (1, 16, 16) and call["multimask_output"] is False
    segment_object(recorder, points=[[1, 2], [3, 4]], labels=[1, 0], box=[0, 0, 9, 9], mask=mask)
    call = recorder.calls[-1][1]
    np.testing.assert_array_equal(call["box"], [0, 0, 9, 9])  # the given box wins
    assert list(call["labels"]) == [1, 0]  # and the given clicks
    segment_object(recorder, points=[[1, 2]])
    assert recorder.calls[-1][1]["multimask_output"] is True  # one click alone is ambiguous


def test_tracker_rules():
    recorder, mask = _Recorder(), np.ones((4, 4), bool)
    add_to_tracker(recorder, 2, 5, mask=mask)
    add_to_tracker(recorder, 3, 5, points=[[1, 1]], labels=[1], mask=mask)
    add_to_tracker(recorder, 4, 6, points=[[1, 1]], box=[0, 0, 2, 2])
    add_to_tracker(recorder, 1, 6, points=[[1, 1]])
    assert recorder.calls == [
        ("mask", 2, 5),
        ("mask", 3, 5), ("points", 3, 5, False),
        ("box", 4, 6, True),
        ("points", 1, 6, False),
    ]
    with pytest.raises(PromptError, match="no prompt"):
        add_to_tracker(recorder, 0, 7)


def test_given_masks_win_over_tracked_ones():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2] = masks[1, 2:] = True
    given = np.zeros((4, 4), bool)
    given[1:3, 1:3] = True
    result = SimpleNamespace(frame=3, obj_ids=[4, 9], masks=masks)
    keep_given_masks(result, {(3, 9): given, (2, 4): ~given})
    np.testing.assert_array_equal(result.masks[1], given)
    assert not (result.masks[0] & given).any() and result.masks[0, 0].all()


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_model(checkpoint, device="cpu")


def stack(n=4, size=64) -> np.ndarray:
    rng = np.random.default_rng(3)
    image = rng.normal(300, 30, (n, size, size))
    image[:, 20:40, 20:40] += 2000
    return image.astype(np.uint16)


def test_a_mask_alone_is_kept_exactly_when_propagating(model):
    mask = np.zeros((64, 64), bool)
    mask[18:43, 17:41] = True
    mask[30, 17:41] = False  # a shape the model would not draw
    session = PromptSession()
    session.add(2, Prompt(frame=1, mask={"size": [64, 64], "counts": _rle(mask)}))
    labels = propagate(stack(), session, model, precision="fp32")
    np.testing.assert_array_equal(labels[1] == 2, mask)
    assert set(np.unique(labels)) <= {0, 2}


def test_segment_mode_decodes_mask_prompts(model):
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    session = PromptSession(mode="segment")
    session.add(1, Prompt(frame=2, mask={"size": [64, 64], "counts": _rle(mask)}))
    labels = segment_objects(stack(), session, model, "fp32", stack_axis=0)
    assert labels[2].any() and not labels[[0, 1, 3]].any()


def test_sessions_of_4d_and_multichannel_images_replay_on_their_plane(model):
    movie = stack(3)
    tzyx = np.stack([movie // 2, movie, movie // 3])  # (T, Z, Y, X): track along Z at T = 1
    session = PromptSession(
        image={"stack_axis": 1, "position": {"0": 1}},
        normalization={"method": "limits", "low": 200, "high": 2400},
        mode="propagate",
        propagation={"direction": "forward"},
    )
    session.add(1, Prompt(frame=0, points=[[30, 30]], labels=[1]))
    labels = run_session(session, tzyx, model=model, precision="fp32")
    direct = propagate(movie, session, model, direction="forward", precision="fp32",
                       normalization=_limits(200, 2400))
    np.testing.assert_array_equal(labels, direct)

    czyx = np.stack([movie, movie // 2])  # channels first; channel 0 is used
    session.image = {"stack_axis": 1, "channel_axis": 0, "channels": [0]}
    labels = run_session(session, czyx, model=model, precision="fp32")
    np.testing.assert_array_equal(labels, direct)


def test_axes_bookkeeping():
    data = np.zeros((2, 3, 4, 5, 6))
    sub, stack_axis, channel_axis = _at_position(data, {"1": 2}, 2, 0)
    assert sub.shape == (2, 4, 5, 6) and (stack_axis, channel_axis) == (1, 0)
    moved, stack_axis = _channels_last(sub, stack_axis, channel_axis)
    assert moved.shape == (4, 5, 6, 2) and stack_axis == 0


def _rle(mask: np.ndarray) -> list[int]:
    from napari_sam2.engine.mask_tools import mask_to_rle_pytorch

    return mask_to_rle_pytorch(torch.from_numpy(mask)[None])[0]["counts"]


def _limits(low, high):
    from napari_sam2.images.normalization import Normalization

    return Normalization.from_limits(low, high)
