"""Batch processing: one machine (sequential and dynamically batched) and a real dask
LocalCluster of two worker processes give the same label files; failures, resume, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2.batch import BatchError, run_batch
from napari_sam2.prompt_file import Prompt, PromptSession
from napari_sam2.synthetic import nuclei_image, timelapse

# A small grid and loose filters: random weights give few confident masks.
AMG = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.5, stability_score_offset=0.05)
N_IMAGES = 20


def _write_inputs(folder: Path) -> None:
    folder.mkdir(parents=True)
    for i in range(N_IMAGES):
        shape = (128, 128) if i % 4 else (96, 128)  # two sizes: two encoder groups
        tifffile.imwrite(folder / f"img{i:02d}.tif", nuclei_image(shape, 5, seed=i)[0])
    for i in range(2):
        movie = timelapse(3, (128, 128), 4, seed=10 + i)[0]
        tifffile.imwrite(folder / f"movie{i}.tif", movie, photometric="minisblack")
    whole = (folder / "img01.tif").read_bytes()
    (folder / "broken.tif").write_bytes(whole[: len(whole) // 3])  # a truncated TIFF


def _labels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: tifffile.imread(p) for p in sorted(folder.glob("*_labels.tif"))}


def _assert_same_outputs(a: Path, b: Path) -> None:
    left, right = _labels(a), _labels(b)
    assert sorted(left) == sorted(right)
    for name in left:
        assert np.array_equal(left[name], right[name]), name


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("batch") / "inputs"
    _write_inputs(folder)
    return folder


@pytest.fixture(scope="module")
def sequential(inputs, checkpoint, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("sequential")
    return out, run_batch(inputs, out, model=checkpoint, batch_size=1, **AMG)


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as local, distributed.Client(local) as client:
        yield client


def test_single_machine_run_writes_every_output_and_a_summary(sequential, inputs):
    out, summary = sequential
    assert len(summary.results) == N_IMAGES + 3
    assert [r.input for r in summary.results] == sorted(r.input for r in summary.results)
    assert len(summary.ok) == N_IMAGES + 2 and summary.skipped == []
    (bad,) = summary.failed
    assert Path(bad.input).name == "broken.tif" and "broken.tif" in bad.error
    assert not Path(bad.output).exists()
    labels = _labels(out)
    assert labels["img01_labels.tif"].shape == (128, 128) and labels["img00_labels.tif"].shape == (96, 128)
    assert labels["movie0_labels.tif"].shape == (3, 128, 128)
    assert labels["img01_labels.tif"].dtype == np.uint32
    assert sum(r.objects for r in summary.ok) > 0
    rows = (out / "batch_summary.csv").read_text().splitlines()
    assert rows[0] == "input,output,status,objects,seconds,error,worker" and len(rows) == N_IMAGES + 4
    data = json.loads((out / "batch_summary.json").read_text())
    assert data["counts"] == {"ok": N_IMAGES + 2, "failed": 1, "skipped": 0}
    assert data["settings"]["amg"]["points_per_side"] == 4
    assert not list(out.glob(".*.part"))


def test_output_equals_segment_everything(sequential, inputs, checkpoint):
    from napari_sam2 import load_model
    from napari_sam2.api import segment_everything

    out, _ = sequential
    image = tifffile.imread(inputs / "img05.tif")
    expected = segment_everything(image, load_model(checkpoint, device="cpu"), **AMG)
    assert np.array_equal(tifffile.imread(out / "img05_labels.tif"), expected)


def test_dynamic_batching_gives_the_same_labels(sequential, inputs, checkpoint, tmp_path):
    summary = run_batch(inputs, tmp_path, model=checkpoint, batch_size=4, **AMG)
    assert len(summary.ok) == N_IMAGES + 2
    _assert_same_outputs(sequential[0], tmp_path)
    auto = run_batch([inputs / "img01.tif", inputs / "img02.tif"], tmp_path / "auto", model=checkpoint, **AMG)
    assert len(auto.ok) == 2  # batch size chosen from free memory


def test_rerun_skips_completed_inputs_and_retries_failures(inputs, checkpoint, tmp_path):
    files = [inputs / "img03.tif", inputs / "img04.tif", inputs / "movie0.tif", inputs / "broken.tif"]
    first = run_batch(files, tmp_path, model=checkpoint, **AMG)
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*_labels.tif")}
    done = []
    again = run_batch(files, tmp_path, model=checkpoint, progress=lambda d, t: done.append((d, t)), **AMG)
    assert [r.status for r in again.results] == ["skipped", "skipped", "skipped", "failed"]  # input order
    assert [r.objects for r in again.skipped] == [r.objects for r in first.ok]
    assert done == [(1, 1)]  # only the failed input was tried again
    assert stamps == {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*_labels.tif")}
    # Other settings do not reuse outputs: an error unless overwrite.
    with pytest.raises(FileExistsError, match="overwrite"):
        run_batch(files[:2], tmp_path, model=checkpoint, points_per_side=2)
    redone = run_batch(files[:2], tmp_path, model=checkpoint, overwrite=True, points_per_side=2)
    assert [r.status for r in redone.results] == ["ok", "ok"]


def test_a_changed_input_is_processed_again(inputs, checkpoint, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(inputs / "img03.tif", source / "a.tif")
    shutil.copy(inputs / "img04.tif", source / "b.tif")
    run_batch(source, tmp_path / "out", model=checkpoint, **AMG)
    tifffile.imwrite(source / "b.tif", tifffile.imread(inputs / "img06.tif"))
    again = run_batch(source, tmp_path / "out", model=checkpoint, **AMG)
    assert [r.status for r in again.results] == ["skipped", "ok"]
    # Outputs written beside the inputs are not taken as inputs on the next run.
    run_batch(source / "a.tif", source, model=checkpoint, **AMG)
    assert [r.status for r in run_batch(source, source, model=checkpoint, **AMG).results] == ["skipped", "ok"]


def test_cluster_gives_the_single_machine_outputs(sequential, inputs, checkpoint, cluster, tmp_path):
    summary = run_batch(inputs, tmp_path, model=checkpoint, client=cluster, **AMG)
    assert [r.status for r in summary.results] == [r.status for r in sequential[1].results]
    assert {r.worker for r in summary.ok} == set(cluster.scheduler_info()["workers"])
    _assert_same_outputs(sequential[0], tmp_path)
    # Each worker loaded the model once and reused it for all its tasks.
    loads = cluster.run(lambda: __import__("napari_sam2.batch.models", fromlist=["loads"]).loads)
    assert sorted(loads.values()) == [1, 1]


def test_a_lost_worker_loses_no_input(sequential, inputs, checkpoint, cluster, tmp_path):
    pids = cluster.run(os.getpid)
    killed = []

    def kill_a_busy_worker(done: int, total: int) -> None:
        if done == 3 and not killed:
            busy = [a for a, keys in cluster.processing().items() if keys] or list(pids)
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])

    summary = run_batch(inputs, tmp_path, model=checkpoint, client=cluster, progress=kill_a_busy_worker, **AMG)
    assert killed
    assert len(summary.ok) == N_IMAGES + 2 and len(summary.failed) == 1
    _assert_same_outputs(sequential[0], tmp_path)
    assert not list(tmp_path.glob(".*.part"))  # what the killed worker was writing is gone


def test_propagate_stacks_on_cluster_and_locally(inputs, checkpoint, cluster, tmp_path):
    stacks = sorted(inputs.glob("movie*.tif"))
    session = PromptSession()
    session.add(1, Prompt(frame=1, points=[[64.0, 64.0]]))
    session.add(2, Prompt(frame=0, box=[10.0, 10.0, 60.0, 50.0]))
    own = session.save(tmp_path / "movie1.prompts.json")
    own_copy = stacks[1].parent / own.name
    shutil.copy(own, own_copy)  # movie1 has its own prompts; movie0 is seeded from frame 0
    try:
        local = run_batch(stacks, tmp_path / "local", mode="propagate", model=checkpoint, **AMG)
        remote = run_batch(stacks, tmp_path / "remote", mode="propagate", model=checkpoint, client=cluster, **AMG)
    finally:
        own_copy.unlink()
    assert [r.status for r in local.results] == ["ok", "ok"] == [r.status for r in remote.results]
    assert local.results[1].objects == 2
    _assert_same_outputs(tmp_path / "local", tmp_path / "remote")
    tracked = tifffile.imread(tmp_path / "local" / "movie1_labels.tif")
    assert tracked.shape == (3, 128, 128) and set(np.unique(tracked)) <= {0, 1, 2}


def test_prompts_mode_matches_segment_objects(inputs, checkpoint, tmp_path):
    from napari_sam2 import load_model
    from napari_sam2.api import segment_objects

    source = tmp_path / "in"
    source.mkdir()
    for name in ("img01", "img02", "img05"):
        shutil.copy(inputs / f"{name}.tif", source / f"{name}.tif")
    shared = PromptSession()
    shared.add(1, Prompt(points=[[30.0, 40.0]]))
    shared.add(2, Prompt(points=[[90.0, 90.0]]))
    shared.add(3, Prompt(box=[5.0, 70.0, 60.0, 120.0]))
    shared.add(4, Prompt(points=[[100.0, 20.0], [110.0, 30.0]], labels=[1, 0]))
    shared.save(tmp_path / "shared.json")
    own = PromptSession()
    own.add(7, Prompt(points=[[64.0, 64.0]]))
    own.save(source / "img02.prompts.json")
    summary = run_batch(source, tmp_path / "out", mode="prompts", prompts=tmp_path / "shared.json",
                        model=checkpoint, batch_size=2)
    assert [r.status for r in summary.results] == ["ok", "ok", "ok"]
    model = load_model(checkpoint, device="cpu")
    for name, session in (("img01", shared), ("img02", own), ("img05", shared)):
        expected = segment_objects(tifffile.imread(source / f"{name}.tif"), session, model)
        assert np.array_equal(tifffile.imread(tmp_path / "out" / f"{name}_labels.tif"), expected), name
    own.add(8, Prompt(box=[10.0, 10.0, 50.0, 50.0]))
    own.save(source / "img02.prompts.json")  # a changed prompts file redoes its image
    again = run_batch(source, tmp_path / "out", mode="prompts", prompts=tmp_path / "shared.json", model=checkpoint)
    assert [r.status for r in again.results] == ["skipped", "ok", "skipped"]
    assert set(np.unique(tifffile.imread(tmp_path / "out" / "img02_labels.tif"))) <= {0, 7, 8}
    missing = run_batch(source / "img01.tif", tmp_path / "none", mode="prompts", model=checkpoint)
    assert "no prompts" in missing.failed[0].error


def test_bad_requests_are_one_line_errors(inputs, tmp_path):
    with pytest.raises(BatchError, match="mode must be"):
        run_batch(inputs, tmp_path, mode="guess")
    with pytest.raises(BatchError, match="unknown segment-everything parameters"):
        run_batch(inputs, tmp_path, points_per_sidee=4)
    with pytest.raises(BatchError, match="No such file"):
        run_batch(tmp_path / "missing", tmp_path)
    with pytest.raises(BatchError, match="No images"):
        run_batch(tmp_path, tmp_path / "out")


def test_output_names_stay_unique_and_outputs_are_not_inputs(tmp_path):
    from napari_sam2.batch.inputs import find_inputs
    from napari_sam2.batch.plan import output_names

    names = output_names([Path("/d/plate1/A01.tif"), Path("/d/plate2/A01.tif"), Path("/d/plate2/B01.tif")])
    assert names == ["plate1__A01_labels.tif", "plate2__A01_labels.tif", "B01_labels.tif"]
    (tmp_path / "a.tif").write_bytes(b"")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_labels.tif").write_bytes(b"")
    found = find_inputs([str(tmp_path / "**" / "*.tif")], exclude=tmp_path / "out")
    assert found == [(tmp_path / "a.tif").resolve()]


def test_batch_size_follows_free_memory(checkpoint):
    from napari_sam2 import load_model
    from napari_sam2.batch.memory import auto_batch_size, bytes_per_image

    model = load_model(checkpoint, device="cpu")
    per_image = bytes_per_image(model, (512, 512))
    assert auto_batch_size(model, (512, 512), free=0) == 1
    assert auto_batch_size(model, (512, 512), free=6 * per_image) == 3
    assert auto_batch_size(model, (512, 512), free=1000 * per_image) == 4  # CPU cap


def test_importing_the_package_loads_no_dask():
    code = (
        "import sys, napari_sam2, napari_sam2.batch; napari_sam2.batch.run_batch; "
        "print([m for m in sys.modules if m.startswith(('dask', 'distributed'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_command_line_batch(inputs, checkpoint, tmp_path):
    files = [inputs / "img03.tif", inputs / "broken.tif"]
    args = [sys.executable, "-m", "napari_sam2", "batch", *files, "--out", tmp_path, "--model", checkpoint,
            "--points-per-side", "4", "--pred-iou-thresh", "0", "--batch-size", "2"]
    first = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=600)
    assert first.returncode == 1, first.stderr  # an input failed
    assert "1 ok, 1 failed" in first.stdout and "broken.tif" in first.stdout
    assert (tmp_path / "img03_labels.tif").exists() and (tmp_path / "batch_summary.csv").exists()
    again = subprocess.run(list(map(str, args[:5] + args[6:])), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "1 skipped" in again.stdout
    nothing = [sys.executable, "-m", "napari_sam2", "batch", str(tmp_path / "nothing"), "--out", str(tmp_path)]
    bad = subprocess.run(nothing, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "No such file" in bad.stderr


def test_a_second_batch_on_a_held_folder_touches_nothing(inputs, tmp_path):
    """While another batch holds the output folder, a batch stops before deleting the other's
    unfinished (.part) outputs or planning anything (the two-process run: test_bad_input.py)."""
    from napari_sam2.batch.records import FOLDER
    from napari_sam2.checkpoints.file_lock import exclusive

    out = tmp_path / "out"
    (out / FOLDER).mkdir(parents=True)
    pending = out / ".a_labels.tif.1234abcd.part"  # the running batch's output being written
    pending.write_bytes(b"half")
    with exclusive(out / FOLDER / "running.lock"):
        with pytest.raises(BatchError, match="another batch is writing to"):
            run_batch(inputs, out, points_per_side=4)
    assert pending.read_bytes() == b"half" and not (out / "batch_summary.csv").exists()


def test_an_output_that_is_an_input_is_refused(tmp_path):
    import tifffile

    image = np.zeros((64, 64), np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "a_labels.tif", image)
    before = (tmp_path / "a_labels.tif").read_bytes()
    for overwrite in (False, True):
        with pytest.raises(BatchError, match="would replace the input"):
            run_batch([tmp_path / "a.tif", tmp_path / "a_labels.tif"], tmp_path, overwrite=overwrite)
    assert (tmp_path / "a_labels.tif").read_bytes() == before


def test_zarr_outputs_equal_the_tiff_ones_resume_and_clean_up(inputs, checkpoint, tmp_path):
    import zarr

    from napari_sam2.images.zarr_io import create_label_zarr, read_label_zarr

    files = [inputs / "img00.tif", inputs / "img01.tif", inputs / "movie0.tif", inputs / "broken.tif"]
    tif = run_batch(files, tmp_path / "tif", model=checkpoint, **AMG)
    out = tmp_path / "zarr"
    first = run_batch(files, out, model=checkpoint, output_format="zarr", **AMG)
    assert [r.status for r in first.results] == [r.status for r in tif.results] == ["ok", "ok", "ok", "failed"]
    assert [r.objects for r in first.results] == [r.objects for r in tif.results]
    assert sorted(p.name for p in out.glob("*_labels.zarr")) == ["img00_labels.zarr", "img01_labels.zarr",
                                                               "movie0_labels.zarr"]
    for name in ("img00", "img01", "movie0"):
        labels = read_label_zarr(out / f"{name}_labels.zarr")
        assert labels.dtype == np.uint32
        assert np.array_equal(labels, tifffile.imread(tmp_path / "tif" / f"{name}_labels.tif")), name
    assert labels.shape == (3, 128, 128) and labels.any()
    group = zarr.open_group(str(out / "movie0_labels.zarr"), mode="r")
    assert group["0"].chunks == (1, 128, 128)  # one frame per chunk, written as it finished
    assert group.attrs["multiscales"][0]["name"] == "movie0_labels"
    assert json.loads((out / "batch_summary.json").read_text())["settings"]["output_format"] == "zarr"
    assert not list(out.glob(".*.part"))

    # Resume: complete outputs are skipped; the failed input's stale zarr part (a killed
    # writer's) is removed, a folder of that name that is not zarr is kept.
    stale = out / ".broken_labels.zarr.0badc0de.part"
    create_label_zarr(stale, (2, 64, 64))
    mine = out / ".broken_labels.zarr.5afe5afe.part"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a zarr")
    stamp = (out / "movie0_labels.zarr" / "0" / ".zarray").stat().st_mtime_ns
    again = run_batch(files, out, model=checkpoint, output_format="zarr", **AMG)
    assert [r.status for r in again.results] == ["skipped", "skipped", "skipped", "failed"]
    assert (out / "movie0_labels.zarr" / "0" / ".zarray").stat().st_mtime_ns == stamp
    assert not stale.exists() and (mine / "notes.txt").read_text() == "not a zarr"

    # overwrite replaces a complete zarr output whole; a non-zarr folder of an output's name is
    # refused before any work, and kept.
    redone = run_batch(files[2], out, model=checkpoint, output_format="zarr", overwrite=True, **AMG)
    assert redone.results[0].status == "ok"
    assert np.array_equal(read_label_zarr(out / "movie0_labels.zarr"), labels)
    assert not list(out.glob(".movie0_labels.zarr.*.part"))
    (out / "img05_labels.zarr").mkdir()
    with pytest.raises(BatchError, match="not a label zarr folder"):
        run_batch(inputs / "img05.tif", out, model=checkpoint, output_format="zarr", overwrite=True, **AMG)
    assert (out / "img05_labels.zarr").is_dir()
    with pytest.raises(BatchError, match="output format must be one of tif, zarr"):
        run_batch(files, out, output_format="png")


def test_propagate_into_zarr_and_the_command_line_format(inputs, checkpoint, tmp_path):
    from napari_sam2.cli import main
    from napari_sam2.images.zarr_io import read_label_zarr

    movie = inputs / "movie1.tif"
    tif = run_batch(movie, tmp_path / "tif", mode="propagate", model=checkpoint, **AMG)
    zarr = run_batch(movie, tmp_path / "zarr", mode="propagate", model=checkpoint, output_format="zarr", **AMG)
    assert tif.results[0].status == zarr.results[0].status == "ok"
    assert zarr.results[0].objects == tif.results[0].objects > 0
    tracked = read_label_zarr(tmp_path / "zarr" / "movie1_labels.zarr")
    assert np.array_equal(tracked, tifffile.imread(tmp_path / "tif" / "movie1_labels.tif"))
    args = ["batch", str(inputs / "img03.tif"), "--out", str(tmp_path / "cli"), "--model", str(checkpoint),
            "--format", "zarr", "--points-per-side", "4", "--pred-iou-thresh", "0"]
    assert main(args) == 0
    assert read_label_zarr(tmp_path / "cli" / "img03_labels.zarr").shape == (128, 128)
    assert main(args) == 0  # resumed: skipped
    assert json.loads((tmp_path / "cli" / "batch_summary.json").read_text())["counts"]["skipped"] == 1
