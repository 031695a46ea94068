"""The on-disk embedding cache: keys, reuse across sessions and by the tracker, corrupt and
partial entries, concurrent writers, eviction, and `napari-sam2 embed`."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest
import torch

from napari_sam2 import build_model
from napari_sam2.engine.embedding_store import EmbeddingStore, embedding_key
from napari_sam2.engine.precompute import outward, precompute_embeddings
from napari_sam2.engine.predictor import ImagePredictor
from napari_sam2.engine.tracker import StackTracker
from napari_sam2.images.frames import FrameSource
from napari_sam2.images.model_input import prepare_image
from napari_sam2.images.normalization import Normalization


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("sam2.1_hiera_test", device="cpu", image_size=128)
    with torch.no_grad():  # objects present, so that tracked masks are not empty
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return m


def image(seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, (size, size)).astype(np.uint16)


class Encodes:
    """Counts the image encoder's calls of a model."""

    def __init__(self, model, monkeypatch):
        self.calls = 0
        original = model.encode_image

        def counted(x):
            self.calls += x.shape[0]
            return original(x)

        monkeypatch.setattr(model, "encode_image", counted)


def test_a_second_predictor_reads_the_same_embedding(model, tmp_path, monkeypatch):
    store = EmbeddingStore(tmp_path)
    plain = ImagePredictor(model, precision="fp32").set_image(image())
    first = ImagePredictor(model, precision="fp32", embedding_store=store).set_image(image())
    encodes = Encodes(model, monkeypatch)
    second = ImagePredictor(model, precision="fp32", embedding_store=EmbeddingStore(tmp_path)).set_image(image())
    assert encodes.calls == 0
    for emb in (first, second):
        assert torch.equal(emb.embedding, plain.embedding)
        assert all(torch.equal(a, b) for a, b in zip(emb.high_res, plain.high_res))
    assert emb.image_hw == plain.image_hw


def test_tracking_from_stored_embeddings_is_bit_identical(model, tmp_path):
    """Stored features keep the encoder's memory layout: read back, they track to exactly the
    logits computed ones give (a contiguous copy differed by a few ulps, enough to flip pixels
    where two objects tie)."""
    stack = np.stack([image(seed=s) for s in range(4)])

    def track(store):
        tracker = StackTracker(model, stack, precision="fp32", embedding_store=store)
        tracker.add_points(0, 1, np.array([[20.0, 20.0]]))
        tracker.add_box(2, 2, np.array([30.0, 30.0, 50.0, 50.0]))
        logits = {r.frame: r.logits for r in tracker.propagate("both")}
        tracker.frames.close()
        return logits

    computed = track(None)
    store = EmbeddingStore(tmp_path)
    track(store)  # fills the store
    from_store = track(store)
    assert store.hits >= len(stack)
    for frame, logits in computed.items():
        np.testing.assert_array_equal(from_store[frame], logits)


def test_bf16_embeddings_round_trip_exactly(model, tmp_path):
    store = EmbeddingStore(tmp_path)
    first = ImagePredictor(model, precision="bf16", embedding_store=store).set_image(image())
    again = ImagePredictor(model, precision="bf16", embedding_store=store).set_image(image())
    assert store.hits == 1 and first.high_res[0].dtype == torch.bfloat16
    assert torch.equal(first.high_res[0], again.high_res[0]) and torch.equal(first.embedding, again.embedding)


