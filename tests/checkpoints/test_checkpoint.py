"""Loading checkpoints: variants recognised from tensors, and a clear error for every bad file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from napari_sam2 import CheckpointError, build_model, load_model
from napari_sam2.checkpoints.files import expected_shapes, identify_variant, read_checkpoint
from napari_sam2.modeling import PRESETS

TEST_PRESET = "sam2.1_hiera_test"


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return build_model(TEST_PRESET, device="cpu")


@pytest.fixture()
def good_file(tmp_path, small_model) -> Path:
    path = tmp_path / "weights.pt"
    torch.save({"model": small_model.state_dict()}, path)
    return path


def _meta_state(preset: str) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in expected_shapes(PRESETS[preset]).items()}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_variant_is_recognised_from_its_tensors(preset):
    assert identify_variant(_meta_state(preset)).name == preset


def test_round_trip_gives_identical_outputs(good_file, small_model):
    loaded = load_model(good_file, device="cpu")
    assert loaded.config.name == TEST_PRESET and not loaded.training
    image = torch.randn(1, 3, 256, 256)
    with torch.inference_mode():
        a = small_model.encode_image(image).embedding
        b = loaded.encode_image(image).embedding
    assert torch.equal(a, b)


def test_bare_state_dict_and_legacy_format_load(tmp_path, small_model):
    bare = tmp_path / "bare.pt"
    torch.save(small_model.state_dict(), bare)
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": small_model.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    for path in (bare, legacy):
        assert load_model(path, device="cpu").config.name == TEST_PRESET


def test_preset_with_matching_checkpoint(good_file):
    assert load_model(TEST_PRESET, checkpoint=good_file, device="cpu").config.name == TEST_PRESET


def test_dtype_and_image_size_are_applied(good_file):
    model = load_model(good_file, device="cpu", dtype="bf16", image_size=128)
    assert model.dtype == torch.bfloat16 and model.image_size == 128
    assert model.sam_prompt_encoder.image_embedding_size == (8, 8)


def _error(path, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        load_model(path, device="cpu", **kwargs)
    return str(info.value)


def test_missing_file(tmp_path):
    assert "No checkpoint file at" in _error(tmp_path / "nowhere.pt")


def test_directory(tmp_path, good_file):
    message = _error(tmp_path)
    assert "is a folder" in message and "weights.pt" in message


def test_empty_file(tmp_path):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    path.write_bytes(b"")
    assert "empty (0 bytes)" in _error(path)


@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_truncated_file(tmp_path, good_file, fraction):
    data = good_file.read_bytes()
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    path.write_bytes(data[: int(len(data) * fraction)])
    message = _error(path)
    assert "truncated or corrupt" in message
    assert "156,008,466" in message, "the size of the official file should be quoted"


def test_truncated_legacy_file(tmp_path, small_model):
    path = tmp_path / "legacy.pt"
    torch.save({"model": small_model.state_dict()}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:5000])
    assert "truncated or corrupt" in _error(path)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "web page"),
        (b'{"model": "sam2"}', "JSON"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "Git LFS pointer"),
        (b"just some text that is not a checkpoint", "not a PyTorch checkpoint"),
        (b"\x40\x00\x00\x00\x00\x00\x00\x00" + b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', "safetensors"),
    ],
)
def test_not_a_checkpoint(tmp_path, content, expected):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    assert expected in _error(path)


def test_zip_that_is_not_a_checkpoint(tmp_path):
    import zipfile

    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert "zip archive that is not a PyTorch checkpoint" in _error(path)


class _RunsCode:
    """A pickle payload that would create a file if it were ever unpickled unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "payload": _RunsCode(marker)}, path)
    message = _error(path)
    assert "Refused to load" in message and "weights_only" in message
    assert not marker.exists(), "the payload ran"


def test_raw_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(_RunsCode(marker), protocol=2))
    assert "Refused to load" in _error(path)
    assert not marker.exists()


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    assert "holds a list, not a state dict" in _error(path)
    torch.save({"epoch": 3, "lr": 0.1}, path)
    assert "holds no tensors" in _error(path)


