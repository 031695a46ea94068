"""Holding tracked masks to the frame's blobs (a leak given back, a dim nucleus's blob taken),
and the classical tracker the benchmarks measure against."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_sam2.tracking.blob_fit import fitted_to_blobs, given_back, split_lobes
from napari_sam2.tracking.classical import (
    classical_segmentation,
    classical_tracking,
    link_by_overlap,
)
from napari_sam2.tracking.everything import Settings


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r**2


def _two_blobs():
    """Blob 1 and blob 2 side by side (touching), and a third one apart."""
    blobs = np.zeros((64, 96), np.int32)
    blobs[_disc(blobs.shape, 32, 22, 11)] = 1
    blobs[_disc(blobs.shape, 32, 43, 11) & (blobs == 0)] = 2
    blobs[_disc(blobs.shape, 32, 80, 10)] = 3
    return blobs


def test_a_mask_that_leaked_onto_a_neighbour_gives_its_blob_back():
    blobs = _two_blobs()
    before = _disc(blobs.shape, 32, 22, 9)  # the track held blob 1
    leaked = _disc(blobs.shape, 32, 32, 20) & (blobs > 0) | _disc(blobs.shape, 10, 10, 6)  # both blobs and background
    back = given_back(leaked, before, blobs, ndimage.find_objects(blobs), min_area=20)
    assert back[32, 22] and not back[32, 43]  # its own blob kept, the neighbour's given back
    assert not back[10, 4]  # and the background far from its blob
    assert not (back & ~leaked).any()  # nothing is added
    # a mask that held both blobs before keeps both
    both = (blobs == 1) | (blobs == 2)
    assert given_back(leaked, both, blobs, ndimage.find_objects(blobs), min_area=20)[32, 43]


def test_a_dim_nucleus_bright_spot_takes_its_blob_unless_shared_or_two_lobes():
    blobs = _two_blobs()
    spot = _disc(blobs.shape, 30, 80, 3)
    # fitted_to_blobs: the spot takes its blob when the other tracks fill theirs; a blob with two
    # lobes pinched at a dark waist (a dividing mother's daughters) is not taken
    masks = {1: _disc(blobs.shape, 32, 22, 9), 2: _disc(blobs.shape, 32, 43, 9), 7: spot}
    gray = np.where(blobs > 0, 1.0, 0.0)
    out = fitted_to_blobs(masks, {}, blobs, gray, (20, 8), Settings())
    assert (out[7] == (spot | (blobs == 3))).all() and (out[1] == masks[1]).all()
    masks[8] = _disc(blobs.shape, 34, 84, 2)  # another track touches the blob: nothing is taken
    assert (fitted_to_blobs(masks, {}, blobs, gray, (20, 8), Settings())[7] == spot).all()
    del masks[8]
    lobes = np.zeros_like(blobs)
    lobes[_disc(blobs.shape, 32, 22, 11) | _disc(blobs.shape, 32, 43, 11)] = 1  # one blob, two lobes
    dark_waist = np.where(lobes > 0, 1.0, 0.0)
    dark_waist[:, 31:35] *= 0.2
    one = {1: _disc(blobs.shape, 32, 20, 3), 2: _disc(blobs.shape, 32, 80, 9)}
    blobs3 = lobes.copy()
    blobs3[blobs == 3] = 2
    assert len(split_lobes(blobs3 == 1, dark_waist, 8, 20, 0.25)) == 2
    out = fitted_to_blobs(one, {}, blobs3, dark_waist, (20, 16), Settings())
    assert (out[1] == one[1]).all()
    bright_waist = np.where(lobes > 0, 1.0, 0.0)  # one nucleus: the spot takes it
    assert fitted_to_blobs(one, {}, blobs3, bright_waist, (20, 16), Settings())[1][32, 43]


def test_classical_segmentation_finds_discs_and_splits_touching_ones():
    image = np.full((128, 128), 10.0)
    for cy, cx in ((30, 30), (30, 51), (90, 90)):  # two touching, one apart
        image[_disc(image.shape, cy, cx, 11)] = 100.0
    labels = classical_segmentation(image)
    assert len(np.unique(labels)) - 1 == 3
    assert len({labels[30, 27], labels[30, 54], labels[90, 90]} - {0}) == 3


def test_classical_tracking_links_by_overlap_and_finds_a_division():
    shape = (96, 96)
    movie = np.full((6, *shape), 10.0)
    for t in range(6):
        movie[t][_disc(shape, 70, 20 + 2 * t, 9)] = 100.0  # moves right
        if t < 3:
            movie[t][_disc(shape, 30, 50, 12)] = 100.0  # the mother
        else:
            movie[t][_disc(shape, 30, 43, 8)] = 100.0  # two daughters
            movie[t][_disc(shape, 30, 60, 8)] = 100.0
    labels, parents = classical_tracking(movie)
    mover = {int(labels[t][70, 20 + 2 * t]) for t in range(6)}
    assert len(mover) == 1 and 0 not in mover  # one track throughout
    mother = int(labels[0][30, 50])
    assert {int(labels[t][30, 50]) for t in range(3)} == {mother}
    daughters = {int(labels[3][30, 43]), int(labels[3][30, 60])}
    assert len(daughters) == 2 and parents == {d: mother for d in daughters}
    assert {int(labels[5][30, 43]), int(labels[5][30, 60])} == daughters


def test_overlap_links_start_new_tracks_for_unmatched_objects():
    before = np.zeros((32, 32), np.int64)
    before[_disc((32, 32), 8, 8, 5)] = 4
    now = np.zeros((32, 32), np.int64)
    now[_disc((32, 32), 9, 8, 5)] = 1  # the same object
    now[_disc((32, 32), 24, 24, 5)] = 2  # a new one
    ids, parents, next_id = link_by_overlap(before, now, next_id=5)
    assert ids[9, 8] == 4 and ids[24, 24] == 5 and next_id == 6 and parents == {}
