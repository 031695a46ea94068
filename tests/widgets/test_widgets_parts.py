"""The widgets' Qt-free parts: image axes, prompt grouping, the embedding cache, label writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2.engine.predictor import ImageEmbedding
from napari_sam2.images.checks import ImageInputError

pytest.importorskip("napari")

from napari.layers import Labels  # noqa: E402

from napari_sam2._widgets import _settings  # noqa: E402
from napari_sam2._widgets._embedding_cache import EmbeddingCache  # noqa: E402
from napari_sam2._widgets._image_source import ImageSource  # noqa: E402
from napari_sam2._widgets._labels import StagedWrites, commit_masks  # noqa: E402
from napari_sam2._widgets._plane_prompts import (  # noqa: E402
    PromptProblem,
    assign_new_ids,
    check_inside,
    group_prompts,
)

# ------------------------------------------------------------------ image axes


def test_2d_image_is_one_plane():
    source = ImageSource(np.zeros((40, 50), np.uint16))
    assert source.leading == () and source.labels_shape == (40, 50) and not source.is_stack
    assert source.plane(()).shape == (40, 50)
    assert source.plane_index([3.2, 7.9]) == ()


def test_zstack_planes_and_stack_view():
    data = np.arange(5 * 40 * 50, dtype=np.uint16).reshape(5, 40, 50)
    source = ImageSource(data, stack_dim=0)
    assert source.plane_index([2.6, 0, 0]) == (3,)
    assert source.plane_index([9, 0, 0]) == (4,)  # clipped to the stack
    np.testing.assert_array_equal(source.plane((2,)), data[2])
    view = source.stack((2,))
    assert view.shape == (5, 40, 50) and view.dtype == np.uint16
    np.testing.assert_array_equal(view[(4, slice(None), slice(None))], data[4])


def test_4d_stack_runs_along_the_chosen_axis_at_the_other_index():
    data = np.random.default_rng(0).integers(0, 100, (3, 4, 40, 50)).astype(np.uint8)  # T, Z, Y, X
    source = ImageSource(data, stack_dim=1)
    index = source.plane_index([2, 1, 0, 0])
    assert index == (2, 1) and source.frame_of(index) == 1 and source.n_frames == 4
    view = source.stack(index)
    np.testing.assert_array_equal(view[3], data[2, 3])
    assert source.same_line((2, 0), (2, 3)) and not source.same_line((1, 0), (2, 0))
    rows, cols = np.array([1, 2]), np.array([3, 4])
    idx = source.labels_index((2, 3), rows, cols)
    assert [list(a) for a in idx] == [[2, 2], [3, 3], [1, 2], [3, 4]]


def test_channel_axis_and_rgb():
    data = (
        np.random.default_rng(0).integers(0, 4000, (5, 6, 40, 50)).astype(np.uint16)
    )  # C, Z, Y, X
    source = ImageSource(data, channel_dim=0, channels=(2, 0), stack_dim=1)
    assert source.labels_shape == (6, 40, 50) and source.leading == (1,)
    plane = source.plane((3,))
    assert plane.shape == (40, 50, 2)
    np.testing.assert_array_equal(plane[..., 0], data[2, 3])
    norm = source.normalization()
    assert norm.n_channels == 2
    assert ImageSource(data, channel_dim=0).channels == (0,)  # more than 3 channels: the first

    rgb = np.random.default_rng(1).integers(0, 255, (40, 50, 3)).astype(np.uint8)
    source = ImageSource(rgb, rgb=True)
    assert source.ndim == 2 and source.labels_shape == (40, 50)
    assert source.normalization().method == "uint8"
    assert ImageSource(rgb, rgb=True, channels=(1,)).plane(()).shape == (40, 50, 1)


def test_contrast_limits_normalisation():
    source = ImageSource(
        np.zeros((5, 40, 50), np.uint16), normalization_mode="contrast", contrast_limits=(10, 300)
    )
    norm = source.normalization()
    assert norm.low == (10.0,) and norm.high == (300.0,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"data": np.zeros((2, 3, 4, 5, 40, 50))}, "up to 4-D"),
        ({"data": np.zeros((3, 40, 50)), "channel_dim": 0, "channels": (5,)}, "do not exist"),
        ({"data": np.zeros((3, 40, 50)), "stack_dim": 1}, "cannot be the stack axis"),
        ({"data": np.zeros((40, 50, 3)), "rgb": True, "channel_dim": 0}, "RGB"),
    ],
)
def test_impossible_axis_choices_say_what_to_do(kwargs, message):
    with pytest.raises(ImageInputError, match=message):
        ImageSource(**kwargs)


# ------------------------------------------------------------------ prompts


def test_prompts_are_grouped_by_plane_and_box():
    source = ImageSource(np.zeros((5, 40, 50)), stack_dim=0)
    points = np.array([[1, 10, 20], [1, 12, 22], [3, 5, 5], [3, 30, 40]])  # (z, row, col)
    positive = np.array([True, False, True, True])
    box = np.array([[3, 2, 2], [3, 2, 10], [3, 8, 10], [3, 8, 2]])  # rows 2-8, cols 2-10 on z=3
    planes = group_prompts(source, points, positive, [box])
    assert set(planes) == {(1,), (3,)}
    one = planes[(1,)]
    np.testing.assert_array_equal(one.points, [[20, 10], [22, 12]])  # (x, y)
    assert list(one.labels) == [1, 0]
    [obj] = one.objects()
    assert obj.box is None and not obj.multimask
    three = planes[(3,)]
    np.testing.assert_array_equal(three.boxes, [[2, 2, 10, 8]])
    [obj] = three.objects()  # the click inside the box goes with it; the one outside is not used
    np.testing.assert_array_equal(obj.points, [[5, 5]])
    assert three.signature() != one.signature()


def test_tagged_prompts_and_masks_make_their_own_objects():
    source = ImageSource(np.zeros((3, 40, 40)), stack_dim=0)
    points = np.array([[0, 5, 5], [0, 6, 6], [0, 30, 30], [0, 12, 12]])
    rect = np.array([[0, 10, 10], [0, 10, 20], [0, 20, 20], [0, 20, 10]])
    planes = group_prompts(source, points, [1, 0, 1, 1], [rect], [4, 4, 0, 0], [0])
    mask = np.zeros((40, 40), bool)
    mask[1:3, 1:3] = True
    prompts = planes[(0,)].with_masks({9: mask})
    tagged_four, tagged_nine, new = prompts.objects()
    assert tagged_four.obj_id == 4 and list(tagged_four.labels) == [1, 0]
    assert tagged_nine.obj_id == 9 and len(tagged_nine.points) == 0 and tagged_nine.mask is mask
    assert new.obj_id is None and new.box is not None and len(new.points) == 1  # (12, 12) inside
    assert prompts.signature() != planes[(0,)].signature()
    two_boxes = group_prompts(source, np.zeros((0, 3)), [], [rect, rect + [0, 5, 5]], None, [4, 4])
    with pytest.raises(PromptProblem, match="Object 4 has 2 boxes"):
        two_boxes[(0,)].objects()
    untagged = group_prompts(source, np.zeros((0, 3)), [], [rect, rect + [0, 5, 5]])[(0,)]
    with pytest.raises(PromptProblem, match="the mask would fit any of them"):
        untagged.with_masks({0: mask}).objects()


def test_new_objects_get_ids_by_the_rules_of_commit_and_propagation():
    one = group_prompts(ImageSource(np.zeros((3, 40, 40)), stack_dim=0), np.array([[0, 5, 5]]), [1], [])
    obj = one[(0,)].objects()[0]
    assert assign_new_ids({(0,): [obj, obj], (2,): [obj]}, 5, across_planes=False) == [
        ((0,), 5, obj), ((0,), 6, obj), ((2,), 7, obj)
    ]
    assert assign_new_ids({(0,): [obj], (2,): [obj]}, 5, across_planes=True) == [
        ((0,), 5, obj), ((2,), 5, obj)
    ]
    assert [i for _, i, _ in assign_new_ids({(1,): [obj, obj]}, 5, across_planes=True)] == [5, 6]
    with pytest.raises(PromptProblem, match="follow one new object"):
        assign_new_ids({(0,): [obj, obj], (2,): [obj]}, 5, across_planes=True)


def test_prompts_outside_the_image_are_refused():
    source = ImageSource(np.zeros((40, 50)))
    planes = group_prompts(source, np.array([[10, 80]]), np.array([True]), [])
    with pytest.raises(PromptProblem, match="outside the 40 x 50 image"):
        check_inside(planes[()], source.plane_shape)


# ------------------------------------------------------------------ embedding cache


def _embedding(nbytes: int) -> ImageEmbedding:
    return ImageEmbedding(torch.zeros(nbytes // 4), [], (10, 10))


def test_embedding_cache_keeps_recent_items_within_its_budget():
    cache = EmbeddingCache(max_bytes=1000)
    for key in "abc":
        cache.put(key, _embedding(400))
    assert "a" not in cache and len(cache) == 2 and cache.nbytes == 800
    cache.get("b")
    cache.put("d", _embedding(400))
    assert "b" in cache and "c" not in cache


# ------------------------------------------------------------------ label writes


def test_commit_fills_background_only_and_is_one_undo_step():
    source = ImageSource(np.zeros((3, 20, 20)), stack_dim=0)
    layer = Labels(np.zeros((3, 20, 20), np.uint32))
    layer.data[1, 5:10, 5:10] = 7  # the user's label
    mask = np.zeros((20, 20), bool)
    mask[0:8, 0:8] = True
    assert commit_masks(layer, source, (1,), [mask], [8]) == [8]
    assert (layer.data[1, 5:10, 5:10] == 7).all() and (layer.data[1] == 8).sum() == 64 - 9
    layer.undo()
    assert layer.data.max() == 7 and (layer.data == 7).sum() == 25
    assert commit_masks(layer, source, (1,), [np.zeros((20, 20), bool)], [8]) == []


def test_staged_writes_become_one_undo_step_and_spare_later_edits():
    source = ImageSource(np.zeros((4, 20, 20)), stack_dim=0)
    layer = Labels(np.zeros((4, 20, 20), np.uint32))
    writes = StagedWrites(layer, source)
    mask = np.zeros((1, 20, 20), bool)
    mask[0, 2:6, 2:6] = True
    for frame in range(3):
        writes.write((frame,), [5], mask)
    layer.data[2, 2, 2] = 9  # edited after it was written: not part of the undo step
    writes.finish()
    assert (layer.data == 5).sum() == 3 * 16 - 1
    layer.undo()
    assert (layer.data == 5).sum() == 0 and layer.data[2, 2, 2] == 9


def test_rewritten_objects_move_and_one_undo_restores_what_was_there():
    source = ImageSource(np.zeros((2, 20, 20)), stack_dim=0)
    layer = Labels(np.zeros((2, 20, 20), np.uint32))
    layer.data[0, 0:4, 0:4] = 3  # committed before; the run re-tracks object 3
    layer.data[0, 15:, 15:] = 8  # someone else's
    before = layer.data.copy()
    writes = StagedWrites(layer, source)
    first = np.zeros((1, 20, 20), bool)
    first[0, 2:6, 2:6] = True
    second = np.zeros((1, 20, 20), bool)
    second[0, 10:14, 10:18] = True
    writes.write((0,), [3], first)
    writes.write((0,), [3], second)  # the same frame again ('both' visits the start twice)
    np.testing.assert_array_equal(layer.data[0] == 3, second[0] & (before[0] != 8))
    assert (layer.data[0] == 8).sum() == 25
    writes.finish()
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)


def test_settings_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv(_settings.CONFIG_ENV, str(tmp_path))
    assert _settings.load() == {}
    _settings.save({"model": "test"})
    _settings.save({"device": "cpu"})
    assert _settings.load() == {"model": "test", "device": "cpu"}
    (tmp_path / _settings.FILENAME).write_text("not json")
    assert _settings.load() == {}
