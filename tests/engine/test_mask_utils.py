"""AMG toolbox: parity with `sam2.utils.amg` and torchvision NMS; label-image ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2.engine import mask_tools as mu
from napari_sam2.modeling.mask_decoder import stability_score

amg = pytest.importorskip("sam2.utils.amg", reason="the reference `sam2` package is not installed")
tv_ops = pytest.importorskip("torchvision.ops")
pytestmark = pytest.mark.oracle


def random_masks(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """Blobby random masks (upsampled noise), with one all-empty and one all-full mask first."""
    noise = torch.randn(int(np.prod(shape[:-2])), 1, 6, 6, generator=gen)
    masks = torch.nn.functional.interpolate(noise, size=shape[-2:], mode="bilinear")[:, 0] > 0.4
    masks[0] = False
    if masks.shape[0] > 1:
        masks[1] = True
    return masks.reshape(shape)


# --------------------------------------------------------------------------------------------
# Grids and crops
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 32, 64])
def test_point_grid_matches_official(n):
    ours = mu.build_point_grid(n)
    np.testing.assert_array_equal(ours, amg.build_point_grid(n))
    assert ours.shape == (n * n, 2) and ours[0, 0] == ours[0, 1] == 1 / (2 * n)
    if n > 1:  # x varies fastest
        assert ours[1, 0] > ours[0, 0] and ours[1, 1] == ours[0, 1]


def test_all_layer_point_grids_match_official():
    for args in [(32, 0, 1), (32, 2, 2), (64, 1, 2), (24, 3, 2)]:
        ours, theirs = mu.build_all_layer_point_grids(*args), amg.build_all_layer_point_grids(*args)
        assert len(ours) == len(theirs) == args[1] + 1
        for o, t in zip(ours, theirs):
            np.testing.assert_array_equal(o, t)
    with pytest.raises(ValueError, match="fewer crop layers"):
        mu.build_all_layer_point_grids(4, 3, 2)


@pytest.mark.parametrize("size", [(512, 512), (600, 1000), (1000, 333), (77, 4096)])
@pytest.mark.parametrize("layers, ratio", [(0, 512 / 1500), (1, 512 / 1500), (2, 0.2), (3, 0.0)])
def test_crop_boxes_match_official(size, layers, ratio):
    ours = mu.generate_crop_boxes(size, layers, ratio)
    assert ours == amg.generate_crop_boxes(size, layers, ratio)
    boxes, idx = ours
    assert boxes[0] == [0, 0, size[1], size[0]]
    assert len(boxes) == 1 + sum(4**i for i in range(1, layers + 1))
    assert idx == sorted(idx)


# --------------------------------------------------------------------------------------------
# Masks, boxes, RLE, stability
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 17, 23), (2, 3, 20, 11), (9, 9)])
def test_masks_to_boxes_matches_official(shape):
    gen = torch.Generator().manual_seed(sum(shape))
    masks = random_masks(gen, *shape) if len(shape) > 2 else torch.zeros(shape, dtype=torch.bool)
    if len(shape) == 2:
        masks[2:5, 7] = True
    ours = mu.masks_to_boxes(masks)
    assert torch.equal(ours, amg.batched_mask_to_box(masks))
    if len(shape) == 2:
        assert ours.tolist() == [7, 2, 7, 4]


def test_masks_to_boxes_ground_truth_and_empty():
    masks = torch.zeros(2, 10, 12, dtype=torch.bool)
    masks[1, 3:6, 4:9] = True
    assert mu.masks_to_boxes(masks).tolist() == [[0, 0, 0, 0], [4, 3, 8, 5]]
    assert mu.masks_to_boxes(torch.zeros(0, 10, 12, dtype=torch.bool)).shape == (0, 4)


def test_rle_round_trip_and_parity():
    gen = torch.Generator().manual_seed(0)
    masks = random_masks(gen, 6, 13, 19)
    masks[2, 0, 0] = True  # first pixel foreground: counts start with a 0 background run
    ours = mu.mask_to_rle_pytorch(masks)
    assert ours == amg.mask_to_rle_pytorch(masks)
    assert ours[1]["counts"] == [0, 13 * 19] and ours[0]["counts"] == [13 * 19]
    for rle, mask in zip(ours, masks.numpy()):
        np.testing.assert_array_equal(mu.rle_to_mask(rle), mask)
        np.testing.assert_array_equal(mu.rle_to_mask(rle), amg.rle_to_mask(rle))
        assert mu.area_from_rle(rle) == amg.area_from_rle(rle) == int(mask.sum())


def test_rle_is_column_major():
    mask = torch.zeros(1, 2, 3, dtype=torch.bool)
    mask[0, 1, 0] = True  # second pixel in column-major order
    assert mu.mask_to_rle_pytorch(mask)[0]["counts"] == [1, 1, 4]
    with pytest.raises(ValueError, match="sum to"):
        mu.rle_to_mask({"size": [2, 3], "counts": [1, 1]})


def test_stability_score_matches_official():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(7, 3, 40, 30, generator=gen) * 4
    for thr, offset in [(0.0, 1.0), (0.5, 0.7), (-1.0, 2.0)]:
        ours = stability_score(logits, thr, offset)
        assert torch.equal(ours, amg.calculate_stability_score(logits, thr, offset))
    x = torch.full((1, 4, 4), -5.0)
    x[0, :2, :2] = 0.5  # > -1 but not > 1
    x[0, 0, 0] = 3.0
    assert stability_score(x, 0.0, 1.0).item() == pytest.approx(1 / 4)
    empty = torch.full((2, 4, 4), -5.0)
    assert stability_score(empty, 0.0, 1.0).tolist() == [1.0, 1.0]  # the decoder's choice
    assert stability_score(empty, 0.0, 1.0, empty=0.0).tolist() == [0.0, 0.0]  # fails AMG filters


def test_uncrop_matches_official():
    gen = torch.Generator().manual_seed(2)
    crop = [30, 12, 80, 52]
    boxes = torch.randint(0, 40, (9, 4), generator=gen)
    boxes3 = boxes.reshape(3, 3, 4)
    points = torch.rand(9, 2, generator=gen) * 40
    assert torch.equal(mu.uncrop_boxes_xyxy(boxes, crop), amg.uncrop_boxes_xyxy(boxes, crop))
    assert torch.equal(mu.uncrop_boxes_xyxy(boxes3, crop), amg.uncrop_boxes_xyxy(boxes3, crop))
    assert torch.equal(mu.uncrop_points(points, crop), amg.uncrop_points(points, crop))
    masks = random_masks(gen, 4, 40, 50)
    ours = mu.uncrop_masks(masks, crop, 70, 100)
    assert ours.shape == (4, 70, 100) and torch.equal(ours, amg.uncrop_masks(masks, crop, 70, 100))
    assert torch.equal(ours[:, 12:52, 30:80], masks) and ours.sum() == masks.sum()
    assert mu.uncrop_masks(masks, [0, 0, 50, 40], 40, 50) is masks


def test_near_crop_edge_matches_official():
    gen = torch.Generator().manual_seed(3)
    crop, orig = [100, 50, 400, 300], [0, 0, 400, 300]
    xy = torch.randint(-5, 300, (200, 2), generator=gen)
    wh = torch.randint(0, 80, (200, 2), generator=gen)
    boxes = torch.cat([xy, xy + wh], dim=1)
    ours = mu.is_box_near_crop_edge(boxes, crop, orig)
    assert torch.equal(ours, amg.is_box_near_crop_edge(boxes, crop, orig))
    assert 0 < ours.sum() < len(ours)
    # crop coordinates; x0 = 100 + 20 is within 20 px of the inner crop edge x = 100,
    # x0 = 100 + 21 is not; the last box touches only edges shared with the image
    edge_cases = torch.tensor([[20, 60, 60, 90], [21, 60, 60, 90], [200, 200, 300, 250]])
    assert mu.is_box_near_crop_edge(edge_cases, crop, orig).tolist() == [True, False, False]


def test_xywh_and_batch_iterator():
    box = torch.tensor([3, 4, 10, 20])
    assert torch.equal(mu.box_xyxy_to_xywh(box), amg.box_xyxy_to_xywh(box))
    assert mu.box_xyxy_to_xywh([3, 4, 10, 20]) == [3, 4, 7, 16]
    two = torch.tensor([[0, 0, 2, 3], [1, 1, 2, 2]])
    assert mu.box_xyxy_to_xywh(two).tolist() == [[0, 0, 2, 3], [1, 1, 1, 1]]
    a, b = list(range(10)), np.arange(10) * 2
    ours = list(mu.batch_iterator(4, a, b))
    theirs = list(amg.batch_iterator(4, a, b))
    assert len(ours) == len(theirs) == 3
    for o, t in zip(ours, theirs):
        assert o[0] == t[0] and np.array_equal(o[1], t[1])
    with pytest.raises(ValueError, match="same length"):
        list(mu.batch_iterator(2, [1, 2], [1]))


# --------------------------------------------------------------------------------------------
# NMS and IoU
# --------------------------------------------------------------------------------------------


def random_boxes(gen: torch.Generator, n: int, span: int = 200, integer: bool = True):
    xy = torch.randint(0, span, (n, 2), generator=gen).float()
    wh = torch.randint(1, span // 3, (n, 2), generator=gen).float()
    if not integer:
        xy = xy + torch.rand(n, 2, generator=gen)
        wh = wh * torch.rand(n, 2, generator=gen) + 0.1
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("n", [0, 1, 60, 999, 1000])
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_batched_nms_equals_torchvision_with_ties(n, thr):
    """Up to 1000 boxes torchvision runs one NMS over offset boxes: the order must match exactly."""
    gen = torch.Generator().manual_seed(n + int(thr * 10))
    boxes = random_boxes(gen, n)
    scores = torch.randint(0, 6, (n,), generator=gen).float() / 5  # many ties
    idxs = torch.randint(0, 3, (n,), generator=gen)
    ours = mu.batched_box_nms(boxes, scores, idxs, thr)
    assert ours.dtype == torch.int64
    assert torch.equal(ours, tv_ops.batched_nms(boxes, scores, idxs, thr))
    zeros = torch.zeros_like(idxs)
    assert torch.equal(mu.batched_box_nms(boxes, scores, torch.zeros(len(boxes), dtype=torch.long), thr), tv_ops.nms(boxes, scores, thr))
    one_category = tv_ops.batched_nms(boxes, scores, zeros, thr)
    assert torch.equal(mu.batched_box_nms(boxes, scores, zeros, thr), one_category)


@pytest.mark.parametrize("integer", [True, False])
def test_batched_nms_many_boxes(integer):
    """Above 1000 boxes torchvision's final sort is unstable: tied kept boxes come in any order."""
    gen = torch.Generator().manual_seed(5)
    n = 3000
    boxes = random_boxes(gen, n, span=400, integer=integer)
    idxs = torch.randint(0, 4, (n,), generator=gen)
    tied = torch.randint(0, 8, (n,), generator=gen).float()
    distinct = torch.randperm(n, generator=gen).float() / n
    for scores in (tied, distinct):
        ours = mu.batched_box_nms(boxes, scores, idxs, 0.4)
        theirs = tv_ops.batched_nms(boxes, scores, idxs, 0.4)
        assert set(ours.tolist()) == set(theirs.tolist()) and len(ours) == len(theirs) < n
        assert torch.equal(scores[ours], scores[theirs])
        # ours: ties in index order (a stable sort leaves the kept order unchanged)
        restable = torch.sort(scores[ours], descending=True, stable=True).indices
        assert torch.equal(restable, torch.arange(len(ours)))
    expected = tv_ops.batched_nms(boxes, distinct, idxs, 0.4)
    assert torch.equal(mu.batched_box_nms(boxes, distinct, idxs, 0.4), expected)
    assert torch.equal(mu.batched_box_nms(boxes, tied, torch.zeros(len(boxes), dtype=torch.long), 0.4), tv_ops.nms(boxes, tied, 0.4))


