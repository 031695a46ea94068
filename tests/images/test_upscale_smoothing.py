"""The blur before a large enlargement: only where a model's metadata asks for it, only when the
image is enlarged, the same on every path (predictor, tracker, int8), and part of the cache key;
on real noisy nuclei (BBBC050, 120 px slices enlarged 4.2x) it is what makes their masks fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sam2 import build_model, load_model
from napari_sam2.engine.embedding_store import embedding_key
from napari_sam2.engine.predictor import ImagePredictor
from napari_sam2.engine.quantize import int8_kernels_available, int8_model
from napari_sam2.images.model_input import to_model_input, upscale_sigmas, upscale_smoothing

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "bbbc050"


def noisy(side: int, seed: int = 0) -> np.ndarray:
    rgb = np.random.default_rng(seed).uniform(0, 1, (side, side, 1)).astype(np.float32)
    return np.repeat(rgb, 3, axis=-1)


def test_sigmas_grow_with_the_enlargement_per_axis():
    rows, cols = upscale_sigmas((128, 512), 512, 0.3)
    assert rows == pytest.approx(0.9) and cols == 0.0
    assert upscale_sigmas((1024, 700), 512, 0.3) == (0.0, 0.0)  # shrunk: antialiasing does it
    assert upscale_sigmas((64, 64), 512, 0.0) == (0.0, 0.0)


def test_only_an_enlarged_image_is_blurred():
    small, large = noisy(128), noisy(512)
    plain, blurred = to_model_input(small, 512), to_model_input(small, 512, upscale_smoothing=0.3)
    # the pixel noise, as the model sees it, is weaker (the blur averages neighbouring pixels)
    assert blurred.std() < 0.6 * plain.std()
    assert blurred.mean().item() == pytest.approx(plain.mean().item(), abs=0.02)
    torch.testing.assert_close(to_model_input(large, 512), to_model_input(large, 512, upscale_smoothing=0.3))


def test_models_without_the_setting_get_the_official_input():
    model = build_model("sam2.1_hiera_test", device="cpu", image_size=128)
    assert upscale_smoothing(model) == 0.0
    assert upscale_smoothing(load_model()) == pytest.approx(0.31)  # the built-in model's metadata


def test_predictor_embeds_with_the_models_blur_and_the_cache_key_says_so():
    torch.manual_seed(0)
    model = build_model("sam2.1_hiera_test", device="cpu", image_size=128)
    image = (noisy(40)[..., 0] * 1000).astype(np.uint16)
    plain = ImagePredictor(model, precision="fp32").set_image(image).embedding.clone()
    key = embedding_key(model, noisy(40), "fp32")
    model.upscale_smoothing = 0.3
    blurred = ImagePredictor(model, precision="fp32").set_image(image).embedding
    assert not torch.allclose(plain, blurred, atol=1e-4)
    assert embedding_key(model, noisy(40), "fp32") != key  # a cached plain embedding is not reused


@pytest.mark.skipif(not int8_kernels_available(), reason="this PyTorch has no oneDNN int8 kernels")
def test_an_int8_copy_follows_its_models_setting():
    """The tracker's encoder holds an int8 copy made before the setting changed: the setting
    still reaches its input and its cache key."""
    from napari_sam2.engine.frame_features import FrameFeatures
    from napari_sam2.engine.precision import INT8
    from napari_sam2.images.frames import FrameSource

    torch.manual_seed(0)
    model = build_model("sam2.1_hiera_test", device="cpu", image_size=128)
    copy = int8_model(model)
    frames = FrameSource((noisy(40)[None, ..., 0] * 1000).astype(np.uint16))
    features = FrameFeatures(copy, frames, INT8, 1, None)
    rgb = frames.get(0)
    plain = features._encode([rgb]).embedding.clone()
    key = embedding_key(copy, rgb, "int8")
    model.upscale_smoothing = 0.25
    assert not torch.allclose(features._encode([rgb]).embedding, plain, atol=1e-4)
    assert embedding_key(copy, rgb, "int8") == embedding_key(model, rgb, "int8") != key


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/bbbc050 is absent")
def test_noisy_small_nuclei_are_segmented_far_better_with_the_blur():
    """BBBC050 16-cell stage, one click per nucleus on its largest slice, the built-in model:
    the masks of the enlarged noisy slices fit the nuclei much better with the blur."""
    import tifffile

    from napari_sam2.training.prompt_sampling import centre_click
    from napari_sam2.training.real_eval import iou

    stack = tifffile.imread(DATA / "16_cell_stage_image.tif")
    labels = tifffile.imread(DATA / "16_cell_stage_labels.tif")
    model = load_model()

    def mean_click_iou(smoothing: float) -> float:
        model.upscale_smoothing = smoothing
        predictor, scores, shown = ImagePredictor(model, precision="fp32"), [], None
        for obj in (int(i) for i in np.unique(labels) if i):
            z = int(np.argmax((labels == obj).sum(axis=(1, 2))))
            if z != shown:
                predictor.set_image(stack[z])
                shown = z
            found = predictor.predict(centre_click(labels[z] == obj)[None], [1])
            scores.append(iou(found.masks[found.best], labels[z] == obj))
        return float(np.mean(scores))

    try:
        plain, blurred = mean_click_iou(0.0), mean_click_iou(0.31)
    finally:
        model.upscale_smoothing = 0.31
    assert blurred > plain + 0.05 and blurred > 0.7, (plain, blurred)
