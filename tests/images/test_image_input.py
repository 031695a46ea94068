"""Image input: intensity normalisation, channel layouts, model tensor, errors and coordinates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2.images.checks import ImageInputError
from napari_sam2.images.coordinates import (
    napari_box_to_xyxy,
    napari_to_xy,
    scale_boxes,
    scale_points,
    xy_to_napari,
)
from napari_sam2.images.model_input import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    prepare_image,
    to_model_input,
)
from napari_sam2.images.normalization import Normalization, auto_normalization


def disk_image(h=96, w=128, bg: float = 1000, levels=(3000, 5000), dtype=np.uint16) -> np.ndarray:
    """Background `bg` with two square objects at the given intensities (each > 0.2 % of pixels)."""
    img = np.full((h, w), bg, dtype=dtype)
    img[10:30, 10:30] = levels[0]
    img[50:70, 80:100] = levels[1]
    return img


# --------------------------------------------------------------------------------------------
# Intensities
# --------------------------------------------------------------------------------------------


def test_auto_maps_background_to_0_and_the_typical_object_to_half():
    img = disk_image(levels=(3000, 3000))
    out = prepare_image(img)
    assert out[0, 0, 0] == 0.0 and out[20, 20, 0] == pytest.approx(0.5, abs=1e-7)
    assert out[60, 90, 0] == pytest.approx(0.5, abs=1e-7)


def test_uint16_percentiles_map_known_objects():
    # bg 1000 (> 1 % of pixels), brightest 5000 (> 0.2 %): p1 = 1000, p99.8 = 5000
    img = disk_image()
    out = prepare_image(img, Normalization.from_percentiles(img))
    assert out.shape == (96, 128, 3) and out.dtype == np.float32
    assert np.all(out[..., 0] == out[..., 1]) and np.all(out[..., 1] == out[..., 2])  # gray
    assert out[0, 0, 0] == 0.0
    assert out[20, 20, 0] == pytest.approx(0.5, abs=1e-7)
    assert out[60, 90, 0] == pytest.approx(1.0, abs=1e-7)


def test_12_bit_data_is_stretched_not_divided_by_65535():
    img = disk_image(bg=0, levels=(4095, 4095))
    out = prepare_image(img)
    assert out[60, 90, 0] == pytest.approx(0.5, abs=1e-6)  # a naive /65535 would give 0.06


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.int8])
def test_other_dtypes_map_the_same_way(dtype):
    img = disk_image(bg=-20, levels=(10, 10), dtype=dtype)
    out = prepare_image(img)
    assert out[0, 0, 0] == 0.0
    assert out[20, 20, 0] == pytest.approx(0.5, abs=1e-3)
    assert out[60, 90, 0] == pytest.approx(0.5, abs=1e-3)


def test_float_image_with_fractional_values():
    img = disk_image(bg=-0.5, levels=(0.25, 1.0), dtype=np.float32)
    out = prepare_image(img, normalization=Normalization.from_limits(-0.5, 1.0))
    assert out[20, 20, 0] == pytest.approx(0.5, abs=1e-6)
    assert out[0, 0, 0] == 0.0 and out[60, 90, 0] == 1.0


def test_bool_image_is_zero_one():
    mask = disk_image(bg=0, levels=(1, 1), dtype=np.uint8).astype(bool)
    out = prepare_image(mask)
    np.testing.assert_array_equal(out[..., 0], mask.astype(np.float32))


def test_constant_image_maps_to_zero_without_dividing_by_zero():
    with np.errstate(all="raise"):
        out = prepare_image(np.full((40, 50), 777, dtype=np.uint16))
    assert out.shape == (40, 50, 3) and not out.any()


def test_sparse_bright_spots_survive_when_percentiles_coincide():
    img = np.zeros((200, 200), dtype=np.uint16)
    img[5, 5] = img[100, 150] = 900  # 2 of 40000 pixels: p1 == p99.8 == 0
    out = prepare_image(img)
    assert out[5, 5, 0] == 1.0 and out[100, 150, 0] == 1.0 and out[0, 0, 0] == 0.0


@pytest.mark.parametrize("size, sparse", [(1024, True), (256, False)])
def test_few_nuclei_in_a_large_field_do_not_saturate(size, sparse):
    """10 nuclei in 1024 x 1024 cover 0.16 % of it: p99.8 alone falls in the background, every
    nucleus pixel saturates and the blur halo turns bright. The objects' own level does not."""
    from scipy import ndimage as ndi

    from napari_sam2.synthetic import nuclei_image

    image, labels = nuclei_image((size, size), 10 if sparse else 12, seed=11, radius=(6, 9))
    nuclei = labels > 0
    ring = ndi.binary_dilation(nuclei, iterations=3) & ~nuclei
    norm = Normalization.from_percentiles(image, object_level=True)
    plain = Normalization.from_percentiles(image)
    out = prepare_image(image, norm)[..., 0]
    assert (out[nuclei] >= 1.0).mean() < 0.25
    assert out[ring].mean() < 0.2
    assert norm.low == plain.low
    if sparse:
        before = prepare_image(image, plain)[..., 0]
        assert (before[nuclei] >= 1.0).mean() > 0.9 and before[ring].mean() > 0.5
        assert norm.high[0] > 3 * plain.high[0]