def test_nms_torch_path_used_on_accelerators_gives_the_same_result(monkeypatch):
    gen = torch.Generator().manual_seed(6)
    boxes = random_boxes(gen, 700, integer=False)
    scores = torch.randint(0, 5, (700,), generator=gen).float()
    idxs = torch.randint(0, 2, (700,), generator=gen)
    expected = tv_ops.batched_nms(boxes, scores, idxs, 0.3)
    monkeypatch.setattr(mu, "_numpy_on", lambda device: False)
    assert torch.equal(mu.batched_box_nms(boxes, scores, idxs, 0.3), expected)


def test_nms_keeps_iou_exactly_at_threshold_and_lower_index_on_ties():
    boxes = torch.tensor([[0.0, 0, 1, 1], [0, 0, 2, 1], [10, 10, 12, 12]])
    scores = torch.tensor([0.9, 0.9, 0.1])
    assert mu.batched_box_nms(boxes, scores, torch.zeros(3, dtype=torch.long), 0.5).tolist() == [0, 1, 2]  # IoU 0.5 is not > 0.5
    assert mu.batched_box_nms(boxes, scores, torch.zeros(3, dtype=torch.long), 0.49).tolist() == [0, 2]  # tie: index 0 visited first
    assert mu.batched_box_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.49).tolist() == [0, 1, 2]


