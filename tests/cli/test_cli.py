"""The command line, run in a subprocess on real files, and the prompts file it replays."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_sam2.api import propagate, run_session, segment_objects
from napari_sam2.prompt_file import Prompt, PromptSession, PromptsFileError


def cli(*args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "napari_sam2", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def stack(n=6, size=64) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 4000, (n, size, size)).astype(np.uint16)


def test_help_is_instant_and_imports_no_torch():
    code = "import sys; from napari_sam2.cli import build_parser; build_parser().format_help(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    for command in ("segment", "prompt", "propagate", "models", "benchmark", "demo"):
        assert "usage: napari-sam2" in cli(command, "--help").stdout


def test_models_lists_presets_and_recognises_a_file(checkpoint):
    assert "sam2.1_hiera_large" in cli("models").stdout
    assert "sam2.1_hiera_test" in cli("models", checkpoint).stdout


def test_segment_folder_and_stack(tmp_path, checkpoint):
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", stack(1)[0])
    tifffile.imwrite(folder / "b.tif", stack(1)[0] // 2)
    tifffile.imwrite(tmp_path / "zstack.tif", stack(3))
    out = tmp_path / "out"
    args = ["--model", checkpoint, "--out", out, "--points-per-side", 4, "--pred-iou-thresh", 0, "--stability-score-thresh", 0]
    cli("segment", folder, tmp_path / "zstack.tif", *args)
    assert tifffile.imread(out / "a_labels.tif").shape == (64, 64)
    assert tifffile.imread(out / "b_labels.tif").dtype == np.uint32
    assert tifffile.imread(out / "zstack_labels.tif").shape == (3, 64, 64)
    again = cli("segment", folder, *args, check=False)
    assert again.returncode == 2 and "exists; pass --overwrite" in again.stderr
    cli("segment", folder, *args, "--overwrite")
    # OME-Zarr folders hold the same labels, and are outputs, never inputs, on the next run
    cli("segment", folder, tmp_path / "zstack.tif", *args, "--format", "zarr")
    from napari_sam2.images.zarr_io import read_label_zarr

    for name in ("a", "b", "zstack"):
        np.testing.assert_array_equal(read_label_zarr(out / f"{name}_labels.zarr"), tifffile.imread(out / f"{name}_labels.tif"))
    again = cli("segment", folder, *args, "--format", "zarr", check=False)
    assert again.returncode == 2 and "exists; pass --overwrite" in again.stderr
    # averaged over orientations: what AutomaticMaskGenerator(orientations=4) gives
    from napari_sam2 import AutomaticMaskGenerator, load_model

    cli("segment", folder / "a.tif", *args, "--overwrite", "--orientations", "4", "--precision", "fp32")
    generator = AutomaticMaskGenerator(
        load_model(checkpoint), points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0, orientations=4,
        precision="fp32",
    )
    np.testing.assert_array_equal(tifffile.imread(out / "a_labels.tif"), generator.generate_labels(stack(1)[0]))


def test_propagate_streams_a_label_stack(tmp_path, checkpoint):
    tifffile.imwrite(tmp_path / "movie.tif", stack())
    session = PromptSession()
    session.add(1, Prompt(frame=2, points=[[20, 20]], labels=[1]))
    session.add(4, Prompt(frame=2, box=[35, 30, 60, 58]))
    session.save(tmp_path / "prompts.json")
    out = tmp_path / "labels.tif"
    cli("propagate", tmp_path / "movie.tif", "--prompts", tmp_path / "prompts.json", "--out", out, "--model", checkpoint, "--precision", "fp32")
    labels = tifffile.imread(out)
    assert labels.shape == (6, 64, 64)
    assert set(np.unique(labels)) <= {0, 1, 4} and all((labels[f] > 0).any() for f in range(6))
    assert not (tmp_path / "labels.tif.part").exists()
    # the same prompts through the Python API give the same labels
    from napari_sam2 import load_model

    expected = propagate(stack(), session, load_model(checkpoint, device="cpu"), precision="fp32")
    # Random weights put many logits next to 0, where the summation order of another process's
    # CPU kernels can flip a pixel: allow one in a thousand.
    assert (labels != expected).mean() < 1e-3


def test_prompt_from_csv(tmp_path, checkpoint):
    tifffile.imwrite(tmp_path / "image.tif", stack(1)[0])
    (tmp_path / "clicks.csv").write_text("object,frame,x,y,label\n1,0,20,20,1\n1,0,30,30,0\n2,0,50,45,1\n")
    cli("prompt", tmp_path / "image.tif", "--prompts", tmp_path / "clicks.csv", "--out", tmp_path / "l.tif", "--model", checkpoint)
    labels = tifffile.imread(tmp_path / "l.tif")
    assert labels.shape == (64, 64) and set(np.unique(labels)) <= {0, 1, 2}


def test_limits_replace_the_auto_rule(tmp_path, checkpoint):
    """--limits LOW HIGH maps intensities as napari's contrast limits do, for the whole stack; the
    labels are those of the API given the same limits."""
    from napari_sam2 import load_model

    image = stack(1)[0]
    tifffile.imwrite(tmp_path / "image.tif", image)
    (tmp_path / "clicks.csv").write_text("object,frame,x,y,label\n1,0,20,20,1\n2,0,50,45,1\n")
    out = tmp_path / "limits.tif"
    cli("prompt", tmp_path / "image.tif", "--prompts", tmp_path / "clicks.csv", "--out", out,
        "--model", checkpoint, "--precision", "fp32", "--limits", 0, 1500)
    session = PromptSession.load(tmp_path / "clicks.csv")
    session.normalization = {"method": "limits", "low": 0.0, "high": 1500.0}
    model = load_model(checkpoint, device="cpu")
    expected = run_session(session, image, mode="segment", model=model, precision="fp32")
    assert (tifffile.imread(out) != expected).mean() < 1e-3
    session.normalization = {"method": "auto"}
    auto = run_session(session, image, mode="segment", model=model, precision="fp32")
    assert (auto != expected).mean() > 0.01  # the limits were used
    # --gamma with the limits: what the API gives with the same limits and gamma
    out = tmp_path / "gamma.tif"
    cli("prompt", tmp_path / "image.tif", "--prompts", tmp_path / "clicks.csv", "--out", out,
        "--model", checkpoint, "--precision", "fp32", "--limits", 0, 1500, "--gamma", 0.5)
    session.normalization = {"method": "limits", "low": 0.0, "high": 1500.0, "gamma": 0.5}
    brightened = run_session(session, image, mode="segment", model=model, precision="fp32")
    assert (tifffile.imread(out) != brightened).mean() < 1e-3 and (brightened != expected).mean() > 0.01
    bad = cli("segment", tmp_path / "image.tif", "--out", tmp_path / "o", "--limits", 9, 9, check=False)
    assert bad.returncode == 2 and "LOW must be below HIGH" in bad.stderr and "Traceback" not in bad.stderr


def test_bad_arguments_give_one_line_errors(tmp_path, checkpoint):
    result = cli("propagate", tmp_path / "missing.tif", "--prompts", tmp_path / "p.json", "--out", tmp_path / "o.tif", check=False)
    assert result.returncode == 2 and "napari-sam2: error" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "bad.json").write_text('{"format": "something-else"}')
    tifffile.imwrite(tmp_path / "movie.tif", stack())
    result = cli("propagate", tmp_path / "movie.tif", "--prompts", tmp_path / "bad.json", "--out", tmp_path / "o.tif", "--model", checkpoint, check=False)
    assert result.returncode == 2 and "not a napari-sam2 prompts file" in result.stderr
    result = cli("models", tmp_path / "nothing.pt", check=False)
    assert result.returncode == 2 and "No checkpoint file" in result.stderr
    assert cli("segment", check=False).returncode == 2  # argparse: missing arguments


def test_prompts_file_round_trip_and_validation(tmp_path):
    session = PromptSession(image={"path": "movie.tif", "stack_axis": 0}, model={"name": "sam2.1_hiera_tiny", "precision": "fp32"})
    session.add(3, Prompt(frame=1, points=[[1.5, 2.5]], labels=[1]))
    session.add(3, Prompt(frame=4, box=[0, 0, 5, 5]))
    session.add(7, Prompt(frame=0, mask={"size": [2, 2], "counts": [1, 2, 1]}))
    path = session.save(tmp_path / "p.json")
    loaded = PromptSession.load(path)
    assert loaded.objects == session.objects and loaded.model == session.model
    data = json.loads(path.read_text())
    assert data["format"] == "napari-sam2-prompts" and data["version"] == 1
    data["objects"][0]["prompts"][0]["labels"] = [1, 0]
    with pytest.raises(PromptsFileError, match="1 points but 2 labels"):
        PromptSession.from_dict(data)
    data["objects"][0]["prompts"][0] = {"frame": 0}
    with pytest.raises(PromptsFileError, match="give points, a box or a mask"):
        PromptSession.from_dict(data)
    with pytest.raises(PromptsFileError, match="more than once"):
        PromptSession.from_dict({"format": "napari-sam2-prompts", "objects": [{"id": 1, "prompts": [{"box": [0, 0, 2, 2]}]}] * 2})


def test_replay_a_session_gives_identical_labels(tmp_path, checkpoint):
    from napari_sam2 import load_model

    tifffile.imwrite(tmp_path / "image.tif", stack(1)[0])
    session = PromptSession(image={"path": "image.tif"}, model={"checkpoint": str(checkpoint), "precision": "fp32"}, mode="segment")
    session.add(1, Prompt(points=[[20, 20]], labels=[1]))
    session.add(2, Prompt(box=[35, 30, 60, 58]))
    session.save(tmp_path / "session.json")
    first = run_session(tmp_path / "session.json")
    second = run_session(PromptSession.load(tmp_path / "session.json"))
    np.testing.assert_array_equal(first, second)
    direct = segment_objects(stack(1)[0], session, load_model(checkpoint, device="cpu"), "fp32")
    np.testing.assert_array_equal(first, direct)
    assert set(np.unique(first)) <= {0, 1, 2} and (first > 0).any()


def test_cli_reference_is_up_to_date(monkeypatch):
    import importlib.util
    from pathlib import Path

    monkeypatch.setenv("COLUMNS", "100")
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gen_cli_docs", root / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (root / "docs" / "cli.md").read_text() == module.render(), "run: COLUMNS=100 python scripts/gen_cli_docs.py"
