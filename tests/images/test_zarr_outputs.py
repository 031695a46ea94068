"""Label outputs as OME-Zarr: the same labels as the TIFF outputs, frames on disk as they
finish, and napari's built-in reader opens them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_sam2 import build_model
from napari_sam2.api import propagate
from napari_sam2.cli import main
from napari_sam2.images.io import write_labels
from napari_sam2.images.zarr_io import create_label_zarr, is_zarr_path, read_label_zarr
from napari_sam2.progress import Cancelled
from napari_sam2.prompt_file import Prompt, PromptSession


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("sam2.1_hiera_test", device="cpu", image_size=128)
    with torch.no_grad():  # objects present, so that tracked masks are not empty
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return m


def stack(n: int = 5, size: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4000, (n, size, size)).astype(np.uint16)


def session() -> PromptSession:
    s = PromptSession()
    s.add(1, Prompt(frame=0, points=[[20, 20]], labels=[1]))
    s.add(3, Prompt(frame=0, box=[35, 30, 60, 58]))
    return s


def test_ome_zarr_metadata_and_chunks(tmp_path):
    array = create_label_zarr(tmp_path / "l.zarr", (4, 32, 48), first_axis="t")
    assert array.chunks == (1, 32, 48)
    attrs = json.loads((tmp_path / "l.zarr" / ".zattrs").read_text())
    (scale,) = attrs["multiscales"]
    assert scale["version"] == "0.4" and [a["name"] for a in scale["axes"]] == ["t", "y", "x"]
    assert scale["datasets"][0]["path"] == "0" and "image-label" in attrs
    assert is_zarr_path(tmp_path / "l.zarr") and not is_zarr_path(tmp_path / "l.tif")
    with pytest.raises(FileExistsError, match="overwrite"):
        create_label_zarr(tmp_path / "l.zarr", (4, 32, 48))


def test_propagate_to_zarr_equals_tiff_and_napari_opens_it(model, tmp_path, make_napari_viewer):
    tif = propagate(stack(), session(), model, out=tmp_path / "l.tif", precision="fp32")
    zarr_out = propagate(stack(), session(), model, out=tmp_path / "l.zarr", precision="fp32")
    expected = tifffile.imread(tmp_path / "l.tif")
    assert {1, 3} <= set(np.unique(expected)) and np.array_equal(np.asarray(tif), expected)
    assert np.array_equal(read_label_zarr(tmp_path / "l.zarr"), expected)
    assert np.array_equal(np.asarray(zarr_out), expected)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "l.zarr"), plugin="napari")
    data = layer.data[0] if layer.multiscale else layer.data
    assert np.array_equal(np.asarray(data), expected)


def test_an_interrupted_propagation_keeps_its_frames(model, tmp_path):
    calls = []

    def stop_after_two() -> bool:
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(Cancelled):
        propagate(stack(), session(), model, out=tmp_path / "l.zarr", precision="fp32",
                  direction="forward", should_stop=stop_after_two)
    done = read_label_zarr(tmp_path / "l.zarr")
    assert done[0].any() and done[1].any() and not done[2:].any()


def test_cli_prompt_and_propagate_write_zarr_like_tiff(tmp_path, checkpoint):
    tifffile.imwrite(tmp_path / "movie.tif", stack(), photometric="minisblack")
    session().save(tmp_path / "p.json")
    common = ["--prompts", str(tmp_path / "p.json"), "--model", str(checkpoint), "--precision", "fp32"]
    for command in ("prompt", "propagate"):
        for suffix in ("tif", "zarr"):
            out = tmp_path / f"{command}.{suffix}"
            assert main([command, str(tmp_path / "movie.tif"), *common, "--out", str(out), "--axis", "0"]) == 0
        expected = tifffile.imread(tmp_path / f"{command}.tif")
        assert expected.any() and np.array_equal(read_label_zarr(tmp_path / f"{command}.zarr"), expected)
    again = main(["propagate", str(tmp_path / "movie.tif"), *common, "--out", str(tmp_path / "propagate.zarr")])
    assert again == 2  # exists, no --overwrite
    assert main(["propagate", str(tmp_path / "movie.tif"), *common, "--out", str(tmp_path / "propagate.zarr"), "--overwrite"]) == 0


def test_write_labels_chooses_zarr_by_name(tmp_path):
    labels = np.arange(6, dtype=np.uint32).reshape(2, 3)
    write_labels(tmp_path / "a.zarr", labels)
    assert np.array_equal(read_label_zarr(tmp_path / "a.zarr"), labels)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
