"""Backward in time, a division is two daughter tracks meeting in their mother: they merge on the
frame where the image shows one object, not while a dark gap still parts them."""

from __future__ import annotations

import numpy as np

from napari_sam2.tracking.lineage import dark_between
from napari_sam2.tracking.merges import merged_daughters

SHAPE = (64, 64)


def _ellipse(cy, cx, ry, rx):
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def _daughters_with_a_gap():
    """Two touching daughters with a dim waist between them: their image, masks and the one
    blob that holds both."""
    top, bottom = _ellipse(24, 32, 8, 8), _ellipse(40, 32, 8, 8)
    gray = np.full(SHAPE, 0.1, np.float32)
    gray[top | bottom] = 0.9
    gray[30:34, 24:41] = np.where((top | bottom)[30:34, 24:41], 0.45, 0.1)
    return gray, top, bottom, (top | bottom).astype(np.int32)


def _mother_cut_in_two():
    """One stretched mother, evenly bright, whose two halves two tracks hold."""
    mother = _ellipse(32, 32, 16, 9)
    gray = np.where(mother, 0.9, 0.1).astype(np.float32)
    rows = np.arange(SHAPE[0])[:, None]
    return gray, mother & (rows < 32), mother & (rows >= 32), mother.astype(np.int32)


def test_a_dark_gap_parts_two_daughters_but_not_two_halves_of_one_mother():
    gray, top, bottom, _ = _daughters_with_a_gap()
    assert dark_between(top, bottom, gray)
    gray, upper, lower, _ = _mother_cut_in_two()
    assert not dark_between(upper, lower, gray)
    assert not dark_between(upper, np.zeros(SHAPE, bool), gray)


def test_daughters_still_parted_by_a_dark_gap_do_not_merge_yet():
    for scene, merges_expected in ((_daughters_with_a_gap, 0), (_mother_cut_in_two, 1)):
        gray, a, b, blobs = scene()
        masks = {1: a, 2: b}
        before = {1: a.copy(), 2: b.copy()}
        found = merged_daughters(masks, [], before, blobs, 0.4, 1.25, lambda m, n: dark_between(m, n, gray))
        assert len(found) == merges_expected, scene.__name__
        # without the check, both scenes merge (the daughters lie in one blob)
        assert len(merged_daughters(masks, [], before, blobs, 0.4, 1.25)) == 1
    merge = merged_daughters(masks, [], before, blobs, 0.4, 1.25, lambda m, n: dark_between(m, n, gray))[0]
    assert merge.daughters == (1, 2) and np.array_equal(merge.mother, a | b)
