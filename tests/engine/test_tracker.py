"""Stack tracking: bookkeeping, streaming, cancellation, corrections, absent objects, writer.

Random weights cannot track anything, so these tests check what does not depend on the weights:
which frames are processed and read, what is kept in memory, what is written where.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2.engine.memory_bank import frames_to_keep, select_memory
from napari_sam2.engine.predictor import PromptError
from napari_sam2.engine.tracker import StackTracker
from napari_sam2.images.frames import FrameSource
from napari_sam2.images.label_writer import LabelWriter


@pytest.fixture(scope="module")
def model(present_model):
    return present_model


def stack(n: int = 10, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 4000, (n, size, size)).astype(np.uint16)


def tracker(model, n=10, **kwargs) -> StackTracker:
    return StackTracker(model, stack(n), precision="fp32", **kwargs)


# ------------------------------------------------------------------ memory selection


def test_memory_selection_forward():
    sel = select_memory(10, cond_frames=[0, 14], tracked_frames=set(range(1, 10)), num_frames=20, reverse=False)
    # every conditioning frame (also the future one) in the last slot, then frames 9..4 in slots 0..5
    assert sel.spatial == ((0, 6), (14, 6), (9, 0), (8, 1), (7, 2), (6, 3), (5, 4), (4, 5))
    # pointers: past conditioning frames only, then tracked frames 9..1 at distances 1..9
    assert sel.pointers[0] == (0, 10)
    assert [d for _, d in sel.pointers[1:]] == list(range(1, 10))


def test_memory_selection_reverse_and_edges():
    sel = select_memory(3, cond_frames=[5], tracked_frames={4}, num_frames=8, reverse=True)
    assert sel.spatial == ((5, 6), (4, 0))
    assert sel.pointers == ((5, 2), (4, 1))  # signed distance (frame - cond) * -1 in reverse
    sel = select_memory(3, cond_frames=[5], tracked_frames={4}, num_frames=8, reverse=True, signed_distances=False)
    assert sel.pointers[0] == (5, 2)
    # pointer look-back stops at the start of the stack
    sel = select_memory(2, cond_frames=[0], tracked_frames={1}, num_frames=30, reverse=False)
    assert sel.pointers == ((0, 2), (1, 1))


def test_frames_to_keep_is_bounded():
    kept = frames_to_keep(set(range(1000)), cond_frames=[0, 500], current=900, reach=15)
    assert kept == set(range(0, 16)) | set(range(485, 516)) | set(range(885, 916))


# ------------------------------------------------------------------ propagation bookkeeping


def test_directions_start_stop(model):
    t = tracker(model)
    t.add_points(4, 1, [[20, 30]])
    assert [r.frame for r in t.propagate("forward")] == list(range(4, 10))
    assert [r.frame for r in t.propagate("backward")] == [4, 3, 2, 1, 0]
    assert [r.frame for r in t.propagate("both", stop=(2, 6))] == [4, 5, 6, 4, 3, 2]
    assert [r.frame for r in t.propagate("forward", start=6, stop=8)] == [6, 7, 8]
    with pytest.raises(ValueError, match="direction"):
        next(t.propagate("sideways"))
    with pytest.raises(ValueError, match="does not fit"):
        next(t.propagate("forward", start=6, stop=3))


def test_results_have_frame_shape_and_ids(model):
    t = tracker(model)
    t.add_points(0, 7, [[10, 10]])
    t.add_box(0, 3, [30, 30, 60, 60])
    r = next(t.propagate("forward"))
    assert r.obj_ids == [7, 3]
    assert r.masks.shape == (2, 64, 64) and r.masks.dtype == bool
    assert r.logits.shape == (2, 32, 32) and r.scores.shape == (2,) and r.present.shape == (2,)
    assert not (r.masks[0] & r.masks[1]).any(), "objects' masks must not overlap"


def test_each_frame_read_once_per_pass_and_lazily(model):
    source = FrameSource(stack(12), normalization="auto")
    sampled = source.reads  # normalisation samples a few frames once
    t = StackTracker(model, source, precision="fp32")
    t.add_points(0, 1, [[20, 20]])
    reads_after_prompt = source.reads - sampled
    assert reads_after_prompt == 1
    frames = [r.frame for r in t.propagate("forward")]
    assert frames == list(range(12))
    # frame 0's features were cached by the prompt; the rest are read exactly once
    assert source.reads - sampled - reads_after_prompt <= 12


class CountingArray:
    """An array-like that records which frames were read."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        if isinstance(key, tuple) and isinstance(key[0], int):
            self.reads.append(key[0])
        return self.data[key]


