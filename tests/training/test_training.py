"""Training: prompt sampling, losses, a run that lowers the loss, fine-tuning that resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_sam2 import build_model, load_model
from napari_sam2.progress import Cancelled
from napari_sam2.synthetic import nuclei_image, timelapse
from napari_sam2.training import FolderData, SyntheticData, TrainConfig, Trainer, set_trainable
from napari_sam2.training.batches import image_tensor, pick_objects
from napari_sam2.training.image_step import PromptMix, image_loss
from napari_sam2.training.losses import segmentation_loss
from napari_sam2.training.prompt_sampling import (
    centre_click,
    correction_click,
    jittered_box,
    tight_box,
)
from napari_sam2.training.video_step import clip_loss


def disk(shape=(64, 64), centre=(30, 20), radius=10):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_centre_click_is_the_deepest_pixel():
    x, y = centre_click(disk())
    assert (y, x) == (30, 20)


def test_correction_click_goes_to_the_larger_error():
    target = disk(radius=10)
    missed = target & (np.arange(64)[None, :] < 20)  # left half of the disk not predicted
    point, label = correction_click(target & ~missed, target)
    assert label == 1 and missed[int(point[1]), int(point[0])]
    extra = disk(centre=(30, 45), radius=8)
    point, label = correction_click(target | extra, target)
    assert label == 0 and extra[int(point[1]), int(point[0])]
    assert correction_click(target, target) is None


def test_jittered_box_stays_near_the_tight_box():
    rng = np.random.default_rng(0)
    tight = tight_box(disk())
    assert np.array_equal(tight, [10, 20, 31, 41])
    boxes = np.stack([jittered_box(disk(), rng) for _ in range(200)])
    assert np.abs(boxes - tight).max() <= 10 and np.abs(boxes - tight).mean() < 2.5
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


def test_loss_prefers_the_right_mask_and_learns_absence():
    target = torch.from_numpy(disk()).float()[None]
    right = target[:, None] * 20 - 10
    wrong = -right
    logits = torch.cat([wrong, right, wrong], dim=1)
    iou_pred = torch.tensor([[0.0, 1.0, 0.0]])
    present = torch.tensor([True])
    good, stats = segmentation_loss(logits, iou_pred, torch.tensor([[10.0]]), target, present)
    assert stats["iou"] == pytest.approx(1.0) and float(good) < 0.05
    bad, _ = segmentation_loss(logits, torch.tensor([[1.0, 0.0, 1.0]]), torch.tensor([[-10.0]]), target, present)
    assert float(bad) > float(good) + 1.5  # wrong IoU predictions and presence cost
    empty = torch.zeros_like(target)
    absent, _ = segmentation_loss(wrong[:, :1] * 0 - 10, torch.tensor([[0.0]]), torch.tensor([[-10.0]]), empty, torch.tensor([False]))
    assert float(absent) < 0.01


@pytest.fixture(scope="module")
def micro():
    torch.manual_seed(0)
    return build_model("napari_sam2_micro", device="cpu", image_size=256)  # 256 px: faster steps


def test_training_steps_lower_the_loss_on_images_and_clips(micro):
    model = micro
    rng_data = np.random.default_rng(3)
    image, labels = nuclei_image((256, 256), 8, seed=3, dtype=np.float32)
    image = (image - image.min()) / np.ptp(image)
    batch = image_tensor(image, 256)[None]
    objects = [pick_objects(labels, rng_data, 4)]
    movie, truth, _ = timelapse(3, (256, 256), 6, seed=4, dtype=np.float32)
    frames = torch.stack([image_tensor((f - movie.min()) / np.ptp(movie), 256) for f in movie])
    ids = pick_objects(truth[0], rng_data, 2)
    masks = np.stack([truth == i for i in ids])
    optimizer = torch.optim.AdamW(set_trainable(model, "all"), lr=1e-3)
    losses = []
    for step in range(12):
        rng = np.random.default_rng(0)  # the same prompts every step: the loss must fall
        model.train()
        loss, _ = image_loss(model, batch, [labels], objects, rng, PromptMix(corrections=1))
        video, _ = clip_loss(model, frames, masks, np.random.default_rng(1), correction_chance=1.0)
        optimizer.zero_grad()
        (loss + video).backward()
        optimizer.step()
        losses.append((float(loss), float(video)))
    model.eval()
    assert losses[-1][0] < 0.6 * losses[0][0]
    assert losses[-1][1] < 0.8 * losses[0][1]


def write_folder(root, n=4):
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    for i in range(n):
        image, truth = nuclei_image((96, 128), 6, seed=10 + i)
        tifffile.imwrite(images / f"field{i}.tif", image)
        tifffile.imwrite(labels / f"field{i}.tif", truth)
    movie, truth, _ = timelapse(4, (96, 96), 5, seed=20)
    tifffile.imwrite(images / "movie.tif", movie, photometric="minisblack")
    tifffile.imwrite(labels / "movie.tif", truth, photometric="minisblack")
    return images, labels


def test_fine_tuning_resumes_exactly_and_saves_an_official_checkpoint(tmp_path, checkpoint):
    images, labels = write_folder(tmp_path)
    data, validation = FolderData(images, labels).split(0.25)
    assert data.has_clips and len(validation.pairs) >= 1
    config = TrainConfig(steps=4, images_per_step=2, objects_per_image=3, clip_frames=3, clip_objects=2,
                         eval_every=2, checkpoint_every=1, trainable="decoder+memory")

    def trainer(run):
        return Trainer(load_model(checkpoint, device="cpu"), data, tmp_path / run, config, validation=validation)

    straight = trainer("straight")
    trunk_before = straight.model.image_encoder.trunk.patch_embed.proj.weight.clone()
    straight.run()
    assert torch.equal(straight.model.image_encoder.trunk.patch_embed.proj.weight, trunk_before)

    first = trainer("resumed")
    with pytest.raises(Cancelled):
        first.run(should_stop=lambda: first.step >= 2)
    second = trainer("resumed")
    assert second.step == 2
    second.run()
    # Same data and state; only the summation order of multi-threaded CPU kernels differs, which
    # Adam can amplify up to about the learning rate (5e-4) per step.
    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.allclose(a, b, atol=2e-4), name
    straight_log = (tmp_path / "straight" / "log.csv").read_text().splitlines()
    resumed_log = (tmp_path / "resumed" / "log.csv").read_text().splitlines()
    # The same losses up to that noise (other data or a lost optimiser state move them by far more).
    for a, b in zip(straight_log[1:], resumed_log[1:]):
        assert float(a.split(",")[1]) == pytest.approx(float(b.split(",")[1]), rel=1e-2)

    best = load_model(tmp_path / "straight" / "best.pt", device="cpu")
    assert best.config.name == "sam2.1_hiera_test"
    meta = json.loads((tmp_path / "straight" / "best.json").read_text())
    assert meta["config"]["trainable"] == "decoder+memory" and meta["steps_done"] in (2, 4)
    assert "images from" in meta["training_data"]
    log = (tmp_path / "resumed" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["1", "2", "3", "4"]


def test_folder_data_explains_missing_labels(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "images" / "a.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(FileNotFoundError, match="label image of the same name"):
        FolderData(tmp_path / "images", tmp_path / "labels")


def test_synthetic_data_is_reproducible():
    data = SyntheticData((128, 128))
    a = data.image(np.random.default_rng([0, 5]))
    b = data.image(np.random.default_rng([0, 5]))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    clip = data.clip(np.random.default_rng(1), 3)
    assert clip.frames.shape == (3, 128, 128) and clip.labels.shape == (3, 128, 128)


def _memory_attention_maps(model, monkeypatch) -> list[torch.Tensor]:
    """Cross-attention weights (queries x memory tokens) of every memory-attention layer for a
    one-frame memory of random features."""
    import napari_sam2.modeling.attention as attention
    from napari_sam2.modeling.sam2 import SpatialMemory

    maps, attend = [], attention.RoPEAttention._attend
    cross = [layer.cross_attn_image for layer in model.memory_attention.layers]

    def spy(self, q, k, v):
        if any(self is c for c in cross):
            maps.append(torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1)[0, 0])
        return attend(self, q, k, v)

    monkeypatch.setattr(attention.RoPEAttention, "_attend", spy)
    side, c, mem = model.config.feat_size, model.config.d_model, model.config.mem_dim
    generator = torch.Generator().manual_seed(0)
    embedding = torch.randn(1, c, side, side, generator=generator)
    pos = torch.randn(1, c, side, side, generator=generator)
    memory = SpatialMemory(torch.randn(1, mem, side, side, generator=generator), torch.randn(1, mem, side, side, generator=generator), 0)
    with torch.no_grad():
        model.condition_on_memory(embedding, pos, [memory], [], 1)
    return maps


def test_local_memory_init_makes_each_position_attend_to_its_own_place(monkeypatch):
    """Trained from scratch, memory attention stays flat unless it starts local; after
    `localise_memory_attention` most of each query's weight is on the same place in memory."""
    from napari_sam2.training.init import init_from_scratch, localise_memory_attention

    torch.manual_seed(0)
    model = build_model("napari_sam2_micro", device="cpu").eval()
    tokens = model.config.feat_size**2
    for weights in _memory_attention_maps(model, monkeypatch):
        assert weights.shape == (tokens, tokens)
        assert float(weights.diagonal().mean()) < 5 / tokens  # flat: about uniform
    localise_memory_attention(model)
    for weights in _memory_attention_maps(model, monkeypatch):
        assert float(weights.diagonal().mean()) > 0.5
        assert float((weights.argmax(-1) == torch.arange(tokens)).float().mean()) > 0.7
    fresh = init_from_scratch(build_model("napari_sam2_micro", device="cpu").eval())
    for weights in _memory_attention_maps(fresh, monkeypatch):
        assert float(weights.diagonal().mean()) > 0.5