# --------------------------------------------------------------------------------------------
# Records -> label image
# --------------------------------------------------------------------------------------------


def disk(shape, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def record(mask: np.ndarray, iou: float = 0.9) -> dict:
    return {"segmentation": mask, "area": int(mask.sum()), "predicted_iou": iou}


def test_nucleus_inside_cell_stays_visible():
    shape = (64, 64)
    cell, nucleus = disk(shape, (30, 30), 20), disk(shape, (30, 30), 6)
    other = disk(shape, (58, 58), 4)
    labels = mu.records_to_label_image([record(nucleus), record(other), record(cell)], shape, order="area")
    assert labels.dtype == np.uint32 and labels.shape == shape
    assert labels[30, 30] == 2  # nucleus painted on top of the cell
    assert labels[30, 45] == 1  # cell painted first (largest)
    assert labels[58, 58] == 3 and labels[0, 0] == 0  # smallest, painted last
    assert (labels == 2).sum() == nucleus.sum()
    assert (labels == 1).sum() == (cell & ~nucleus & ~other).sum()


def test_equal_areas_put_higher_predicted_iou_on_top():
    shape = (40, 40)
    a = np.zeros(shape, bool)
    a[5:15, 5:15] = True
    b = np.zeros(shape, bool)
    b[10:20, 10:20] = True
    labels = mu.records_to_label_image([record(a, 0.95), record(b, 0.80)], shape, order="area")
    # a (higher IoU) painted last
    assert labels[12, 12] == 2 and labels[6, 6] == 2 and labels[18, 18] == 1
    given = mu.records_to_label_image([record(a, 0.95), record(b, 0.80)], shape, order="given")
    assert given[12, 12] == 2 and given[6, 6] == 1
    records = [record(a, 0.95), record(b, 0.80)]
    by_iou = mu.records_to_label_image(records, shape, order="predicted_iou")
    np.testing.assert_array_equal(by_iou, labels)


def test_hidden_and_empty_masks_are_dropped_and_numbering_stays_consecutive():
    shape = (20, 20)
    left, right = np.zeros(shape, bool), np.zeros(shape, bool)
    left[5:10, 5:8] = True
    right[5:10, 8:11] = True
    both = left | right  # larger, painted first, then fully covered by the two halves
    empty = np.zeros(shape, bool)
    rle = mu.mask_to_rle_pytorch(torch.from_numpy(right)[None])[0]
    as_rle = {"segmentation": rle, "area": 15, "predicted_iou": 0.8}
    records = [record(both), record(left, 0.7), as_rle, record(empty)]
    labels = mu.records_to_label_image(records, shape, order="area")
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2]
    assert np.array_equal(labels == 1, left) and np.array_equal(labels == 2, right)