def test_never_reads_the_whole_stack_at_once(model):
    array = CountingArray(stack(30))
    t = StackTracker(model, array, precision="fp32", normalization="auto")
    array.reads.clear()
    t.add_points(10, 1, [[5, 5]])
    for r in t.propagate("forward", stop=14):
        pass
    assert sorted(set(array.reads)) == list(range(10, 15))
    assert len(array.reads) == len(set(array.reads)), "a frame was read twice"


def test_cancel_keeps_what_was_done(model):
    t = tracker(model, n=10)
    t.add_points(0, 1, [[20, 20]])
    volume = np.zeros((10, 64, 64), np.uint32)
    writer = LabelWriter(volume)
    for r in t.propagate("forward", writer=writer):
        if r.frame == 3:
            break
    assert writer.frames_written == {0, 1, 2, 3}
    assert (volume[4:] == 0).all()
    assert all((volume[f] == 1).any() for f in range(4))
    # the tracker is still usable after a cancelled run
    assert [r.frame for r in t.propagate("forward", start=4, stop=5)] == [4, 5]


def test_memory_does_not_grow_with_stack_length(model):
    t = tracker(model, n=60)
    t.add_points(0, 1, [[20, 20]])
    sizes = []
    for r in t.propagate("forward"):
        obj = t._objects[1]
        sizes.append(len(obj.tracked) + len(obj.cond))
    assert max(sizes) <= 16 + 16, sizes


def test_objects_prompted_later_are_tracked_before_their_prompt(model):
    """The official behaviour (objects that never end); the official predictor crashes on this
    in fp32 (bf16 memories, no pointers)."""
    t = tracker(model, ending=None)
    t.add_points(0, 1, [[20, 20]])
    t.add_mask(6, 2, np.pad(np.ones((10, 10), bool), ((20, 34), (20, 34))))
    results = list(t.propagate("forward"))
    assert [r.frame for r in results] == list(range(10))
    assert all(np.isfinite(r.logits).all() for r in results)


def test_object_added_after_tracking(model):
    t = tracker(model)
    t.add_points(0, 1, [[20, 20]])
    list(t.propagate("forward"))
    t.add_points(5, 2, [[40, 40]])
    results = {r.frame: r for r in t.propagate("forward")}
    assert results[9].obj_ids == [1, 2]


def test_correction_becomes_conditioning_and_is_respected(model):
    t = tracker(model)
    t.add_points(0, 1, [[20, 20]])
    list(t.propagate("forward"))
    correction = t.add_points(5, 1, [[40, 40], [10, 10]], labels=[1, 0])
    assert 5 in t._objects[1].cond
    again = {r.frame: r for r in t.propagate("forward")}
    np.testing.assert_array_equal(again[5].masks, correction.masks)
    np.testing.assert_allclose(again[5].logits, correction.logits)


def test_correction_official_behaviour_is_overwritten(model):
    t = tracker(model, corrections_as_conditioning=False)
    t.add_points(0, 1, [[20, 20]])
    list(t.propagate("forward"))
    correction = t.add_points(5, 1, [[40, 40], [10, 10]], labels=[1, 0])
    assert 5 not in t._objects[1].cond
    again = {r.frame: r for r in t.propagate("forward")}
    assert not np.allclose(again[5].logits, correction.logits)


def test_absent_object_is_reported_absent_not_full_frame(model):
    t = tracker(model)
    t.add_mask(0, 1, np.pad(np.ones((10, 10), bool), ((20, 34), (20, 34))))
    bias = model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias
    saved = bias.detach().clone()
    try:
        with torch.no_grad():
            bias.fill_(-50.0)  # the decoder now calls the object absent everywhere
        results = list(t.propagate("forward"))
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    for r in results[1:]:
        assert r.present[0] < 0
        assert not r.masks[0].any()
    square = np.pad(np.ones((10, 10), bool), ((20, 34), (20, 34)))
    kept = results[0].masks[0]
    assert (kept & square).sum() / (kept | square).sum() > 0.9  # the prompt frame keeps its mask