def test_pixels_normalisation_weights_and_precision_change_the_key(model, tmp_path):
    rgb = prepare_image(image(), "auto")
    key = embedding_key(model, rgb, "fp32")
    assert embedding_key(model, prepare_image(image(), "auto"), "fp32") == key
    assert embedding_key(model, prepare_image(image(seed=1), "auto"), "fp32") != key
    assert embedding_key(model, prepare_image(image(), Normalization.from_limits(0, 5000)), "fp32") != key
    assert embedding_key(model, rgb, "bf16") != key
    other = build_model("sam2.1_hiera_test", device="cpu", image_size=128)
    assert embedding_key(other, rgb, "fp32") != key  # same preset and name, other weights
    with torch.no_grad():  # weights changed in place (fine-tuning) are noticed too
        other.load_state_dict(model.state_dict())
    assert embedding_key(other, rgb, "fp32") == key
    with torch.no_grad():
        other.sam_mask_decoder.iou_token.weight.add_(1e-3)
    assert embedding_key(other, rgb, "fp32") != key


def test_a_changed_image_is_a_miss(model, tmp_path):
    store = EmbeddingStore(tmp_path)
    predictor = ImagePredictor(model, precision="fp32", embedding_store=store)
    predictor.set_image(image())
    changed = image()
    changed[10, 10] += 1
    predictor.set_image(changed)
    predictor.set_image(image(), normalization=Normalization.from_limits(0, 3000))
    assert (store.hits, store.writes) == (0, 3)


