"""Hole filling and sprinkle removal: crafted masks with known components, and the official rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_sam2.engine.postprocess import fill_holes_and_remove_sprinkles

FG, BG = 5.0, -5.0


def square_with_hole() -> torch.Tensor:
    """(1, 1, 20, 20): a 10x10 object with a 2x2 hole, and a 1-pixel sprinkle far away."""
    x = torch.full((1, 1, 20, 20), BG)
    x[..., 2:12, 2:12] = FG
    x[..., 6:8, 6:8] = BG  # hole, area 4
    x[..., 16, 16] = FG  # sprinkle, area 1
    return x


def test_fills_hole_and_removes_sprinkle_leaving_the_rest():
    x = square_with_hole()
    out = fill_holes_and_remove_sprinkles(x, max_hole_area=4, max_sprinkle_area=1)
    expected = x.clone()
    expected[..., 6:8, 6:8] = 10.0
    expected[..., 16, 16] = -10.0
    assert torch.equal(out, expected)


def test_area_exactly_at_the_limit_counts():
    x = square_with_hole()
    assert torch.all(fill_holes_and_remove_sprinkles(x, 4, 0)[..., 6:8, 6:8] == 10.0)
    assert torch.equal(fill_holes_and_remove_sprinkles(x, 3.99, 0), x)
    assert fill_holes_and_remove_sprinkles(x, 0, 1)[..., 16, 16] == -10.0
    assert torch.equal(fill_holes_and_remove_sprinkles(x, 0, 0.5), x)


def test_border_touching_background_counts_as_a_hole():
    x = torch.full((1, 1, 16, 16), FG)
    x[..., 0, 5:8] = BG  # 3 background pixels on the top edge
    x[..., 15, 15] = BG  # 1 in a corner
    out = fill_holes_and_remove_sprinkles(x, max_hole_area=3, max_sprinkle_area=0)
    assert torch.all(out > 0)
    assert out[0, 0, 0, 5] == 10.0 and out[0, 0, 15, 15] == 10.0 and out[0, 0, 8, 8] == FG


def test_whole_background_is_a_hole_when_small_enough():
    x = torch.full((1, 1, 8, 8), FG)
    x[..., :, :2] = BG  # background = 16 px, touching three borders
    assert torch.all(fill_holes_and_remove_sprinkles(x, 16, 0) > 0)
    assert torch.equal(fill_holes_and_remove_sprinkles(x, 15, 0), x)


def test_diagonal_pixels_are_connected_8_way():
    x = torch.full((1, 1, 12, 12), FG)
    x[..., 4, 4] = BG
    x[..., 5, 5] = BG  # touches (4, 4) only diagonally: one hole of area 2 with 8-connectivity
    # 4-connectivity would see two holes of area 1 and fill both
    assert torch.equal(fill_holes_and_remove_sprinkles(x, 1, 0), x)
    assert torch.all(fill_holes_and_remove_sprinkles(x, 2, 0) > 0)

    y = torch.full((1, 1, 12, 12), BG)
    y[..., 4, 4] = FG
    y[..., 5, 5] = FG
    assert torch.equal(fill_holes_and_remove_sprinkles(y, 0, 1), y)
    assert torch.all(fill_holes_and_remove_sprinkles(y, 0, 2) < 0)


def test_sprinkles_are_found_on_the_input_not_the_hole_filled_logits():
    """Ring (area 8) around a 1-px hole: both small, so the ring goes and the hole stays filled."""
    x = torch.full((1, 1, 10, 10), BG)
    x[..., 3:6, 3:6] = FG
    x[..., 4, 4] = BG
    out = fill_holes_and_remove_sprinkles(x, max_hole_area=1, max_sprinkle_area=8)
    assert out[0, 0, 4, 4] == 10.0
    ring = torch.zeros(10, 10, dtype=torch.bool)
    ring[3:6, 3:6] = True
    ring[4, 4] = False
    assert torch.all(out[0, 0][ring] == -10.0)
    # had sprinkles been found after filling, the filled 9-px square would have survived
    sequential = fill_holes_and_remove_sprinkles(fill_holes_and_remove_sprinkles(x, 1, 0), 0, 8)
    assert torch.all(sequential[0, 0, 3:6, 3:6] > 0) and not torch.equal(sequential, out)


def test_batch_images_are_independent():
    x = torch.full((2, 1, 10, 10), BG)
    x[0, 0, 9, 2:5] = FG  # 3 px on the last row of image 0
    x[1, 0, 0, 2:5] = FG  # 3 px on the first row of image 1: would make 6 if images were joined
    out = fill_holes_and_remove_sprinkles(x, 0, 4)
    assert torch.all(out < 0)
    out_nhw = fill_holes_and_remove_sprinkles(x[:, 0], 0, 4)
    assert out_nhw.shape == (2, 10, 10) and torch.equal(out_nhw, out[:, 0])


def test_threshold_and_dtype_are_respected():
    x = square_with_hole().to(torch.float16) * 0.1 + 0.5  # object 1.0, background 0.0
    out = fill_holes_and_remove_sprinkles(x, 4, 1, threshold=0.5)
    assert out.dtype == torch.float16 and out.device == x.device
    assert torch.all(out[..., 6:8, 6:8] == 10.5) and out[0, 0, 16, 16] == -9.5


def test_custom_fill_values():
    x = square_with_hole()
    out = fill_holes_and_remove_sprinkles(x, 4, 1, hole_value=0.1, sprinkle_value=-0.1)
    assert torch.allclose(out[..., 6:8, 6:8], torch.tensor(0.1))
    assert torch.isclose(out[0, 0, 16, 16], torch.tensor(-0.1))


def test_no_op_when_both_areas_are_zero():
    x = square_with_hole()
    assert fill_holes_and_remove_sprinkles(x, 0, 0) is x
    assert fill_holes_and_remove_sprinkles(x, -1, 0.0) is x


def _scipy_connected_components(mask: torch.Tensor):
    """Stand-in for the official CUDA kernel: (N, 1, H, W) -> (labels, areas), 8-connected."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    areas = np.zeros(mask.shape, dtype=np.int32)
    for i, plane in enumerate(mask[:, 0].cpu().numpy().astype(bool)):
        lab, _ = ndimage.label(plane, structure=np.ones((3, 3)))
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        labels[i, 0] = lab
        areas[i, 0] = sizes[lab]
    return torch.from_numpy(labels), torch.from_numpy(areas)


@pytest.mark.oracle
@pytest.mark.parametrize(
    "hole, sprinkle, thr", [(30, 0, 0.0), (0, 25, 0.0), (40, 40, 0.0), (15, 60, 0.3)]
)
def test_matches_official_postprocess_with_a_cpu_component_kernel(monkeypatch, hole, sprinkle, thr):
    transforms = pytest.importorskip("sam2.utils.transforms")
    misc = pytest.importorskip("sam2.utils.misc")
    monkeypatch.setattr(misc, "get_connected_components", _scipy_connected_components)
    gen = torch.Generator().manual_seed(hole + sprinkle)
    noise = torch.randn(3, 2, 16, 16, generator=gen)
    logits = torch.nn.functional.interpolate(noise, size=(64, 64), mode="bilinear") * 3
    official = transforms.SAM2Transforms(
        64, mask_threshold=thr, max_hole_area=hole, max_sprinkle_area=sprinkle
    )
    with torch.no_grad():
        expected = official.postprocess_masks(logits, (64, 64))
    ours = fill_holes_and_remove_sprinkles(logits, hole, sprinkle, threshold=thr)
    assert not torch.equal(ours, logits)  # the case exercises the rule
    assert torch.equal(ours, expected)
