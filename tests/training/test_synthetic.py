"""Synthetic microscopy: determinism, ground truth, dtypes, lineage, z-profiles and speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage.measure import label as connected_components
from skimage.measure import regionprops
from skimage.morphology import dilation, disk

from napari_sam2.synthetic import (
    STYLES,
    Acquisition,
    Motion,
    cells_image,
    nuclei_image,
    sample,
    sample_batch,
    timelapse,
    training_samples,
    zstack,
)

QUICK = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def movie():
    return timelapse(30, (256, 256), 20, seed=3, dtype=np.float32)


@pytest.fixture(scope="module")
def cell_movie():
    return timelapse(20, (192, 192), 12, seed=5, dtype=np.float32, style="cells")


@pytest.fixture(scope="module")
def stack():
    return zstack(32, (192, 192), 10, seed=2, dtype=np.float32)


# ---------------------------------------------------------------- helpers


def contrast(
    image: np.ndarray, labels: np.ndarray, inner: int = 3, outer: int = 8
) -> list[tuple[float, float]]:
    """(mean inside, mean of the background ring around) per object with background around it."""
    out = []
    for region in regionprops(labels):
        if region.area < 20:  # slivers at the image border are dominated by blur
            continue
        y0, x0, y1, x1 = region.bbox
        sl = (slice(max(y0 - outer, 0), y1 + outer), slice(max(x0 - outer, 0), x1 + outer))
        obj = labels[sl] == region.label
        ring = dilation(obj, disk(outer)) & ~dilation(obj, disk(inner)) & (labels[sl] == 0)
        if ring.sum() >= 30:
            out.append((float(image[sl][obj].mean()), float(image[sl][ring].mean())))
    return out


def assert_visible(image: np.ndarray, labels: np.ndarray, ratio: float = 1.5) -> None:
    """Every object with background around it is clearly brighter than that background."""
    pairs = contrast(image.astype(np.float64), labels)
    assert pairs, "no object had background around it"
    for inside, ring in pairs:
        assert inside > ratio * ring, (inside, ring)


def assert_instances(labels: np.ndarray, consecutive: bool = True) -> None:
    """uint32, each id one 4-connected piece, ids 1..n if consecutive."""
    assert labels.dtype == np.uint32
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if consecutive:
        assert np.array_equal(ids, np.arange(1, len(ids) + 1))
    pieces = connected_components(labels, background=0, connectivity=1)
    assert pieces.max() == len(ids)


def centroids(labels: np.ndarray) -> dict[int, np.ndarray]:
    return {r.label: np.array(r.centroid) for r in regionprops(labels)}


def touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


# ---------------------------------------------------------------- determinism


GENERATORS = {
    "nuclei": lambda seed: nuclei_image((128, 128), 10, seed),
    "clumps": lambda seed: nuclei_image((128, 128), 20, seed, touching=True),
    "cells": lambda seed: cells_image((128, 128), 12, seed),
    "timelapse": lambda seed: timelapse(4, (96, 96), 6, seed)[:2],
    "cell_timelapse": lambda seed: timelapse(4, (96, 96), 6, seed, style="cells")[:2],
    "zstack": lambda seed: zstack(8, (96, 96), 5, seed),
    "batch": lambda seed: sample_batch(np.random.default_rng(seed), 3, (64, 64)),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_arrays_other_seed_different(name):
    make = GENERATORS[name]
    first, again, other = make(1), make(1), make(2)
    for a, b in zip(first, again, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[1], other[1])


def test_tracks_are_deterministic():
    assert timelapse(6, (96, 96), 8, seed=4)[2] == timelapse(6, (96, 96), 8, seed=4)[2]


def test_training_iterator_is_reproducible():
    a = [next(training_samples(7, (64, 64))) for _ in range(2)]
    np.testing.assert_array_equal(a[0][0], a[1][0])


# ---------------------------------------------------------------- the original API


def test_nuclei_image_defaults_unchanged():
    image, labels = nuclei_image()
    assert image.shape == labels.shape == (384, 384)
    assert image.dtype == np.uint16 and labels.dtype == np.uint32
    assert labels.max() == 12


# ---------------------------------------------------------------- ground truth of still images


@pytest.mark.parametrize("touching", [False, True])
def test_nuclei_are_where_the_intensity_is(touching):
    image, labels = nuclei_image((256, 256), 25, seed=11, dtype=np.float32, touching=touching)
    assert_instances(labels)
    assert_visible(image, labels)


def test_separated_nuclei_do_not_touch_and_clumps_do():
    _, apart = nuclei_image((256, 256), 25, seed=3)
    _, clumps = nuclei_image((256, 256), 25, seed=3, touching=True)
    assert connected_components(apart > 0).max() == apart.max()
    assert connected_components(clumps > 0).max() < clumps.max()


@pytest.mark.parametrize("touching", [True, False])
def test_cells_are_where_the_intensity_is(touching):
    image, cells, nuclei = cells_image((256, 256), 20, seed=4, dtype=np.float32, touching=touching)
    assert_instances(cells)
    assert_visible(image, cells)


def test_touching_cells_share_boundaries():
    _, cells, _ = cells_image((256, 256), 20, seed=4)
    assert connected_components(cells > 0).max() < cells.max() / 3


def test_each_nucleus_lies_inside_its_own_cell():
    _, cells, nuclei = cells_image((256, 256), 20, seed=6)
    inside = nuclei > 0
    assert inside.any()
    np.testing.assert_array_equal(nuclei[inside], cells[inside])
    assert set(np.unique(nuclei[inside])) <= set(np.unique(cells[cells > 0]))


def test_two_channel_cells_show_nuclei_in_the_second_channel():
    image, cells, nuclei = cells_image((192, 192), 12, seed=8, dtype=np.float32, channels=2)
    assert image.shape == (2, 192, 192)
    assert image[1][nuclei > 0].mean() > 3 * image[1][nuclei == 0].mean()
    assert image[0][(cells > 0) & (nuclei == 0)].mean() > 2 * image[0][cells == 0].mean()


# ---------------------------------------------------------------- dtypes and ranges


@pytest.mark.parametrize("dtype, low, high", [(np.uint8, 60, 255), (np.uint16, 1000, 65535)])
def test_integer_output_uses_its_range(dtype, low, high):
    image, _ = nuclei_image((128, 128), 8, seed=1, dtype=dtype)
    assert image.dtype == dtype
    assert low < image.max() <= high
    assert image.min() >= 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_output_is_relative_intensity(dtype):
    image, labels = nuclei_image((128, 128), 8, seed=1, dtype=dtype)
    assert image.dtype == dtype
    assert 0.2 < image[labels > 0].mean() < 1.2
    assert abs(image[labels == 0].mean()) < 0.3


def test_signed_integer_output_is_refused():
    with pytest.raises(ValueError):
        nuclei_image((64, 64), 2, dtype=np.int16)


def test_noise_follows_the_photon_budget():
    flat = dict(background=0.2, unevenness=0.0, read_noise=0.0)
    dim, _ = nuclei_image(
        (128, 128), 0, seed=1, dtype=np.float32, acquisition=Acquisition(photons=20, **flat)
    )
    bright, _ = nuclei_image(
        (128, 128), 0, seed=1, dtype=np.float32, acquisition=Acquisition(photons=2000, **flat)
    )
    assert dim.std() > 5 * bright.std()
    assert abs(dim.std() - np.sqrt(0.2 / 20)) < 0.02


def test_haze_spreads_light_outside_the_objects():
    crisp, labels = nuclei_image(
        (128, 128), 8, seed=2, dtype=np.float32, acquisition=Acquisition(haze=0.0, photons=5000)
    )
    hazy, _ = nuclei_image(
        (128, 128), 8, seed=2, dtype=np.float32, acquisition=Acquisition(haze=0.5, photons=5000)
    )
    far = ~dilation(labels > 0, disk(6))
    assert hazy[far].mean() > crisp[far].mean() + 0.005


# ---------------------------------------------------------------- time-lapse


def present_frames(labels: np.ndarray) -> dict[int, list[int]]:
    frames: dict[int, list[int]] = {}
    for t, frame in enumerate(labels):
        for i in np.unique(frame[frame > 0]):
            frames.setdefault(int(i), []).append(t)
    return frames


@pytest.mark.parametrize("which", ["movie", "cell_movie"])
def test_every_track_is_exactly_its_frame_range(which, request):
    _, labels, tracks = request.getfixturevalue(which)
    frames = present_frames(labels)
    assert set(frames) == set(tracks)
    for i, (first, last, parent) in tracks.items():
        assert frames[i] == list(range(first, last + 1)), i
        assert parent == 0 or parent in tracks


@pytest.mark.parametrize("which", ["movie", "cell_movie"])
def test_daughters_appear_next_to_their_parent_right_after_it(which, request):
    _, labels, tracks = request.getfixturevalue(which)
    children = [(i, p) for i, (_, _, p) in tracks.items() if p]
    assert children, "no division"
    for child, parent in children:
        first = tracks[child][0]
        assert first == tracks[parent][1] + 1
        before, after = labels[first - 1] == parent, labels[first] == child
        assert (after & dilation(before, disk(Motion().max_step))).any(), (child, parent)
        if not (touches_border(before) or touches_border(after)):
            y, x = np.rint(np.argwhere(after).mean(axis=0)).astype(int)
            assert dilation(before, disk(3))[y, x], (child, parent)
    assert all(sum(p == q for _, q in children) <= 2 for p in {q for _, q in children})


def test_nuclei_move_a_bounded_amount_per_frame(movie):
    _, labels, _ = movie
    step = Motion().max_step
    moves = []
    for t in range(1, len(labels)):
        a, b = centroids(labels[t - 1]), centroids(labels[t])
        for i in set(a) & set(b):
            if not (touches_border(labels[t - 1] == i) or touches_border(labels[t] == i)):
                moves.append(np.hypot(*(a[i] - b[i])))
    assert len(moves) > 100
    assert max(moves) < step + 2.5
    assert np.median(moves) > 0.3


def test_cells_move_a_bounded_amount_per_frame(cell_movie):
    _, labels, _ = cell_movie
    for t in range(1, len(labels)):
        a, b = centroids(labels[t - 1]), centroids(labels[t])
        for i in set(a) & set(b):
            if not (touches_border(labels[t - 1] == i) or touches_border(labels[t] == i)):
                radius = np.sqrt((labels[t] == i).sum() / np.pi)
                assert np.hypot(*(a[i] - b[i])) < Motion().max_step + 0.25 * radius


def test_cells_enter_and_leave_through_the_border(movie):
    _, labels, tracks = movie
    entered = [i for i, (first, _, parent) in tracks.items() if first > 0 and parent == 0]
    parents = {p for _, _, p in tracks.values()}
    left = [i for i, (_, last, _) in tracks.items() if last < len(labels) - 1 and i not in parents]
    assert entered and left
    for i in entered:
        assert touches_border(labels[tracks[i][0]] == i)
    for i in left:
        assert touches_border(labels[tracks[i][1]] == i)


def test_movie_frames_are_where_the_intensity_is(movie, cell_movie):
    for images, labels, _ in (movie, cell_movie):
        for t in (0, len(labels) // 2, len(labels) - 1):
            assert_instances(labels[t], consecutive=False)
            assert_visible(images[t], labels[t], ratio=1.3)


def test_photobleaching_dims_objects_over_time():
    def foreground(bleaching: float) -> np.ndarray:
        images, labels, _ = timelapse(
            25, (128, 128), 10, seed=1, dtype=np.float32, bleaching=bleaching
        )
        return np.array(
            [
                im[lab > 0].mean() - im[lab == 0].mean()
                for im, lab in zip(images, labels, strict=True)
            ]
        )

    ratio = foreground(0.03) / foreground(0.0)
    assert ratio[0] == pytest.approx(1.0, abs=0.05)
    assert ratio[-1] == pytest.approx(np.exp(-0.03 * 24), rel=0.1)
    assert (np.diff(ratio) < 0.05).all()


def test_frames_have_fresh_noise():
    images, _, _ = timelapse(2, (64, 64), 0, seed=1, dtype=np.float32, bleaching=0.0)
    assert not np.array_equal(images[0], images[1])
    assert abs(images[0].mean() - images[1].mean()) < 0.01


# ---------------------------------------------------------------- z-stacks


def test_z_cross_sections_grow_then_shrink(stack):
    _, labels = stack
    areas = np.stack([np.bincount(s.ravel(), minlength=labels.max() + 1) for s in labels])[:, 1:]
    assert areas.shape[1] >= 5
    for i, area in enumerate(areas.T):
        present = np.flatnonzero(area)
        assert np.array_equal(present, np.arange(present[0], present[-1] + 1)), i
        a = area[present].astype(float)
        peak = int(np.argmax(a))
        tolerance = 0.02 * a.max() + 2
        assert (np.diff(a[: peak + 1]) > -tolerance).all(), (i, a)
        assert (np.diff(a[peak:]) < tolerance).all(), (i, a)


def test_z_nuclei_are_brightest_in_focus(stack):
    images, labels = stack
    footprints = [(labels == i).any(axis=0) for i in range(labels.max() + 1)]
    checked = 0
    for i in range(1, labels.max() + 1):
        z = np.flatnonzero((labels == i).any(axis=(1, 2)))
        around = np.unique(labels[:, dilation(footprints[i], disk(6))])
        if len(z) < 5 or z[0] == 0 or z[-1] == len(labels) - 1 or len(around) > 2:
            continue  # cut by the stack, or another nucleus above or below
        profile = images[:, footprints[i]].mean(axis=1)
        span = z[-1] - z[0]
        assert z[0] + span / 4 <= np.argmax(profile) <= z[-1] - span / 4, (i, profile)
        checked += 1
    assert checked >= 2


def test_z_labels_are_consistent_3d_ids(stack):
    images, labels = stack
    assert labels.dtype == np.uint32 and images.shape == labels.shape
    ids = np.unique(labels)[1:]
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    assert connected_components(labels, connectivity=1).max() == len(ids)
    mid = labels.shape[0] // 2
    assert_visible(images[mid], labels[mid], ratio=1.3)


# ---------------------------------------------------------------- training samples


@pytest.mark.parametrize("style", STYLES)
def test_each_training_style(style):
    image, labels = sample(np.random.default_rng(3), (96, 128), style)
    assert image.shape == labels.shape == (96, 128)
    assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    assert labels.dtype == np.uint32


def test_sample_batch_shapes_and_mix():
    images, labels = sample_batch(np.random.default_rng(0), 12, (64, 64))
    assert images.shape == labels.shape == (12, 64, 64)
    assert (labels.reshape(12, -1).max(axis=1) > 0).sum() >= 10


def test_unknown_style_is_refused():
    with pytest.raises(ValueError):
        sample(np.random.default_rng(0), (32, 32), "brightfield")


# ---------------------------------------------------------------- properties


@QUICK
@given(
    h=st.integers(16, 160),
    w=st.integers(16, 160),
    n=st.integers(0, 40),
    seed=st.integers(0, 2**32),
    touching=st.booleans(),
)
def test_nuclei_labels_are_clean_instances_for_any_size(h, w, n, seed, touching):
    image, labels = nuclei_image((h, w), n, seed, touching=touching)
    assert image.shape == labels.shape == (h, w) and image.dtype == np.uint16
    assert labels.max() <= n
    assert_instances(labels)


@QUICK
@given(
    h=st.integers(24, 160),
    w=st.integers(24, 160),
    n=st.integers(0, 30),
    seed=st.integers(0, 2**32),
    touching=st.booleans(),
)
def test_cell_labels_are_clean_instances_for_any_size(h, w, n, seed, touching):
    image, cells, nuclei = cells_image((h, w), n, seed, np.uint8, touching=touching)
    assert image.shape == (h, w) and image.dtype == np.uint8
    assert_instances(cells)
    np.testing.assert_array_equal(nuclei[nuclei > 0], cells[nuclei > 0])


@QUICK
@given(
    t=st.integers(1, 6),
    h=st.integers(32, 96),
    w=st.integers(32, 96),
    n=st.integers(0, 12),
    seed=st.integers(0, 2**32),
    style=st.sampled_from(["nuclei", "cells"]),
)
def test_tracks_match_labels_for_any_movie(t, h, w, n, seed, style):
    images, labels, tracks = timelapse(t, (h, w), n, seed, style=style)
    assert images.shape == labels.shape == (t, h, w)
    frames = present_frames(labels)
    assert set(frames) == set(tracks)
    for i, (first, last, parent) in tracks.items():
        assert frames[i] == list(range(first, last + 1))
        assert parent == 0 or tracks[parent][1] == first - 1


@QUICK
@given(
    z=st.integers(1, 12), size=st.integers(24, 96), n=st.integers(0, 10), seed=st.integers(0, 2**32)
)
def test_zstack_shapes_for_any_size(z, size, n, seed):
    images, labels = zstack(z, (size, size), n, seed)
    assert images.shape == labels.shape == (z, size, size)
    assert labels.max() <= n


# ---------------------------------------------------------------- speed


def _seconds(fn) -> float:
    fn()  # warm caches and imports
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@pytest.mark.parametrize(
    "name, fn, limit",
    [
        ("image 384", lambda: nuclei_image((384, 384), 30), 2.0),
        ("cells 384", lambda: cells_image((384, 384), 40), 2.0),
        ("movie 30x256", lambda: timelapse(30, (256, 256), 20), 5.0),
        ("cell movie 30x256", lambda: timelapse(30, (256, 256), 20, style="cells"), 5.0),
        ("zstack 32x256", lambda: zstack(32, (256, 256), 15), 5.0),
        ("batch 8x256", lambda: sample_batch(np.random.default_rng(0), 8, (256, 256)), 5.0),
    ],
)
def test_speed(name, fn, limit):
    assert _seconds(fn) < limit, name
