"""Zoom: windows around small objects, masks pasted back in place, and finer masks of small
nuclei in a large image with the shipped model."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2 import ImagePredictor, load_model
from napari_sam2.checkpoints.cache import CACHE_ENV
from napari_sam2.engine.apply_prompts import segment_object
from napari_sam2.engine.predictor import PromptError
from napari_sam2.engine import zoom as zoom_module
from napari_sam2.engine.zoom import brightening, check_window, paste_masks, prompt_extent, zoom_window
from napari_sam2.images.model_input import prepare_image
from napari_sam2.synthetic import nuclei_image
from napari_sam2.training.evaluate import iou
from napari_sam2.training.prompt_sampling import centre_click, tight_box


def test_window_is_a_square_around_a_small_object_inside_the_image():
    # an 8 px object in a 1000 px image, model input 256: 8 x 8 = 64 < 128 = 256 / 2
    assert zoom_window(np.array([500, 300, 508, 308]), (1000, 1000), 256) == (440, 240, 568, 368)
    # 40 px: 8 x 40 = 320 px around its centre
    assert zoom_window(np.array([100, 100, 140, 140]), (1000, 1000), 256) == (0, 0, 320, 320)
    # near the far corner: shifted inside, not cropped
    assert zoom_window(np.array([990, 995, 998, 999]), (1000, 1000), 256) == (872, 872, 1000, 1000)


def test_no_window_when_zooming_would_not_enlarge():
    assert zoom_window(np.array([0, 0, 100, 100]), (512, 512), 256) is None  # 800 px > image
    assert zoom_window(np.array([10, 10, 14, 14]), (256, 256), 1024) is None  # a window >= 512 px
    # a thin image: the window spans its height, so zooming enlarges nothing across it
    assert zoom_window(np.array([500, 10, 508, 18]), (40, 2000), 256) is None


def test_extent_and_paste():
    extent = prompt_extent(np.array([[5.0, 9.0]]), np.array([10, 2, 20, 6]), None)
    np.testing.assert_array_equal(extent, [5, 2, 20, 9])
    masks = np.ones((3, 2, 4), bool)
    full = paste_masks(masks, (1, 2, 5, 4), (6, 8))
    assert full.shape == (3, 6, 8) and full.sum() == 24 and full[:, 2:4, 1:5].all()
    with pytest.raises(ValueError, match="not inside"):
        check_window((0, 0, 9, 4), (6, 8))


def test_brightening_puts_a_dim_object_at_mid_grey_in_steps():
    image = np.full((40, 60, 3), 0.02, np.float32)
    image[10:20, 10:20] = 0.05  # a dim object
    image[25:35, 40:50] = 0.6  # a bright one
    # 0.5 / 0.05 = 10 -> the nearest power of sqrt(2): 2 ** 3.5
    assert brightening(image, np.array([[15.0, 15.0]]), None, None) == pytest.approx(2**3.5)
    assert brightening(image, np.array([[45.0, 30.0]]), None, None) == 1.0  # bright: as it is
    # a negative click on the bright object does not count; a box's middle half does
    assert brightening(image, np.array([[15.0, 15.0], [45.0, 30.0]]), np.array([1, 0]), None) == pytest.approx(2**3.5)
    assert brightening(image, None, None, np.array([8, 8, 22, 22])) == pytest.approx(2**3.5)
    assert brightening(image, None, None, np.array([38, 23, 52, 37])) == 1.0
    # a correction click on the same object keeps the step (and the crop's embedding)
    image[16, 16] = 0.06
    assert brightening(image, np.array([[15.0, 15.0], [16.0, 16.0]]), None, None) == pytest.approx(2**3.5)
    black = np.zeros((8, 8, 3), np.float32)
    assert brightening(black, np.array([[4.0, 4.0]]), None, None) == 1.0  # nothing to brighten
    assert brightening(image, None, None, None) == 1.0


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        mp.setenv("NAPARI_SAM2_OFFLINE", "1")
        return load_model(device="cpu")


@pytest.fixture(scope="module")
def small_nuclei():
    """Nuclei of radius 6-9 px in a 512 px image, the shipped model's input size."""
    return nuclei_image((512, 512), 10, seed=11, radius=(6, 9))