def test_quality_order_keeps_one_label_per_object():
    """Duplicates, fragments and merges of an object already placed are dropped, not left as
    slivers; a lower-quality mask that mostly covers free pixels keeps them."""
    shape = (64, 64)
    a, b = disk(shape, (20, 20), 8), disk(shape, (20, 44), 8)
    shifted_a = disk(shape, (21, 21), 8)  # duplicate of a
    half_b = b.copy()
    half_b[:, 44:] = False  # fragment of b
    merge = a | b | disk(shape, (20, 32), 5)  # both and the gap between
    c = disk(shape, (50, 30), 7)
    c_overlapping = c | disk(shape, (42, 30), 3)  # mostly free, overlaps c's owner only a little
    records = [record(merge, 0.80), record(half_b, 0.85), record(shifted_a, 0.88), record(a, 0.95),
               record(b, 0.93), record(c, 0.70), record(c_overlapping, 0.90)]
    labels = mu.records_to_label_image(records, shape)
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2, 3]
    assert np.array_equal(labels == 1, a) and np.array_equal(labels == 2, b)
    assert np.array_equal(labels == 3, c_overlapping)  # c itself keeps < half its pixels
    # min_kept=0: every mask keeps whatever is still free (shifted_a's rim, merge's gap), numbered
    # consecutively; fully covered masks (half_b, c) are dropped
    loose = mu.records_to_label_image(records, shape, min_kept=0.0)
    assert sorted(np.unique(loose).tolist()) == [0, 1, 2, 3, 4, 5]
    assert np.array_equal(loose == 4, shifted_a & ~a)


def test_label_image_errors():
    with pytest.raises(ValueError, match="not the label shape"):
        mu.records_to_label_image([record(np.ones((5, 5), bool))], (6, 5))
    with pytest.raises(ValueError, match="order="):
        mu.records_to_label_image([], (5, 5), order="size")
    assert not mu.records_to_label_image([], (5, 5)).any()
