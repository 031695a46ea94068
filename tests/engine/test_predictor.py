"""ImagePredictor behaviour that does not depend on trained weights: coordinate conventions,
shapes, embeddings, and a clear error for every bad prompt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2 import ImagePredictor, PromptError, build_model
from napari_sam2.images.checks import ImageInputError
from napari_sam2.images.coordinates import napari_to_xy


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    p = ImagePredictor(build_model("sam2.1_hiera_test", device="cpu"), precision="fp32")
    image = np.random.default_rng(0).integers(0, 60000, (120, 200)).astype(np.uint16)  # H=120, W=200
    p.set_image(image)
    return p


def captured_prompts(predictor, monkeypatch, **kwargs):
    """The points and labels the model receives (model-input pixels) for a predict call."""
    seen = {}
    original = predictor.model.decode

    def spy(embedding, high_res, points=None, labels=None, **rest):
        seen["points"], seen["labels"] = points, labels
        return original(embedding, high_res, points, labels, **rest)

    monkeypatch.setattr(predictor.model, "decode", spy)
    predictor.predict(**kwargs)
    return seen["points"][0].numpy(), seen["labels"][0].numpy()


def test_points_are_x_y_scaled_to_the_model_input(predictor, monkeypatch):
    size = predictor.model.image_size
    points, labels = captured_prompts(predictor, monkeypatch, points=[[50, 30]], labels=[1])
    np.testing.assert_allclose(points, [[50 * size / 200, 30 * size / 120]], rtol=1e-6)
    assert labels.tolist() == [1]


def test_box_comes_first_as_two_corners(predictor, monkeypatch):
    size = predictor.model.image_size
    points, labels = captured_prompts(predictor, monkeypatch, box=[10, 20, 100, 90], points=[[50, 30]], labels=[0])
    np.testing.assert_allclose(points[:2], [[10 * size / 200, 20 * size / 120], [100 * size / 200, 90 * size / 120]], rtol=1e-6)
    assert labels.tolist() == [2, 3, 0]


def test_napari_row_col_conversion_is_the_only_swap():
    assert napari_to_xy(np.array([[30.0, 50.0]])).tolist() == [[50.0, 30.0]]
    assert napari_to_xy(np.array([[4, 30.0, 50.0]])).tolist() == [[50.0, 30.0]]  # (z, row, col)


def test_result_shapes(predictor):
    result = predictor.predict(points=[[50, 30]])
    assert result.masks.shape == (3, 120, 200) and result.masks.dtype == bool
    assert result.scores.shape == result.stability.shape == (3,)
    assert result.logits.shape == (3, 64, 64) and np.abs(result.logits).max() <= 32
    assert result.boxes.shape == (3, 4)
    for mask, box in zip(result.masks, result.boxes):  # boxes are XYXY around each mask
        if mask.any():
            ys, xs = np.nonzero(mask)
            assert box.tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
    single = predictor.predict(points=[[50, 30], [80, 60]], labels=[1, 0], multimask_output=False)
    assert single.masks.shape == (1, 120, 200)


def test_refinement_with_logits(predictor):
    first = predictor.predict(points=[[50, 30]])
    refined = predictor.predict(points=[[50, 30]], mask_input=first.logits[first.best][None], multimask_output=False)
    assert refined.masks.shape == (1, 120, 200)
    assert not np.array_equal(refined.logits[0], first.logits[first.best])


def test_box_batches(predictor):
    boxes = np.array([[0, 0, 50, 50], [60, 20, 190, 110], [10, 10, 30, 100]])
    result = predictor.predict_boxes(boxes, batch_size=2)
    assert result.masks.shape == (3, 1, 120, 200) and result.scores.shape == (3, 1)
    one = predictor.predict(box=boxes[1], multimask_output=False)
    np.testing.assert_allclose(result.logits[1], one.logits, atol=1e-5)


def test_embeddings_are_kept_and_restored(predictor):
    embedding = predictor.get_embedding()
    before = predictor.predict(points=[[50, 30]])
    predictor.set_image(np.zeros((64, 64), np.uint8))
    predictor.set_embedding(embedding)
    after = predictor.predict(points=[[50, 30]])
    np.testing.assert_array_equal(before.logits, after.logits)
    assert embedding.nbytes > 0 and embedding.image_hw == (120, 200)


def test_set_images_batches_like_one_by_one(predictor):
    original = predictor.get_embedding()
    images = [np.random.default_rng(i).integers(0, 255, (80, 90, 3)).astype(np.uint8) for i in range(3)]
    batched = predictor.set_images(images, batch_size=2)
    single = [predictor.set_image(im) for im in images]
    predictor.set_embedding(original)  # the fixture is shared by the other tests
    for a, b in zip(batched, single):
        torch.testing.assert_close(a.embedding, b.embedding, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(points=[[250, 30]]), r"Point 0 at \(x=250, y=30\) is outside the 200x120 image"),
        (dict(points=[[50, -3]]), "outside"),
        (dict(points=[[np.nan, 3]]), "NaN"),
        (dict(points=[1, 2, 3]), r"\(N, 2\)"),
        (dict(points=[[5, 5]], labels=[1, 1]), "1 points but 2 labels"),
        (dict(points=[[5, 5]], labels=[2]), "1 \\(foreground\\) or 0"),
        (dict(labels=[1]), "labels were given without points"),
        (dict(), "Nothing to segment"),
        (dict(box=[50, 50, 10, 10]), "is empty"),
        (dict(box=[300, 200, 400, 300]), "outside"),
        (dict(mask_input=np.zeros((32, 32))), "mask_input must be low-res logits of shape"),
        (dict(mask_input=np.full((1, 64, 64), np.nan)), "NaN"),
    ],
)
def test_bad_prompts(predictor, kwargs, message):
    with pytest.raises(PromptError, match=message):
        predictor.predict(**kwargs)


def test_bad_boxes_and_no_image():
    p = ImagePredictor(build_model("sam2.1_hiera_test", device="cpu"))
    with pytest.raises(RuntimeError, match="call set_image"):
        p.predict(points=[[1, 1]])
    with pytest.raises(ImageInputError):
        p.set_image(np.full((64, 64), np.nan, np.float32))
    with pytest.raises(ImageInputError):
        p.set_image(np.zeros((4, 64, 64), np.uint16))  # a stack, not an image
    p.set_image(np.zeros((64, 64), np.uint8))
    with pytest.raises(PromptError, match=r"\(B, 4\)"):
        p.predict_boxes(np.zeros((0, 4)))


def test_box_partly_outside_is_clipped(predictor):
    inside = predictor.predict(box=[150, 60, 200, 120], multimask_output=False)
    beyond = predictor.predict(box=[150, 60, 260, 180], multimask_output=False)
    np.testing.assert_allclose(inside.logits, beyond.logits)


def test_image_projections_made_once_decode_like_each_time(predictor):
    """The decoder's image-only products, made once per image, change no output: one prompt
    set or many, multimask or not; a mask prompt cannot use them."""
    model = predictor.model
    embedding, high_res = predictor._decoder_features(predictor._embedding)
    projected = model.project_image(embedding)
    points = torch.tensor([[[10.0, 20.0]], [[40.0, 9.0]], [[60.0, 60.0]]])
    labels = torch.ones(3, 1, dtype=torch.int32)
    with torch.inference_mode():
        for multimask in (True, False):
            plain = model.decode(embedding, high_res, points, labels, multimask_output=multimask, pad_empty_prompt=False)
            made_once = model.decode(
                embedding, high_res, points, labels, multimask_output=multimask, pad_empty_prompt=False, projected=projected
            )
            torch.testing.assert_close(made_once.masks, plain.masks, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(made_once.iou, plain.iou, atol=1e-6, rtol=1e-5)
        with pytest.raises(ValueError, match="mask_input"):
            model.decode(embedding, high_res, points[:1], labels[:1], mask_input=torch.zeros(1, 1, 16, 16), projected=projected)


def test_stability_counts_pixels_like_a_sum():
    from napari_sam2.modeling.mask_decoder import stability_score

    logits = torch.randn(2, 3, 40, 50) * 3
    inner = (logits > 1).sum(dim=(-2, -1)).float()
    outer = (logits > -1).sum(dim=(-2, -1)).float()
    torch.testing.assert_close(stability_score(logits, 0.0, 1.0), inner / outer)
    assert stability_score(torch.full((1, 8, 8), -9.0), 0.0, 1.0, empty=0.0).item() == 0.0