def test_out_of_focus_glow_does_not_saturate_the_nuclei_of_a_stack():
    """A z-stack whose nuclei shine through neighbouring slices as a wide dim glow (four times
    their volume): the glow counts as object and pulls the objects' median down, so the limit
    is at least the objects' 90th percentile and most nucleus pixels stay below it."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_multiotsu

    zz, yy, xx = np.mgrid[:24, :128, :128]
    nuclei = np.zeros((24, 128, 128), bool)
    for cz, cy, cx in [(6, 30, 30), (8, 30, 90), (12, 70, 60), (15, 100, 25), (17, 100, 100), (10, 60, 110)]:
        nuclei |= ((zz - cz) / 0.5) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 < 12**2
    glow = ndi.gaussian_filter(nuclei.astype(float), (4, 8, 8))
    stack = 100 + 2500 * glow + 600 * nuclei + np.random.default_rng(0).normal(0, 5, nuclei.shape)
    norm = auto_normalization(stack)
    out = (stack - norm.low[0]) / (norm.high[0] - norm.low[0])
    objects = stack[stack > threshold_multiotsu(stack, classes=3)[0]]
    median_limit = norm.low[0] + 2 * (np.median(objects) - norm.low[0])  # the median at 0.5 alone
    saturated, before = (out[nuclei] >= 1).mean(), (stack[nuclei] >= median_limit).mean()
    assert saturated < 0.5 < before, (saturated, before)  # measured 0.40 and 0.76


def test_a_few_saturated_nuclei_do_not_dim_the_others():
    """Three mitotic nuclei 5x brighter than 30 others: p99.8 lands on them and the others go
    dim; the objects' own level keeps them twice as bright (its 90th-percentile bound, which
    here falls on the mitotic nuclei, takes them from 0.45 to 0.35)."""
    from napari_sam2.synthetic import nuclei_image

    image, labels = nuclei_image((256, 256), 33, seed=3, radius=(6, 8))
    image = image.astype(np.float32)
    bright = np.isin(labels, [1, 2, 3])
    image[bright] *= 5
    others = (labels > 3)
    plain = prepare_image(image, Normalization.from_percentiles(image))[..., 0]
    ours = prepare_image(image)[..., 0]
    assert np.median(plain[others]) < 0.2 and np.median(ours[others]) > 0.3  # measured 0.17, 0.35
    assert (ours[others] >= 1.0).mean() < 0.1


def test_contrast_limits_clip_and_scale():
    img = disk_image()
    out = prepare_image(img, normalization=Normalization.from_limits(2000, 4000))
    assert out[0, 0, 0] == 0.0  # 1000 below the low limit
    assert out[20, 20, 0] == pytest.approx(0.5, abs=1e-7)
    assert out[60, 90, 0] == 1.0  # 5000 above the high limit


def test_per_channel_limits_on_rgb_uint16():
    rgb = np.zeros((40, 40, 3), dtype=np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 300
    norm = Normalization.from_limits([0, 0, 0], [200, 400, 1200])
    out = prepare_image(rgb, normalization=norm)
    np.testing.assert_allclose(out[0, 0], [0.5, 0.5, 0.25], atol=1e-7)


def test_equal_limits_are_a_step():
    img = disk_image()
    out = prepare_image(img, normalization=Normalization.from_limits(3000, 3000))
    assert out[0, 0, 0] == 0.0 and out[20, 20, 0] == 0.0 and out[60, 90, 0] == 1.0


# --------------------------------------------------------------------------------------------
# Stacks: one Normalization for every slice
# --------------------------------------------------------------------------------------------


def make_stack(n: int = 6) -> np.ndarray:
    """One object at 3000 on every slice; a hot cluster of growing brightness changes each range."""
    stack = np.stack([disk_image(levels=(3000, 3000)) for _ in range(n)])
    for z in range(n):
        stack[z, 80:85, 5:10] = 4000 + 2000 * z  # 25 px = 0.2 % of a slice: moves its own p99.8
    return stack


def test_shared_normalization_gives_the_same_object_value_on_every_slice():
    stack = make_stack()
    norm = Normalization.from_percentiles(stack)
    shared = [prepare_image(s, normalization=norm)[20, 20, 0] for s in stack]
    own = [prepare_image(s, Normalization.from_percentiles(s))[20, 20, 0] for s in stack]
    assert len(set(shared)) == 1 and 0.0 < shared[0] < 1.0
    assert len(set(np.round(own, 4))) == len(stack)  # per-slice percentiles flicker
    objects = [prepare_image(s)[20, 20, 0] for s in stack]  # the objects' level ignores the hot spot
    assert np.allclose(objects, 0.5, atol=1e-6)


def test_stack_percentiles_are_computed_over_all_frames():
    stack = make_stack(3)
    norm = Normalization.from_percentiles(stack, low=0.0, high=100.0)
    assert norm.low == (1000.0,) and norm.high == (4000.0 + 2000 * 2,)
    assert norm.method == "percentiles" and "3 of 3 frame" in norm.detail


class LazyStack:
    """A zarr-like array: only indexing gives numpy data; records every key asked for."""

    def __init__(self, array: np.ndarray):
        self._array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.keys: list[tuple] = []

    def __getitem__(self, key):
        self.keys.append(key)
        return self._array[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was converted")


def test_large_stack_is_sampled_lazily_and_deterministically():
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 60000, size=(200, 256, 256), dtype=np.uint16)
    lazy = LazyStack(stack)
    norm = Normalization.from_percentiles(lazy, max_samples=100_000)
    frames = [k[0] for k in lazy.keys]
    assert len(frames) == 16 and frames[0] == 0 and frames[-1] == 199
    assert all(isinstance(k[1], slice) and k[1].step == 4 for k in lazy.keys)
    # 16 frames * 64 * 64 = 65536 <= 100000
    assert norm.detail.startswith("p1.0-p99.8 of 65536 pixels from 16 of 200")
    assert norm == Normalization.from_percentiles(LazyStack(stack), max_samples=100_000)
    full_low, full_high = np.percentile(stack, [1.0, 99.8])
    assert norm.low[0] == pytest.approx(full_low, rel=0.05)
    assert norm.high[0] == pytest.approx(full_high, rel=0.01)


def test_dask_stack_with_channel_axis_matches_numpy():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 1000, size=(4, 3, 48, 40), dtype=np.uint16)  # (Z, C, Y, X)
    stack[:, 1] += 5000
    from_np = Normalization.from_percentiles(stack, channel_axis=1)
    lazy = da.from_array(stack, chunks=(1, 3, 48, 40))
    from_dask = Normalization.from_percentiles(lazy, channel_axis=1)
    assert from_np == from_dask and from_np.n_channels == 3
    assert from_np.low[1] > 5000 > from_np.high[0]


# --------------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------------


def multichannel(h: int = 40, w: int = 48, c: int = 5) -> np.ndarray:
    """Channel i is constant 100*(i+1) except a square at 100*(i+1) + 50."""
    img = np.empty((h, w, c), dtype=np.uint16)
    for i in range(c):
        img[..., i] = 100 * (i + 1)
        img[5:15, 5:15, i] += 50
    return img


def test_channel_selection_maps_to_rgb():
    img = multichannel()
    limits = Normalization.from_limits(0, 1000)
    gray = prepare_image(img, normalization=limits, channels=(3,))
    np.testing.assert_allclose(gray[0, 0], [0.4, 0.4, 0.4], atol=1e-7)
    two = prepare_image(img, normalization=limits, channels=(4, 1))
    np.testing.assert_allclose(two[0, 0], [0.5, 0.2, 0.0], atol=1e-7)
    three = prepare_image(img, normalization=limits, channels=[2, 0, 1])
    np.testing.assert_allclose(three[10, 10], [0.35, 0.15, 0.25], atol=1e-7)
    single_int = prepare_image(img, normalization=limits, channels=3)
    np.testing.assert_array_equal(single_int, gray)


def test_channel_selection_with_auto_stretches_each_channel():
    out = prepare_image(multichannel(), channels=(0, 4))
    assert out[0, 0, 0] == 0.0 and out[10, 10, 0] == pytest.approx(0.5)
    assert out[0, 0, 1] == 0.0 and out[10, 10, 1] == pytest.approx(0.5)
    assert not out[..., 2].any()


def test_rgba_drops_alpha_and_uint8_rgb_is_divided_by_255():
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 256, size=(40, 36, 4), dtype=np.uint8)
    out = prepare_image(rgba)
    np.testing.assert_array_equal(out, rgba[..., :3].astype(np.float32) / 255)
    other_alpha = rgba.copy()
    other_alpha[..., 3] = 7
    np.testing.assert_array_equal(prepare_image(other_alpha), out)


def test_two_channel_image_without_choice_is_red_green():
    img = np.zeros((40, 40, 2), dtype=np.float32)
    img[..., 1] = 1.0
    img[:20, :, 0] = 1.0
    out = prepare_image(img, normalization=Normalization.from_limits(0, 1))
    np.testing.assert_array_equal(out[0, 0], [1, 1, 0])
    np.testing.assert_array_equal(out[30, 0], [0, 1, 0])


def test_channel_axis_moves_channels_last():
    img = multichannel()
    chw = np.ascontiguousarray(np.moveaxis(img, -1, 0))
    expected = prepare_image(img, channels=(1, 2, 3))
    np.testing.assert_array_equal(prepare_image(chw, channels=(1, 2, 3), channel_axis=0), expected)
    np.testing.assert_array_equal(prepare_image(chw, channels=(1, 2, 3), channel_axis=-3), expected)


def test_shared_normalization_with_channels():
    img = multichannel()
    norm = Normalization.from_percentiles(img, channels=(4, 0), low=0, high=100)
    assert norm.low == (500.0, 100.0) and norm.high == (550.0, 150.0)
    out = prepare_image(img, normalization=norm, channels=(4, 0))
    assert out[10, 10, 0] == 1.0 and out[0, 0, 1] == 0.0


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image, kwargs, message",
    [
        (np.zeros((0, 40)), {}, "empty"),
        (np.zeros((20, 500)), {}, "20x500 pixels; SAM 2 needs at least 32x32"),
        (np.zeros((1, 1)), {}, "at least 32x32"),
        (np.zeros(100), {}, "2-D (H, W)"),
        (np.zeros((10, 64, 64)), {}, "is a stack"),
        (np.zeros((2, 3, 64, 64)), {}, "is a stack"),
        (np.zeros((64, 64), dtype=np.complex64), {}, "complex"),
        (np.array([["a"] * 40] * 40), {}, "not numeric"),
        (np.zeros((64, 64, 6)), {}, "has 6 channels; choose up to three with channels="),
        (np.zeros((64, 64)), {"channels": (0,)}, "no channel axis"),
        (np.zeros((64, 64)), {"channel_axis": 0}, "drop channel_axis"),
        (np.zeros((64, 64, 3)), {"channel_axis": 5}, "out of range"),
        (np.zeros((64, 64, 5)), {"channels": (1, 7)}, "asks for channel 7 but the image has 5"),
        (np.zeros((64, 64, 5)), {"channels": (0, 1, 2, 3)}, "give 1, 2 or 3"),
        (np.zeros((64, 64, 3), np.uint16), {"normalization": None}, "8-bit RGB"),
        (np.zeros((64, 64), np.uint8), {"normalization": None}, "8-bit RGB"),
        (np.zeros((64, 64), np.uint16), {"normalization": Normalization.identity_uint8()},
         "for uint8"),
        (np.zeros((64, 64), np.uint16), {"normalization": "minmax"}, "not understood"),
        (np.zeros((64, 64), np.uint16),
         {"normalization": Normalization.from_limits([0, 0, 0], [1, 2, 3])},
         "limits for 3 channels but the image has 1"),
    ],
)
def test_bad_inputs_raise_clear_errors(image, kwargs, message):
    with pytest.raises(ImageInputError, match=None) as info:
        prepare_image(image, **kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_nan_and_inf_are_counted():
    img = np.ones((64, 64), dtype=np.float32)
    img[1, 2] = img[3, 4] = img[5, 6] = np.nan
    with pytest.raises(ImageInputError, match=r"NaN at 3 pixels; .*np.nan_to_num"):
        prepare_image(img)
    img = np.ones((64, 64, 3), dtype=np.float32)
    img[7, 7, :] = np.inf
    with pytest.raises(ImageInputError, match=r"infinite values at 1 pixels"):
        prepare_image(img)
    with pytest.raises(ImageInputError, match="NaN"):
        Normalization.from_percentiles(np.full((40, 40), np.nan))


def test_bad_normalizations_raise():
    with pytest.raises(ImageInputError, match="swap them"):
        Normalization.from_limits(10, 5)
    with pytest.raises(ImageInputError, match="same number"):
        Normalization.from_limits([0, 0], [1, 1, 1])
    with pytest.raises(ImageInputError, match="0 <= low < high <= 100"):
        Normalization.from_percentiles(np.zeros((40, 40)), low=50, high=10)
    with pytest.raises(ImageInputError, match="finite"):
        Normalization.from_limits(0, np.inf)


# --------------------------------------------------------------------------------------------
# Model tensor
# --------------------------------------------------------------------------------------------


def test_model_input_shape_and_normalisation():
    rgb = np.zeros((50, 80, 3), dtype=np.float32)
    rgb[..., 1] = 1.0
    x = to_model_input(rgb, 64, dtype=torch.float64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float64
    expected = [(0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], (1 - IMAGENET_MEAN[1]) / IMAGENET_STD[1]]
    assert torch.allclose(x[0, 0], torch.tensor(expected[0], dtype=torch.float64))
    assert torch.allclose(x[0, 1], torch.tensor(expected[1], dtype=torch.float64))


def test_model_input_resizes_without_keeping_aspect_ratio():
    rgb = np.zeros((40, 160, 3), dtype=np.float32)
    rgb[:, :80] = 1.0  # left half bright
    x = to_model_input(rgb, 32)[0, 0]
    bright = (1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert torch.allclose(x[:, :15], torch.tensor(bright)) and torch.allclose(x[:, 17:], x[0, -1])


@pytest.mark.oracle
@pytest.mark.parametrize(
    "hw, size", [((300, 457), 256), ((700, 1500), 512), ((128, 128), 128), ((40, 33), 96)]
)
def test_uint8_rgb_is_bit_identical_to_the_official_transform(hw, size):
    transforms = pytest.importorskip("sam2.utils.transforms")
    rng = np.random.default_rng(sum(hw))
    img = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    official = transforms.SAM2Transforms(resolution=size, mask_threshold=0.0)(img)[None]
    ours = to_model_input(prepare_image(img, normalization=None), size)
    auto = to_model_input(prepare_image(img), size)
    assert ours.dtype == official.dtype and torch.equal(ours, official)
    assert torch.equal(auto, official)


# --------------------------------------------------------------------------------------------
# Coordinates
# --------------------------------------------------------------------------------------------


def test_napari_row_col_becomes_x_y():
    np.testing.assert_array_equal(napari_to_xy([[10, 20], [3.5, 7.25]]), [[20, 10], [7.25, 3.5]])
    np.testing.assert_array_equal(napari_to_xy([4, 10, 20]), [20, 10])  # (z, row, col): z dropped
    np.testing.assert_array_equal(xy_to_napari([[20, 10]]), [[10, 20]])


def test_known_point_addresses_the_same_pixel():
    img = np.zeros((60, 90))
    img[5, 40] = 1.0  # napari shows this pixel at (row 5, col 40)
    x, y = napari_to_xy(np.array([5, 40])).astype(int)
    assert (x, y) == (40, 5) and img[y, x] == 1.0


def test_coordinate_round_trips():
    rng = np.random.default_rng(3)
    rc = rng.uniform(0, 500, size=(7, 2))
    np.testing.assert_array_equal(xy_to_napari(napari_to_xy(rc)), rc)
    xy = rng.uniform(0, 500, size=(2, 5, 2))
    np.testing.assert_array_equal(napari_to_xy(xy_to_napari(xy)), xy)


def test_napari_rectangle_to_box():
    corners = np.array([[3, 10, 20], [3, 10, 50], [3, 40, 50], [3, 40, 20]])  # (z, row, col)
    np.testing.assert_array_equal(napari_box_to_xyxy(corners), [20, 10, 50, 40])


def test_scale_points_and_boxes_to_model_pixels():
    pts = np.array([[0.0, 0.0], [200.0, 100.0], [100.0, 50.0]])
    out = scale_points(pts, image_hw=(100, 200), image_size=1024)
    np.testing.assert_array_equal(out, [[0, 0], [1024, 1024], [512, 512]])
    assert out.dtype == np.float32
    boxes = torch.tensor([[50.0, 25.0, 150.0, 75.0]])
    out_boxes = scale_boxes(boxes, image_hw=(100, 200), image_size=1024)
    assert isinstance(out_boxes, torch.Tensor)
    assert torch.equal(out_boxes, torch.tensor([[256.0, 256.0, 768.0, 768.0]]))
    with pytest.raises(ImageInputError, match=r"\(x, y\)"):
        scale_points(np.zeros((3, 3)), (10, 10), 64)


@pytest.mark.oracle
def test_scaling_matches_the_official_coordinate_transform():
    transforms = pytest.importorskip("sam2.utils.transforms")
    official = transforms.SAM2Transforms(resolution=1024, mask_threshold=0.0)
    rng = np.random.default_rng(4)
    pts = torch.tensor(rng.uniform(0, 777, size=(9, 2)), dtype=torch.float32)
    boxes = torch.tensor(rng.uniform(0, 333, size=(4, 4)), dtype=torch.float32)
    hw = (333, 777)
    expected = official.transform_coords(pts, normalize=True, orig_hw=hw)
    assert torch.equal(scale_points(pts, hw, 1024), expected)
    assert torch.equal(
        scale_boxes(boxes, hw, 1024).reshape(-1, 2, 2),
        official.transform_boxes(boxes, normalize=True, orig_hw=hw),
    )