def test_batched_objects_equal_separate_ones(model):
    together = tracker(model)
    together.add_points(0, 1, [[20, 20]])
    together.add_points(0, 2, [[45, 40]])
    joint = [r.logits for r in together.propagate("forward", stop=4)]
    for k, (obj_id, point) in enumerate([(1, [[20, 20]]), (2, [[45, 40]])]):
        alone = tracker(model)
        alone.add_points(0, obj_id, point)
        single = [r.logits[0] for r in alone.propagate("forward", stop=4)]
        for a, b in zip(joint, single):
            np.testing.assert_allclose(a[k], b, atol=1e-4)


def test_bad_prompts(model):
    t = tracker(model)
    with pytest.raises(PromptError, match="Nothing to propagate"):
        next(t.propagate())
    with pytest.raises(PromptError, match="outside the stack"):
        t.add_points(10, 1, [[1, 1]])
    with pytest.raises(PromptError, match="outside the 64x64 image"):
        t.add_points(0, 1, [[100, 1]])
    with pytest.raises(PromptError, match="mask has shape"):
        t.add_mask(0, 1, np.ones((10, 10), bool))


def test_wrong_dimensionality():
    from napari_sam2.images.checks import ImageInputError

    with pytest.raises(ImageInputError, match="stack must be"):
        FrameSource(np.zeros((64, 64)))


# ------------------------------------------------------------------ writer


def test_writer_keeps_other_labels_and_updates_its_own():
    volume = np.zeros((2, 6, 6), np.uint16)
    volume[0, 0, :] = 9  # the user's own label
    writer = LabelWriter(volume)
    first = np.zeros((1, 6, 6), bool)
    first[0, :2, :2] = True
    writer.write(0, [1], first)
    assert volume[0, 0, 0] == 9 and volume[0, 1, 0] == 1  # 9 untouched, 1 written beside it
    moved = np.zeros((1, 6, 6), bool)
    moved[0, 3:, 3:] = True
    writer.write(0, [1], moved)
    assert (volume[0, 1, :2] == 0).all(), "pixels the object left are cleared"
    assert (volume[0, 3:, 3:] == 1).all() and (volume[0, 0] == 9).all()
    overwriting = LabelWriter(volume, overwrite=True)
    overwriting.write(0, [2], np.ones((1, 6, 6), bool))
    assert (volume[0] == 2).all()


def test_writer_streams_to_a_memmap(tmp_path):
    volume = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.uint32, shape=(3, 4, 4))
    LabelWriter(volume).write(1, [5], np.ones((1, 4, 4), bool))
    volume.flush()
    assert (np.load(tmp_path / "labels.npy")[1] == 5).all()


# ------------------------------------------------------------------ objects end


def test_object_score_combines_presence_size_and_continuity():
    import torch

    from napari_sam2.engine.object_ending import EndingState, ObjectEnding, object_score, update

    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:16, 8:16] = 5.0  # 64 pixels
    state = EndingState(reference_area=64.0)
    assert object_score(mask, 8.0, state, full_size=0.5) > 0.99
    assert object_score(mask, -2.0, state, full_size=0.5) == pytest.approx(torch.sigmoid(torch.tensor(-2.0)).item(), abs=1e-6)
    tiny = torch.zeros(1, 1, 32, 32)
    tiny[..., 8:10, 8:10] = 5.0  # 4 of 64 pixels: 4 / 32 of full size
    assert object_score(tiny, 8.0, state, full_size=0.5) == pytest.approx(4 / 32)
    state.previous = mask[0, 0] > 0
    jumped = torch.zeros(1, 1, 32, 32)
    jumped[..., 20:28, 20:28] = 5.0  # same size, elsewhere: no overlap with the previous frame
    assert object_score(jumped, 8.0, state, full_size=0.5) == 0.0
    rule = ObjectEnding(absent_below=0.2, present_above=0.4, patience=2)
    assert update(state, 0.1, jumped, rule) and not state.ended
    assert not update(state, 0.3, mask, rule)  # between the thresholds: the absent run goes on
    assert update(state, 0.1, jumped, rule) and state.ended
    with pytest.raises(ValueError, match="absent_below"):
        ObjectEnding(absent_below=0.5, present_above=0.4)