def test_zoom_segments_small_nuclei_better(model, small_nuclei):
    # measured: boxes 0.859 -> 0.931, zoomed clicks 0.868 (the 384 px model: 0.774 -> 0.880 and
    # 0.828; the 256 px one: 0.661 -> 0.860 and 0.765)
    image, labels = small_nuclei
    predictor = ImagePredictor(model, precision="fp32")
    predictor.set_image(image)
    plain, zoomed, clicks = [], [], []
    for obj in range(1, labels.max() + 1):
        target = labels == obj
        box = tight_box(target)
        plain.append(iou(predictor.predict(box=box, multimask_output=False).masks[0], target))
        result = predictor.predict(box=box, multimask_output=False, zoom=True)
        zoomed.append(iou(result.masks[0], target))
        x0, y0, x1, y1 = result.window
        side = x1 - x0
        assert side == y1 - y0 and model.image_size / 2 <= side <= model.image_size / 1.1  # enlarged 1.1-2x
        outside = result.masks[0].copy()
        outside[y0:y1, x0:x1] = False
        assert not outside.any()
        rows, cols = np.nonzero(result.masks[0])
        np.testing.assert_array_equal(result.boxes[0], [cols.min(), rows.min(), cols.max(), rows.max()])
        click = predictor.predict(points=centre_click(target)[None], zoom=True)
        clicks.append(iou(click.masks[click.best], target))
    assert np.mean(zoomed) >= 0.87 and np.mean(zoomed) >= np.mean(plain) + 0.04
    assert np.mean(clicks) >= 0.8


def test_zoom_finds_few_small_nuclei_in_a_large_field(model):
    """10 nuclei of radius 6-9 px in 1024 x 1024: 3-4.5 px at the model's input, and so sparse
    that only the bright-object rule of the normalisation keeps their halo dark."""
    image, labels = nuclei_image((1024, 1024), 10, seed=11, radius=(6, 9))
    predictor = ImagePredictor(model, precision="fp32")
    predictor.set_image(image)
    boxes, clicks = [], []
    for obj in range(1, labels.max() + 1):
        target = labels == obj
        box = predictor.predict(box=tight_box(target), multimask_output=False, zoom=True)
        boxes.append(iou(box.masks[0], target))
        click = predictor.predict(points=centre_click(target)[None], zoom=True)
        clicks.append(iou(click.masks[click.best], target))
    # measured: boxes 0.940, clicks 0.734 (without zoom 0.633, 0.599; the 384 px model: 0.868,
    # 0.753, and 0.619, 0.461 when the nuclei saturated)
    assert np.mean(boxes) >= 0.88 and np.mean(clicks) >= 0.68


def test_refinement_in_the_window_and_mask_prompts(model, small_nuclei):
    image, labels = small_nuclei
    predictor = ImagePredictor(model, precision="fp32")
    predictor.set_image(image)
    target = labels == 3  # measured: 0.978 zoomed, 0.973 refined with its logits
    first = predictor.predict(points=centre_click(target)[None], zoom=True)
    again = predictor.predict(
        points=centre_click(target)[None], mask_input=first.logits[first.best], multimask_output=False, zoom=first.window
    )
    assert again.window == first.window and iou(again.masks[0], target) >= 0.85
    # a mask prompt: its logits are made for the window it is segmented in
    found, _ = segment_object(predictor, mask=target, zoom=True)
    assert iou(found, target) >= 0.8


def test_zoom_errors_name_the_fix(model, small_nuclei):
    image, labels = small_nuclei
    predictor = ImagePredictor(model, precision="fp32")
    embedding = predictor.set_image(image)
    first = predictor.predict(points=[[100, 100]], zoom=True)
    with pytest.raises(PromptError, match="zoom=that_prediction.window"):
        predictor.predict(points=[[100, 100]], mask_input=first.logits[0], zoom=True)
    with pytest.raises(PromptError, match="outside the zoom window"):
        predictor.predict(points=[[500, 500]], zoom=(0, 0, 128, 128))
    predictor.set_embedding(embedding)  # no image: zooming cannot crop
    with pytest.raises(RuntimeError, match="set_embedding\\(embedding, image="):
        predictor.predict(points=[[100, 100]], zoom=True)
    predictor.set_embedding(embedding, image=prepare_image(image))
    assert predictor.predict(points=[[100, 100]], zoom=True).masks.shape[-2:] == (512, 512)
    crop = predictor._zoomed
    predictor.set_embedding(embedding, image=prepare_image(image))  # the same plane: crop kept
    assert predictor._zoomed is crop
    predictor.set_embedding(predictor.set_image(image[::-1].copy()), image=prepare_image(image))
    assert predictor._zoomed is None  # another embedding: the crop is dropped
    # zoom off leaves the whole-image path (and its parity with the official) untouched
    assert predictor.predict(points=[[100, 100]]).window is None


def test_api_and_prompt_file_replays_zoom(model, small_nuclei):
    from napari_sam2 import api

    image, labels = small_nuclei
    objects = {i: [{"box": tight_box(labels == i).tolist()}] for i in (2, 5, 8)}
    plain = api.segment_objects(image, objects, model, precision="fp32", orientations=1)
    zoomed = api.segment_objects(image, objects, model, precision="fp32", zoom=True, orientations=1)

    def score(found):
        return np.mean([iou(found == i, labels == i) for i in objects])

    assert score(zoomed) >= score(plain) + 0.05
    session = api._session(objects)
    session.model = {"name": None, "precision": "fp32", "zoom": True, "orientations": 1}  # as the widget saves it
    replayed = api.run_session(session, image, model)
    assert all(iou(replayed == i, zoomed == i) >= 0.98 for i in objects)


