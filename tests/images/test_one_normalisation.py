"""Every path (widget, API, CLI, batch, tracker) gets the same 'auto' normalisation for the same
input, one for the whole stack, including an 8-bit gray stack (which the CLI and the API once
normalised slice by slice)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sam2 import build_model
from napari_sam2.images.normalization import Normalization, auto_normalization


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    """Five 8-bit gray slices whose brightness changes from slice to slice."""
    rng = np.random.default_rng(0)
    data = rng.integers(5, 20, size=(5, 64, 64)).astype(np.uint8)
    for z in range(5):
        data[z, 20:40, 20:40] = 60 + 30 * z
    return data


@pytest.fixture(scope="module")
def model():
    return build_model("sam2.1_hiera_tiny", image_size=256, device="cpu")


def test_the_rule_gives_one_normalisation_for_the_stack(stack):
    norm = auto_normalization(stack)
    assert norm.method == "percentiles" and norm != Normalization.identity_uint8()
    per_slice = {auto_normalization(s).high for s in stack}
    assert len(per_slice) == len(stack)  # so slice-by-slice normalising would differ


def test_tracker_and_widget_use_the_rule(stack, model):
    from napari_sam2.engine.tracker import StackTracker

    expected = auto_normalization(stack)
    tracker = StackTracker(model, stack, precision="fp32")
    assert tracker.frames.normalization == expected
    tracker.frames.close()
    pytest.importorskip("qtpy")
    from napari_sam2._widgets._image_source import ImageSource

    assert ImageSource(stack, stack_dim=0).normalization() == expected


def test_api_and_cli_segment_use_the_rule(stack, model, monkeypatch, tmp_path):
    from napari_sam2 import api
    from napari_sam2.cli import main
    from napari_sam2.engine.automatic import AutomaticMaskGenerator
    from napari_sam2.engine.predictor import ImagePredictor

    seen = []
    real_set_image = ImagePredictor.set_image

    def record_set_image(self, image, normalization="auto", **kw):
        seen.append(normalization)
        return real_set_image(self, image, normalization=normalization, **kw)

    monkeypatch.setattr(ImagePredictor, "set_image", record_set_image)
    api.segment_objects(stack, {1: [{"frame": 2, "points": [[30, 30]]}]}, model, "fp32", stack_axis=0)
    assert seen == [auto_normalization(stack)]

    planes = []
    monkeypatch.setattr(
        AutomaticMaskGenerator, "generate_labels",
        lambda self, image, normalization="auto", *a, **kw: planes.append(normalization) or np.zeros(image.shape[:2], np.uint32),
    )
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    monkeypatch.setattr("napari_sam2.cli.common.load_from_args", lambda args: model)
    monkeypatch.setattr("napari_sam2.cli.segmenting.load_from_args", lambda args: model)
    main(["segment", str(tmp_path / "stack.tif"), "--out", str(tmp_path / "out")])
    assert planes == [auto_normalization(stack)] * len(stack)


def test_batch_uses_the_rule(stack, model, monkeypatch, tmp_path):
    from napari_sam2.batch import pipeline, run_batch

    seen = []
    real = pipeline.prepare_image
    monkeypatch.setattr(pipeline, "prepare_image", lambda image, norm, *a, **k: seen.append(norm) or real(image, norm, *a, **k))
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "stack.tif", stack)
    run_batch(tmp_path / "in", tmp_path / "out", model=model, points_per_side=4)
    assert seen and all(n == auto_normalization(stack) for n in seen)


def test_gamma_raises_the_scaled_values_as_napari_shows_them(stack):
    """gamma (napari's layer gamma) after the limits: 0.5 lifts a value at a tenth of the range
    to 0.32 and leaves black and white alone; every way in (limits, auto, prompts-file spec)
    carries it; a non-positive gamma is refused with the fix."""
    from napari_sam2.api import _normalization
    from napari_sam2.images.checks import ImageInputError

    image = np.array([[0.0, 100.0], [1000.0, 2000.0]], np.float32)[..., None]
    out = Normalization.from_limits(0, 1000, gamma=0.5).apply(image)[..., 0]
    np.testing.assert_allclose(out, [[0.0, 0.1**0.5], [1.0, 1.0]], rtol=1e-6)
    auto = auto_normalization(stack)
    assert auto.with_gamma(0.5).low == auto.low and auto.with_gamma(0.5).gamma == 0.5
    assert _normalization({"method": "auto", "gamma": 0.5}, stack) == auto.with_gamma(0.5)
    assert _normalization({"method": "limits", "low": 0, "high": 9, "gamma": 2}, stack) == Normalization.from_limits(0, 9, 2)
    assert _normalization({"method": "auto"}, stack).gamma == 1.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ImageInputError, match="positive number"):
            Normalization.from_limits(0, 1, gamma=bad)