def test_trainer_applies_local_memory_init_and_records_it(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = build_model("napari_sam2_micro", device="cpu").eval()
    config = TrainConfig(steps=1, local_memory_init=True, eval_every=10, images_per_step=1)
    trainer = Trainer(model, SyntheticData((256, 256)), tmp_path, config, score=lambda m: 0.0)
    for weights in _memory_attention_maps(model, monkeypatch):
        assert float(weights.diagonal().mean()) > 0.5
    assert trainer.metadata()["config"]["local_memory_init"] is True


def test_a_tuned_model_keeps_its_base_models_input_blur(tmp_path):
    """Fine-tuning the built-in model keeps its blur before enlarging (metadata -> model ->
    metadata): the tuned model sees its images as the base model did."""
    model = build_model("sam2.1_hiera_test", device="cpu", image_size=128).eval()
    config = TrainConfig(steps=1, eval_every=10, images_per_step=1)
    assert "upscale_smoothing" not in Trainer(model, SyntheticData((96, 96)), tmp_path / "a", config, score=lambda m: 0.0).metadata()
    model.upscale_smoothing = 0.31
    meta = Trainer(model, SyntheticData((96, 96)), tmp_path / "b", config, score=lambda m: 0.0).metadata()
    assert meta["upscale_smoothing"] == 0.31
    path = tmp_path / "tuned.pt"
    torch.save({"model": model.state_dict()}, path)
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert load_model(path, device="cpu", image_size=128).upscale_smoothing == 0.31


def test_train_command_sizes_and_warmup(tmp_path, checkpoint):
    """`napari-sam2 train --image-size --synthetic-size --warmup`: the run trains at that input
    size on synthetic images of that side, records both, and its best.pt loads at that size."""
    import subprocess
    import sys

    run = tmp_path / "run"
    command = [
        "train", run, "--model", checkpoint, "--image-size", 128, "--synthetic", "--synthetic-size", 96,
        "--steps", 2, "--images-per-step", 1, "--objects-per-image", 2, "--video-every", 0,
        "--warmup", 1, "--eval-every", 2, "--device", "cpu",
    ]
    subprocess.run([sys.executable, "-m", "napari_sam2", *map(str, command)], check=True, timeout=600)
    meta = json.loads((run / "best.json").read_text())
    assert meta["image_size"] == 128 and meta["config"]["warmup"] == 1
    assert meta["training_data"].startswith("synthetic 96x96")
    assert load_model(run / "best.pt", device="cpu").image_size == 128  # from best.json
    assert load_model(run / "best.pt", device="cpu", image_size=256).image_size == 256
    (run / "best.json").write_text("not json")
    assert load_model(run / "best.pt", device="cpu").image_size == 256  # the preset's


def test_bf16_training_runs_its_forward_in_bf16_and_matches_fp32(tmp_path):
    """precision="bf16": the forward passes run in bf16 (a linear layer's output), the weights
    and optimiser stay fp32 and learn, and the step's loss is the fp32 loss within rounding."""
    losses, dtypes = {}, []
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = build_model("sam2.1_hiera_test", device="cpu", image_size=128).eval()
        before = model.sam_mask_decoder.iou_prediction_head.layers[0].weight.detach().clone()
        config = TrainConfig(steps=2, eval_every=10, images_per_step=1, video_every=1, clip_frames=2, precision=precision)
        trainer = Trainer(model, SyntheticData((96, 96)), tmp_path / precision, config, score=lambda m: 0.0)
        hook = model.sam_mask_decoder.iou_prediction_head.layers[0].register_forward_hook(
            lambda module, args, out: dtypes.append((precision, out.dtype))
        )
        stats = trainer.train_step()
        hook.remove()
        losses[precision] = stats["loss"]
        weight = model.sam_mask_decoder.iou_prediction_head.layers[0].weight
        assert weight.dtype == torch.float32 and not torch.equal(weight.detach(), before)
        assert "video_mask" in stats and np.isfinite(stats["loss"])
    assert {d for p, d in dtypes if p == "bf16"} == {torch.bfloat16}
    assert {d for p, d in dtypes if p == "fp32"} == {torch.float32}
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * losses["fp32"]
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