def test_prompt_command_zoom_flag(model, small_nuclei, tmp_path):
    import os
    import subprocess
    import sys

    import tifffile

    from napari_sam2 import api

    image, labels = small_nuclei
    objects = {i: [{"box": tight_box(labels == i).tolist()}] for i in (2, 5, 8)}
    session = api._session(objects)
    session.model = {"name": None, "precision": "fp32"}  # a file saved without zoom
    session.save(tmp_path / "prompts.json")
    tifffile.imwrite(tmp_path / "image.tif", image)
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache"), "NAPARI_SAM2_OFFLINE": "1"}
    found = {}
    for flag in ("--zoom", "--no-zoom"):
        out = tmp_path / f"labels{flag}.tif"
        command = ["prompt", tmp_path / "image.tif", "--prompts", tmp_path / "prompts.json", "--out", out, flag]
        subprocess.run([sys.executable, "-m", "napari_sam2", *map(str, command)], env=env, check=True, timeout=300)
        found[flag] = tifffile.imread(out)
    for flag, zoom in (("--zoom", True), ("--no-zoom", False)):
        expected = api.segment_objects(image, objects, model, precision="fp32", zoom=zoom)
        assert all(iou(found[flag] == i, expected == i) >= 0.98 for i in objects)
    assert np.mean([iou(found["--zoom"] == i, labels == i) for i in objects]) > np.mean(
        [iou(found["--no-zoom"] == i, labels == i) for i in objects]
    )


def test_zoom_brightens_a_dim_nucleus_beside_bright_ones(model, monkeypatch):
    """Nuclei a fifth as bright as their neighbours above the background (as in time-lapse
    fluorescence): the limits of the whole image show them nearly black, and a zoomed click
    segments them on a crop brightened to mid-grey. Measured with the model before its dimmed-object
    training: 0.81 brightened, 0.71 without (at a tenth: 0.61 and 0.36); with the shipped model,
    which learned dim nuclei, 0.83 and 0.82."""
    image, labels = nuclei_image((512, 512), 10, seed=3, radius=(14, 20))
    raw = image.astype(np.float32)
    background = float(np.percentile(raw, 5))
    dim = [1, 4, 7]  # a few: the limits follow the bright majority
    for obj in dim:
        where = labels == obj
        raw[where] = background + 0.2 * (raw[where] - background)
    predictor = ImagePredictor(model, precision="fp32")

    def mean_click_iou():
        predictor.set_image(raw)
        values = []
        for obj in dim:
            target = labels == obj
            result = predictor.predict(points=centre_click(target)[None], zoom=True)
            values.append(iou(result.masks[result.best], target))
        return float(np.mean(values))

    brightened = mean_click_iou()
    assert predictor._zoomed[0][1] >= 2.0  # the last crop was brightened
    monkeypatch.setattr(zoom_module, "DIM_LEVEL", 0.0)
    as_shown = mean_click_iou()
    assert predictor._zoomed[0][1] == 1.0
    assert brightened >= 0.78 and brightened >= as_shown, (brightened, as_shown)


def test_zoom_brightens_the_dim_nuclei_of_a_real_time_lapse(model, monkeypatch):
    """Fluo-N2DH-GOWT1 01 (../shared/data): most cells with full segmentation truth are a tenth
    as bright as the others. A zoomed click on each, with the movie's 'auto' limits: measured
    0.70 brightened, 0.40 without (13 cells of 8 frames) with the model before its dimmed-object
    training; 0.73 and 0.70 with the shipped model, which learned dim nuclei."""
    import glob
    from pathlib import Path

    import tifffile

    from napari_sam2.images.normalization import auto_normalization

    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "ctc" / "Fluo-N2DH-GOWT1"
    if not (root / "01_GT" / "SEG").is_dir():
        pytest.skip("../shared/data is not here (a user's clone)")
    frames = np.stack([tifffile.imread(root / "01" / f"t{t:03d}.tif") for t in range(0, 92, 4)])
    limits = auto_normalization(frames)
    predictor = ImagePredictor(model, precision="fp32")
    cases = []
    for path in sorted(glob.glob(str(root / "01_GT" / "SEG" / "man_seg*.tif")))[:8]:
        seg = tifffile.imread(path)
        frame = tifffile.imread(root / "01" / f"t{int(path[-7:-4]):03d}.tif")
        cases += [(frame, seg == obj) for obj in np.unique(seg[seg > 0])]

    def mean_click_iou():
        values = []
        for frame, target in cases:
            predictor.set_image(frame, normalization=limits)
            result = predictor.predict(points=centre_click(target)[None], zoom=True)
            values.append(iou(result.masks[result.best], target))
        return float(np.mean(values))

    brightened = mean_click_iou()
    monkeypatch.setattr(zoom_module, "DIM_LEVEL", 0.0)
    as_shown = mean_click_iou()
    assert brightened >= 0.68 and brightened >= as_shown, (brightened, as_shown)