def test_a_mask_that_slides_onto_a_tracked_neighbour_loses_ownership():
    import torch

    from napari_sam2.engine.object_ending import EndingState, object_score, owned_shares

    neighbour = torch.full((1, 1, 32, 32), -5.0)
    neighbour[..., 8:16, 8:16] = 6.0
    sliding = torch.full((1, 1, 32, 32), -5.0)
    sliding[..., 8:16, 4:14] = 2.0  # 80 pixels, 48 of them on the neighbour, who is surer there
    own = owned_shares({1: sliding, 2: neighbour})
    assert own[1] == pytest.approx(32 / 80) and own[2] == 1.0
    assert owned_shares({1: sliding}) == {1: 1.0}  # alone, nothing to lose to
    state = EndingState(reference_area=80.0)
    assert object_score(sliding, 8.0, state, full_size=0.5, owned=own[1]) == pytest.approx(0.4)


def _disc_stack():
    """12 slices: a disc on slices 3-7 (largest on 5) beside a disc on every slice."""
    yy, xx = np.mgrid[:128, :128]
    stack = np.full((12, 128, 128), 100, np.uint16)
    for z in range(12):
        stack[z][(yy - 40) ** 2 + (xx - 70) ** 2 < 14**2] = 900
        if 3 <= z <= 7:
            stack[z][(yy - 40) ** 2 + (xx - 40) ** 2 < (14 - 2 * abs(z - 5)) ** 2] = 1000
    return stack + np.random.default_rng(0).integers(0, 50, stack.shape).astype(np.uint16)


@pytest.fixture(scope="module")
def builtin():
    from napari_sam2 import load_model

    return load_model()


def test_objects_end_where_they_are_absent_and_are_no_longer_tracked(builtin):
    t = StackTracker(builtin, _disc_stack())
    t.add_points(5, 1, [[40, 40]])
    results = list(t.propagate("both"))
    painted = sorted({r.frame for r in results if r.masks[0].any()})
    assert painted == [3, 4, 5, 6, 7]
    ended = {r.frame: bool(r.ended[0]) for r in results}
    assert not any(ended[f] for f in painted) and all(ended[f] for f in (0, 1, 2, 8, 9, 10, 11))
    scores = {r.frame: float(r.object_scores[0]) for r in results}
    assert scores[5] == 1.0 and scores[4] > 0.5 and scores[8] < 0.2
    # once ended, the object is not decoded again in that pass
    assert all(r.present[0] == -1024 for r in results if r.frame in (0, 1, 9, 10, 11))
    # the official behaviour tracks on
    official = StackTracker(builtin, _disc_stack(), ending=None)
    official.add_points(5, 1, [[40, 40]])
    assert not any(r.ended.any() for r in official.propagate("forward", stop=9))


def test_each_object_is_tracked_outward_from_its_own_prompt(builtin):
    """Two nuclei prompted on different slices: each is tracked from its own prompt outward, so
    the later one is found on the slices between the prompts (tracked towards its prompt from
    the first prompt's slice, it was called absent there and ended before reaching them)."""
    yy, xx = np.mgrid[:128, :128]
    stack = np.full((12, 128, 128), 100, np.uint16)
    for z in range(12):
        centre = 40 if z <= 5 else 90  # one nucleus on slices 0-5, another on 6-11
        stack[z][(yy - 40) ** 2 + (xx - centre) ** 2 < 14**2] = 1000
    stack += np.random.default_rng(0).integers(0, 50, stack.shape).astype(np.uint16)
    t = StackTracker(builtin, stack)
    t.add_points(2, 1, [[40, 40]])
    t.add_points(9, 2, [[90, 40]])
    volume = np.zeros(stack.shape, np.uint32)
    results = list(t.propagate("both", writer=LabelWriter(volume)))
    assert len(results) == t.frames_in_passes("both") == 10 + 10  # forward 2..11, backward 9..0
    painted = {obj: sorted(int(z) for z in np.nonzero((volume == obj).any(axis=(1, 2)))[0]) for obj in (1, 2)}
    assert painted == {1: list(range(0, 6)), 2: list(range(6, 12))}, painted
    # the backward pass leaves the first object's forward results alone on slices past its prompt
    assert all(r.obj_ids == [2] for r in results[10:] if 3 <= r.frame <= 8)