def test_wrong_variant_for_preset_names_the_right_one(tmp_path):
    state = {k: torch.zeros(s) for k, s in expected_shapes(PRESETS[TEST_PRESET]).items()}
    state.pop("no_obj_embed_spatial")  # makes it look like a SAM 2.0 file
    path = tmp_path / "w.pt"
    torch.save({"model": state}, path)
    message = _error(path)
    assert "missing keys" in message and "no_obj_embed_spatial" in message
    assert "closest preset is sam2.1_hiera_test" in message


def test_preset_name_and_other_variant(tmp_path, good_file):
    message = _error("sam2.1_hiera_tiny", checkpoint=good_file)
    assert "does not match the architecture of sam2.1_hiera_tiny" in message
    assert "holds sam2.1_hiera_test weights" in message


def test_wrong_shape_is_named(tmp_path, small_model):
    state = dict(small_model.state_dict())
    state["no_mem_embed"] = torch.zeros(1, 1, 128)
    path = tmp_path / "w.pt"
    torch.save({"model": state}, path)
    message = _error(path)
    assert "wrong shape" in message and "no_mem_embed (1, 1, 128) (expected (1, 1, 256))" in message


@pytest.mark.parametrize(
    "keys, expected",
    [
        ({"module.image_encoder.trunk.pos_embed": (1, 2)}, "module."),
        ({"image_encoder.patch_embed.proj.weight": (768, 3, 16, 16), "image_encoder.neck.0.weight": (1,)}, "SAM 1"),
        ({"vision_encoder.backbone.weight": (3,)}, "Hugging Face Transformers"),
        ({"fc.weight": (10, 10)}, "not a SAM 2 checkpoint"),
    ],
)
def test_foreign_formats(tmp_path, keys, expected):
    path = tmp_path / "w.pt"
    torch.save({k: torch.zeros(s) for k, s in keys.items()}, path)
    assert expected in _error(path)


def test_preset_without_weights_in_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path))
    monkeypatch.setenv("NAPARI_SAM2_OFFLINE", "1")  # say what to put where instead of downloading
    message = _error("sam2.1_hiera_small")
    assert str(tmp_path / "sam2.1_hiera_small.pt") in message
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_small.pt" in message


def test_preset_without_official_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match="no official weights"):
        load_model(TEST_PRESET, device="cpu")


def test_preset_found_in_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path))
    tiny = build_model("sam2.1_hiera_tiny", device="cpu")
    torch.save({"model": tiny.state_dict()}, tmp_path / "sam2.1_hiera_tiny.pt")
    loaded = load_model("sam2.1_hiera_tiny", device="cpu")
    assert loaded.config.name == "sam2.1_hiera_tiny"
    assert torch.equal(loaded.no_obj_ptr, tiny.no_obj_ptr)


def test_unknown_name():
    with pytest.raises(KeyError, match="neither a known preset nor an existing file"):
        load_model("sam3_hiera_huge", device="cpu")


def test_read_checkpoint_keeps_extra_entries(tmp_path, small_model):
    path = tmp_path / "w.pt"
    torch.save({"model": small_model.state_dict(), "config": {"image_size": 256}}, path)
    state, extra = read_checkpoint(path)
    assert extra == {"config": {"image_size": 256}} and len(state) == len(small_model.state_dict())


def test_loading_and_predicting_never_import_torch_dynamo(good_file):
    """torch._dynamo brings triton, whose LLVM crashes a process that already has an OpenGL
    context: a model loaded from a napari viewer must not import it."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "from napari_sam2 import load_model, ImagePredictor\n"
        f"model = load_model({str(good_file)!r}, device='cpu')\n"
        "p = ImagePredictor(model, precision='fp32')\n"
        "p.set_image(np.random.default_rng(0).random((64, 64), dtype=np.float32))\n"
        "p.predict(points=[[10, 20]])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('torch._dynamo', 'triton'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