def _entry_files(store: EmbeddingStore) -> list:
    (entry,) = [path for path, _, _ in store.entries()]
    return [f for f in entry.rglob("*") if f.is_file() and f.name not in ("zarr.json", ".zattrs", ".zgroup", ".zarray")]


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_corrupt_entry_is_recomputed_not_used(model, tmp_path, damage):
    store = EmbeddingStore(tmp_path)
    plain = ImagePredictor(model, precision="fp32").set_image(image())
    ImagePredictor(model, precision="fp32", embedding_store=store).set_image(image())
    chunk = max(_entry_files(store), key=lambda f: f.stat().st_size)
    data = bytearray(chunk.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    elif damage == "truncate":
        chunk.write_bytes(bytes(data[: len(data) // 3]))
    else:
        chunk.unlink()
    again = ImagePredictor(model, precision="fp32", embedding_store=store).set_image(image())
    assert store.hits == 0 and store.writes == 2  # the damaged entry was discarded and rewritten
    assert torch.equal(again.embedding, plain.embedding)
    assert ImagePredictor(model, precision="fp32", embedding_store=store).set_image(image()) is not None
    assert store.hits == 1


def test_partial_writes_are_invisible(model, tmp_path):
    store = EmbeddingStore(tmp_path)
    (tmp_path / ".abc.123.tmp").mkdir()  # a writer that died before its rename
    (tmp_path / ".abc.123.tmp" / "zarr.json").write_text("{")
    assert store.entries() == [] and store.get("abc") is None


def test_a_failed_write_keeps_the_computed_embedding(model, tmp_path, monkeypatch):
    """A file removed under a write (or a full disk) costs the copy on disk, not the work."""
    from napari_sam2.engine import embedding_store

    def vanishing(folder, tensors):
        folder.mkdir()
        raise FileNotFoundError(2, "No such file or directory", str(folder / "embedding.partial"))

    monkeypatch.setattr(embedding_store, "_write_entry", vanishing)
    store = EmbeddingStore(tmp_path)
    plain = ImagePredictor(model, precision="fp32").set_image(image())
    with pytest.warns(UserWarning, match="Could not store an embedding"):
        stored = ImagePredictor(model, precision="fp32", embedding_store=store).set_image(image())
    assert torch.equal(stored.embedding, plain.embedding)
    assert store.entries() == [] and list(tmp_path.iterdir()) == []  # no entry, no leftover


def _write_many(folder: str, seed: int) -> None:
    store = EmbeddingStore(folder)
    for i in range(6):
        key = f"{i % 3:040d}"  # three keys, written by every process
        values = torch.full((1, 8, 4, 4), float(i % 3))
        store.put(key, values, [values * 2, values * 3])
        got = store.get(key)
        assert got is None or torch.equal(got[0], values)


def test_concurrent_writers_leave_complete_entries(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_many, args=(str(tmp_path), s)) for s in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    store = EmbeddingStore(tmp_path)
    assert len(store.entries()) == 3
    assert not [p for p in os.listdir(tmp_path) if p.endswith((".tmp", ".trash"))]
    for i in range(3):
        embedding, high_res = store.get(f"{i:040d}")
        assert torch.equal(embedding, torch.full((1, 8, 4, 4), float(i)))
        assert torch.equal(high_res[1], embedding * 3)


def test_least_recently_used_entries_go_first(tmp_path):
    store = EmbeddingStore(tmp_path)
    values = torch.zeros(1, 64, 32, 32)
    store.put("a" * 40, values, [values, values])
    size = store.nbytes
    store.max_bytes = int(2.5 * size)
    store.put("b" * 40, values + 1, [values, values])
    old = os.stat(store.path("a" * 40)).st_mtime
    os.utime(store.path("b" * 40), (old - 10, old - 10))  # b is older than a ...
    os.utime(store.path("a" * 40), (old - 5, old - 5))
    store.get("b" * 40)  # ... until it is read
    store.put("c" * 40, values + 2, [values, values])
    assert ("a" * 40 in store, "b" * 40 in store, "c" * 40 in store) == (False, True, True)
    assert store.nbytes <= store.max_bytes


def test_the_tracker_reads_frames_the_dock_embedded(model, tmp_path, monkeypatch):
    stack = np.stack([image(seed) for seed in range(4)])
    plain = StackTracker(model, stack, precision="fp32")
    plain.add_points(0, 1, [[30, 30]], [1])
    expected = [r.masks for r in plain.propagate()]
    store = EmbeddingStore(tmp_path)
    frames = FrameSource(stack, prefetch=0)
    # what the dock's background precompute does: nearest slices first
    assert precompute_embeddings(store, model, frames.get, outward(1, 4), "fp32") == 4
    encodes = Encodes(model, monkeypatch)
    cached = StackTracker(model, stack, precision="fp32", embedding_store=store)
    cached.add_points(0, 1, [[30, 30]], [1])
    got = [r.masks for r in cached.propagate()]
    assert encodes.calls == 0 and store.hits >= 4
    assert all(np.array_equal(a, b) for a, b in zip(got, expected)) and any(m.any() for m in got)


def test_outward_order():
    assert list(outward(2, 5)) == [2, 3, 1, 4, 0]
    assert list(outward(0, 3)) == [0, 1, 2]
    assert list(outward(4, 5)) == [4, 3, 2, 1, 0]


def test_embed_command_then_a_second_session_computes_nothing(tmp_path, monkeypatch, empty_cache):
    import tifffile

    from napari_sam2.api import propagate
    from napari_sam2.checkpoints.loading import load_model
    from napari_sam2.cli import main

    stack = np.stack([image(seed, 96) for seed in range(3)])
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    cache = tmp_path / "embeddings"
    assert main(["embed", str(tmp_path / "stack.tif"), "--cache", str(cache), "--precision", "fp32"]) == 0
    model = load_model()  # the built-in model, as the command used
    turns = ImagePredictor(model).orientations  # every orientation its clicks average over
    assert len(EmbeddingStore(cache).entries()) == 3 * turns
    plain = tmp_path / "plain"  # the image as it is only: what tracking reads
    args = ["embed", str(tmp_path / "stack.tif"), "--cache", str(plain), "--precision", "fp32", "--orientations", "1"]
    assert main(args) == 0
    assert len(EmbeddingStore(plain).entries()) == 3
    assert main(args[:-2]) == 0  # the images are there, their other orientations are not: embedded
    assert len(EmbeddingStore(plain).entries()) == 3 * turns
    encodes = Encodes(model, monkeypatch)
    labels = propagate(stack, {1: [{"frame": 0, "points": [[40, 40]], "labels": [1]}]}, model,
                       precision="fp32", embedding_cache=cache)
    assert encodes.calls == 0 and labels.shape == stack.shape