def test_frames_before_every_prompt_come_back_empty_and_counts_need_prompts(model):
    t = tracker(model)
    with pytest.raises(PromptError, match="Nothing to propagate"):
        t.frames_in_passes("both")
    t.add_points(3, 1, [[20, 20]])
    results = list(t.propagate("forward", start=0))
    assert len(results) == t.frames_in_passes("forward", start=0) == 10
    assert [r.obj_ids for r in results[:3]] == [[], [], []]  # no object is tracked before its prompt
    assert results[0].masks.shape == (0, 64, 64) and results[3].obj_ids == [1]


def test_contrast_sign_tells_a_faded_object_from_one_inside_a_bright_region():
    import torch

    from napari_sam2.engine.object_ending import contrast_share, mask_contrast

    gray = torch.full((32, 32), 0.1)
    gray[8:16, 8:16] = 0.9
    mask = torch.full((1, 1, 32, 32), -5.0)
    mask[..., 8:16, 8:16] = 5.0
    reference = mask_contrast(mask, gray)
    assert reference == pytest.approx((0.8, 0.8))
    faded = gray.clone()
    faded[8:16, 8:16] = 0.2  # the same place, a tenth as far above its surroundings
    assert contrast_share(mask_contrast(mask, faded), reference) == pytest.approx(0.125)
    inside = torch.full((32, 32), 0.1)
    inside[2:30, 2:30] = 0.9  # the mask now lies inside a larger bright region: no ring contrast
    assert mask_contrast(mask, inside)[0] == pytest.approx(0.0, abs=1e-6)
    assert contrast_share(mask_contrast(mask, inside), reference) == 1.0  # but it is still bright
    assert contrast_share(mask_contrast(mask, faded), (0.01, 0.01)) == 1.0  # nothing stood out


def test_range_limits_the_slices_painted(builtin):
    t = StackTracker(builtin, _disc_stack())
    t.add_points(5, 1, [[40, 40]])
    frames = [r.frame for r in t.propagate("both", stop=(4, 6)) if r.masks[0].any()]
    assert sorted(set(frames)) == [4, 5, 6]


def test_segment_boxes_finds_the_boxed_object(builtin):
    t = StackTracker(builtin, _disc_stack())
    masks, iou = t.segment_boxes(5, [[24, 24, 57, 57], [54, 24, 87, 57]])
    yy, xx = np.mgrid[:128, :128]
    for mask, (cy, cx) in zip(masks, [(40, 40), (40, 70)]):
        truth = (yy - cy) ** 2 + (xx - cx) ** 2 < 14**2
        assert (mask & truth).sum() > 0.9 * truth.sum() and (mask & truth).sum() / (mask | truth).sum() > 0.65


@pytest.mark.parametrize("frame_hw", [(128, 128), (256, 128)])
def test_masks_upscaled_by_crops_equal_masks_upscaled_over_the_frame(frame_hw):
    """Upscaling only each object's box gives the whole-frame masks bit for bit: overlapping
    objects (the highest logit wins), an object at the frame's edge, an empty one."""
    from napari_sam2.engine.track_result import _masks_by_crops, _masks_whole

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:32, :32]
    logits = torch.full((5, 32, 32), -20.0)
    for k, (cy, cx, r) in enumerate([(10, 10, 5), (13, 14, 6), (0, 31, 4), (25, 8, 3)]):
        logits[k] = torch.from_numpy(r - np.hypot(yy - cy, xx - cx) + rng.normal(0, 0.3, (32, 32))).float()
    for non_overlapping in (True, False):
        whole = _masks_whole(logits[:, None], frame_hw, non_overlapping).numpy()
        crops = _masks_by_crops(logits, frame_hw, non_overlapping)
        assert whole[:4].any(axis=(1, 2)).all() and not whole[4].any()
        assert (whole[0] & whole[1]).any() != non_overlapping  # objects 0 and 1 overlap unless resolved
        np.testing.assert_array_equal(crops, whole)
