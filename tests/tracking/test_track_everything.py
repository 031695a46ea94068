"""Tracking every object: Cell Tracking Challenge files, lineage decisions, divisions, new and
ending objects on a crafted movie, stopping, outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_sam2.images.ctc import ctc_tracks, read_tracks, write_ctc
from napari_sam2.tracking.lineage import Lineage, blobs_held, split_by_blobs, split_parts, touches


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r**2


# ------------------------------------------------------------------ the challenge's format


def test_ctc_tracks_split_gaps_and_keep_parents():
    labels = np.zeros((6, 32, 32), np.uint32)
    labels[0:2][:, _disc((32, 32), 16, 16, 5)] = 1  # mother, frames 0-1
    labels[2:6][:, _disc((32, 32), 10, 16, 4)] = 2  # daughters from frame 2
    labels[2:6][:, _disc((32, 32), 22, 16, 4)] = 3
    for t in (0, 1, 4, 5):  # a gap on frames 2-3
        labels[t][_disc((32, 32), 5, 5, 3)] = 4
    out, tracks = ctc_tracks(labels, {2: 1, 3: 1})
    assert tracks[1] == (0, 1, 0) and tracks[2] == (2, 5, 1) and tracks[3] == (2, 5, 1)
    assert tracks[4] == (0, 1, 0) and tracks[5] == (4, 5, 4)  # the part after the gap: new label, parent 4
    assert (out[4:6][labels[4:6] == 4] == 5).all()
    # a parent that does not end before its child begins is dropped
    _, tracks = ctc_tracks(labels, {2: 3})
    assert tracks[2][2] == 0


def test_ctc_writer_follows_the_format_rules(tmp_path):
    validate = pytest.importorskip("ctc_metrics").validate_sequence
    labels = np.zeros((5, 48, 48), np.uint32)
    labels[0:2][:, _disc((48, 48), 24, 24, 6)] = 1
    labels[2:][:, _disc((48, 48), 16, 24, 5)] = 2
    labels[2:][:, _disc((48, 48), 32, 24, 5)] = 3
    out, tracks = ctc_tracks(labels, {2: 1, 3: 1})
    folder = write_ctc(tmp_path / "res", enumerate(out), tracks)
    assert sorted(p.name for p in folder.glob("mask*.tif")) == [f"mask{t:03d}.tif" for t in range(5)]
    assert read_tracks(folder / "res_track.txt") == tracks
    assert validate(str(folder), threads=1)["Valid"] == 1
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_ctc(folder, enumerate(out), tracks)
    write_ctc(folder, enumerate(out), tracks, overwrite=True)
    # a broken result (a parent that ends after its daughters begin) fails the same validation
    (folder / "res_track.txt").write_text("1 0 3 0\n2 2 4 1\n3 2 4 1\n")
    with pytest.warns(UserWarning, match="Parent ends after child starts"):
        assert validate(str(folder), threads=1)["Valid"] == 0


# ------------------------------------------------------------------ lineage decisions


def test_split_parts_needs_two_large_parts():
    shape = (40, 40)
    two = _disc(shape, 12, 20, 6) | _disc(shape, 28, 20, 6)
    assert len(split_parts(two, min_area=20, min_share=0.25)) == 2
    speck = _disc(shape, 12, 20, 8) | _disc(shape, 30, 20, 2)
    assert split_parts(speck, min_area=20, min_share=0.25) == []
    assert split_parts(_disc(shape, 20, 20, 8), 20, 0.25) == []
    assert touches(_disc(shape, 12, 20, 6), _disc(shape, 21, 20, 2), 3)
    assert not touches(_disc(shape, 12, 20, 6), _disc(shape, 30, 20, 2), 3)


def _touching_pair(shape=(64, 64), waist=0.2):
    """Two touching discs (daughters before they part) with `waist` of their brightness where
    they meet; their blob labels; and the mask that holds both."""
    one, two = _disc(shape, 32, 22, 10), _disc(shape, 32, 41, 10)
    gray = np.where(one | two, 1.0, 0.0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    gray[(np.abs(xx - 31.5) < 2) & (one | two)] = waist
    blobs = np.zeros(shape, np.int32)
    blobs[one], blobs[two & ~one] = 1, 2
    return one | two, blobs, gray


def test_a_mask_holding_two_blobs_pinched_at_a_dark_waist_splits_into_them():
    mask, blobs, gray = _touching_pair()
    assert set(blobs_held(mask, blobs, min_area=20)) == {1, 2}
    halves = split_by_blobs(mask, blobs, gray, min_area=20, min_share=0.25)
    assert len(halves) == 2
    assert not (halves[0] & halves[1]).any() and ((halves[0] | halves[1]) == mask).all()
    assert {int(h[32, 22]) + 2 * int(h[32, 41]) for h in halves} == {1, 2}  # one disc each


def test_one_nucleus_cut_in_two_by_the_blobs_is_not_split():
    mask, blobs, gray = _touching_pair(waist=1.0)  # bright where they meet: one nucleus
    assert split_by_blobs(mask, blobs, gray, min_area=20, min_share=0.25) == []
    yy, xx = np.mgrid[:64, :64]
    ellipse = ((yy - 32) / 12) ** 2 + ((xx - 32) / 24) ** 2 < 1
    halves = np.where(ellipse & (xx < 32), 1, np.where(ellipse, 2, 0)).astype(np.int32)
    dark_cut = np.where(ellipse & (np.abs(xx - 31.5) > 2), 1.0, 0.0)  # dark, but as wide as the nucleus
    assert split_by_blobs(ellipse, halves, dark_cut, min_area=20, min_share=0.25) == []
    # a mask that holds only a sliver of the second blob holds one object
    assert set(blobs_held(_disc((64, 64), 32, 23, 11), blobs, min_area=20)) == {1}


class _RecordingTracker:
    """What `_split_masks` asks of a tracker: objects removed and masks added, by track."""

    def __init__(self):
        self.removed, self.added = [], {}

    def remove_object(self, track):
        self.removed.append(track)

    def add_mask(self, frame, track, mask):
        self.added[track] = mask


@pytest.mark.parametrize("held_before", [False, True])
def test_a_split_is_a_division_only_if_the_mask_held_one_object_before(held_before):
    from napari_sam2.tracking.everything import Settings, _Before, _split_masks

    mask, blobs, gray = _touching_pair()
    lineage = Lineage()
    track = lineage.new_track(0)
    before_labels = np.where(mask, track, 0).astype(np.uint32)
    before_blobs = blobs if held_before else mask.astype(np.int32)  # two blobs, or one
    before = _Before.of(before_labels, [track], before_blobs)
    tracker = _RecordingTracker()
    out = _split_masks(tracker, 1, {track: mask}, lineage, blobs, gray, before, (20, 5), Settings())
    assert len(out) == 2 and tracker.removed == [track]
    if held_before:  # two objects one mask held: the track goes on, the other part is new
        assert track in out and lineage.children() == {}
    else:  # a division: the track ends, two daughters with it as parent
        assert track not in out and lineage.children() == {t: track for t in out}


def test_lineage_table_and_graph():
    lineage = Lineage()
    mother = lineage.new_track(0)
    frame = np.zeros((20, 20), np.uint32)
    frame[5:10, 5:10] = mother
    lineage.record(0, frame)
    a, b = lineage.new_track(1, mother), lineage.new_track(1, mother)
    frame = np.zeros((20, 20), np.uint32)
    frame[0:4, 0:4], frame[12:16, 12:16] = a, b
    lineage.record(1, frame)
    table = lineage.table()
    assert table.shape == (3, 4)
    assert table[0].tolist() == [mother, 0, 7.0, 7.0]
    assert lineage.children() == {a: mother, b: mother}


# ------------------------------------------------------------------ the whole thing, built-in model


def crafted_movie():
    """9 frames, 128 px: a nucleus that divides at frame 4, one that leaves after frame 5, one
    that enters at frame 6. Returns the movie and the true (first, last, parent) by name."""
    shape = (128, 128)
    movie = np.full((9, *shape), 100.0)
    for t in range(9):
        if t < 4:
            movie[t][_disc(shape, 40, 40, 11)] = 1000
        else:
            d = 10 + 2 * (t - 4)
            movie[t][_disc(shape, 40 - d, 40, 8)] = 1000
            movie[t][_disc(shape, 40 + d, 40, 8)] = 1000
        if t <= 5:
            movie[t][_disc(shape, 95, 95, 10)] = 900
        if t >= 6:
            movie[t][_disc(shape, 30, 100, 10)] = 950
    rng = np.random.default_rng(0)
    return (movie + rng.normal(0, 20, movie.shape)).clip(0).astype(np.uint16)


@pytest.fixture(scope="module")
def builtin():
    from napari_sam2 import load_model

    return load_model()


@pytest.fixture(scope="module")
def crafted_result(builtin):
    from napari_sam2 import track_everything

    return track_everything(crafted_movie(), builtin)


def test_division_entering_and_leaving_on_a_crafted_movie(crafted_result):
    labels, tracks = crafted_result.ctc()
    def track_at(t, y, x):
        return int(labels[t, y, x])
    mother = track_at(0, 40, 40)
    top, bottom = track_at(5, 28, 40), track_at(5, 52, 40)
    leaving, entering = track_at(0, 95, 95), track_at(7, 30, 100)
    assert len({mother, top, bottom, leaving, entering, 0}) == 6
    assert tracks[mother] == (0, 3, 0)
    assert tracks[top] == (4, 8, mother) and tracks[bottom] == (4, 8, mother)
    assert tracks[leaving] == (0, 5, 0)
    assert tracks[entering] == (6, 8, 0)
    assert len(tracks) == 5
    # the masks are the nuclei
    truth = _disc((128, 128), 95, 95, 10)
    got = labels[2] == leaving
    assert (got & truth).sum() / (got | truth).sum() > 0.8


def test_outputs_table_csv_and_napari_tracks(crafted_result, tmp_path):
    data, graph = crafted_result.napari_tracks()
    assert data.shape[1] == 4 and len(data) == len(crafted_result.tracks)
    parents = crafted_result.parents
    assert len(parents) == 2 and all(graph[c] == [p] for c, p in parents.items())
    csv = crafted_result.write_csv(tmp_path / "tracks.csv").read_text().splitlines()
    assert csv[0] == "track_id,frame,y,x,parent" and len(csv) == len(data) + 1
    folder = crafted_result.write_ctc(tmp_path / "ctc")
    assert len(list(folder.glob("mask*.tif"))) == 9


def test_label_movie_as_tiff_and_zarr_equals_the_ctc_masks(crafted_result, tmp_path):
    import tifffile
    import zarr

    from napari_sam2.images.zarr_io import read_label_zarr

    as_tif = tifffile.imread(crafted_result.write_labels(tmp_path / "tracks.tif"))
    as_zarr = read_label_zarr(crafted_result.write_labels(tmp_path / "tracks.zarr"))
    assert as_tif.dtype == as_zarr.dtype == np.uint32 and as_tif.shape == (9, 128, 128)
    assert np.array_equal(as_tif, as_zarr) and np.array_equal(as_tif, crafted_result.labels)
    folder = crafted_result.write_ctc(tmp_path / "ctc")
    masks = np.stack([tifffile.imread(folder / f"mask{t:03d}.tif") for t in range(9)])
    assert np.array_equal(as_tif, masks)  # no track of this movie has a gap: the same ids
    assert set(np.unique(as_tif[as_tif > 0])) == set(read_tracks(folder / "res_track.txt"))
    axes = zarr.open_group(str(tmp_path / "tracks.zarr"), mode="r").attrs["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["t", "y", "x"] and axes[0]["type"] == "time"


def test_stopping_keeps_the_frames_done(builtin, tmp_path):
    from napari_sam2 import track_everything

    seen = []
    result = track_everything(crafted_movie()[:5], builtin, should_stop=lambda: len(seen) >= 2, on_frame=lambda t, _: seen.append(t))
    assert result.frames_done == [0, 1] and not result.completed
    assert result.labels[:2].any(axis=(1, 2)).all() and not result.labels[2:].any()
    folder = result.write_ctc(tmp_path / "partial")
    assert sorted(p.name for p in folder.glob("mask*.tif")) == ["mask000.tif", "mask001.tif"]


def test_bad_settings():
    from napari_sam2.tracking.everything import Settings

    with pytest.raises(ValueError, match="direction"):
        Settings(direction="sideways")
    with pytest.raises(ValueError, match="detect_every"):
        Settings(detect_every=0)


# ------------------------------------------------------------------ the dock


def test_dock_tracks_everything_into_labels_and_a_tracks_layer_with_the_division(make_napari_viewer, qtbot, builtin):
    from qtpy.QtCore import Qt

    from napari_sam2._widgets._main import SAM2Widget
    from napari_sam2._widgets._track_everything_panel import LABELS_NAME, TRACKS_NAME

    viewer = make_napari_viewer()
    viewer.add_image(crafted_movie()[2:7], name="cells")  # mother on frames 0-1, daughters from 2
    widget = SAM2Widget(viewer, load_model=False)
    viewer.window.add_dock_widget(widget, name="SAM 2")
    widget.session.set_model(builtin, "built-in")
    panel = widget.track_everything_panel
    assert panel.button.isEnabled()
    with qtbot.waitSignal(panel.job.finished, timeout=600_000):
        panel.run()
    labels = viewer.layers[LABELS_NAME].data
    assert labels.shape == (5, 128, 128) and all(labels[t].any() for t in range(5))
    tracks = viewer.layers[TRACKS_NAME]
    mother = int(labels[0, 40, 40])
    daughters = {int(labels[3, 40 - 12, 40]), int(labels[3, 40 + 12, 40])}
    assert mother and 0 not in daughters and len(daughters) == 2
    assert {d: tracks.graph[d] for d in daughters} == {d: [mother] for d in daughters}
    assert set(np.unique(tracks.data[:, 0]).astype(int)) == set(np.unique(labels[labels > 0]).tolist())
    assert "1 division(s) on 5 frame(s)" in panel.status.text()
    assert panel.settings().fit_to_blobs
    qtbot.keyClick(panel.blob_fit, Qt.Key_Space)  # a real key press on the check box
    assert not panel.blob_fit.isChecked() and not panel.settings().fit_to_blobs


def test_dock_fast_mode_tracks_without_memory(make_napari_viewer, qtbot, builtin, monkeypatch):
    from qtpy.QtCore import Qt

    from napari_sam2._widgets._main import SAM2Widget
    from napari_sam2._widgets._track_everything_panel import LABELS_NAME
    from napari_sam2.modeling.sam2 import SAM2Model

    viewer = make_napari_viewer()
    viewer.add_image(crafted_movie()[2:7], name="cells")
    widget = SAM2Widget(viewer, load_model=False)
    viewer.window.add_dock_widget(widget, name="SAM 2")
    widget.session.set_model(builtin, "built-in")
    panel = widget.track_everything_panel
    assert panel.settings().memory
    qtbot.keyClick(panel.fast, Qt.Key_Space)  # a real key press on the check box
    assert not panel.settings().memory

    def memory_read(*args, **kwargs):
        raise AssertionError("memory attention ran in the fast mode")

    monkeypatch.setattr(SAM2Model, "condition_on_memory", memory_read)
    with qtbot.waitSignal(panel.job.finished, timeout=600_000):
        panel.run()
    labels = viewer.layers[LABELS_NAME].data
    mother, daughters = int(labels[0, 40, 40]), {int(labels[3, 28, 40]), int(labels[3, 52, 40])}
    assert mother and 0 not in daughters and len(daughters | {mother}) == 3
    assert "1 division(s) on 5 frame(s)" in panel.status.text()


# ------------------------------------------------------------------ the command line


def test_cli_track_without_memory(tmp_path, monkeypatch):
    import tifffile

    from napari_sam2.cli import main
    from napari_sam2.modeling.sam2 import SAM2Model

    tifffile.imwrite(tmp_path / "movie.tif", crafted_movie())

    def memory_read(*args, **kwargs):
        raise AssertionError("memory attention ran with --no-memory")

    monkeypatch.setattr(SAM2Model, "condition_on_memory", memory_read)
    assert main(["track", str(tmp_path / "movie.tif"), "--ctc", str(tmp_path / "out"), "--no-memory"]) == 0
    tracks = read_tracks(tmp_path / "out" / "res_track.txt")
    assert len(tracks) == 5 and sum(1 for *_, parent in tracks.values() if parent) == 2  # the division


def test_cli_track_writes_ctc_files_and_refuses_to_overwrite(tmp_path, capsys, monkeypatch):
    import tifffile

    from napari_sam2.cli import main
    from napari_sam2.images.zarr_io import read_label_zarr

    frames = tmp_path / "01"
    frames.mkdir()
    for t, frame in enumerate(crafted_movie()[:3]):
        tifffile.imwrite(frames / f"t{t:03d}.tif", frame)
    out = tmp_path / "01_RES"
    movie = tmp_path / "tracks.zarr"
    assert main(["track", str(frames), "--ctc", str(out), "--csv", str(tmp_path / "tracks.csv"), "--labels", str(movie)]) == 0
    assert sorted(p.name for p in out.glob("mask*.tif")) == ["mask000.tif", "mask001.tif", "mask002.tif"]
    masks = np.stack([tifffile.imread(out / f"mask{t:03d}.tif") for t in range(3)])
    assert np.array_equal(read_label_zarr(movie), masks) and masks.any()
    assert main(["track", str(frames), "--ctc", str(out), "--labels", str(tmp_path / "tracks.tif"), "--overwrite"]) == 0
    assert np.array_equal(tifffile.imread(tmp_path / "tracks.tif"), read_label_zarr(movie))
    tracks = read_tracks(out / "res_track.txt")
    assert sorted(v[:2] for v in tracks.values()) == [(0, 2), (0, 2)]  # the nucleus and the one that leaves later
    assert tifffile.imread(out / "mask001.tif").dtype == np.uint16
    assert (tmp_path / "tracks.csv").read_text().startswith("track_id,frame,y,x,parent")
    capsys.readouterr()
    assert main(["track", str(frames), "--ctc", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert main(["track", str(tmp_path / "missing"), "--ctc", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["track", str(tmp_path / "empty"), "--ctc", str(tmp_path / "y")]) == 2
    assert "no t*.tif frames" in capsys.readouterr().err
    assert main(["track", str(frames), "--ctc", str(tmp_path / "z"), "--window", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert "multiple of 16" in err and len(err.splitlines()) == 1
    assert main(["track", str(frames), "--ctc", str(tmp_path / "whole"), "--window", "0"]) == 0  # whole frames
    assert (tmp_path / "whole" / "mask002.tif").exists()
    seen = []
    monkeypatch.setattr("napari_sam2.tracking.everything.fitted_to_blobs", lambda masks, *a: seen.append(1) or masks)
    assert main(["track", str(frames), "--ctc", str(tmp_path / "plain"), "--no-blob-fit"]) == 0
    assert not seen and (tmp_path / "plain" / "mask002.tif").exists()  # masks as the model made them
    assert main(["track", str(frames), "--ctc", str(tmp_path / "fitted")]) == 0 and len(seen) == 3


def test_cli_track_takes_contrast_limits(tmp_path, capsys, monkeypatch):
    import tifffile

    from napari_sam2.cli import main
    from napari_sam2.images.normalization import Normalization

    frames = tmp_path / "01"
    frames.mkdir()
    for t, frame in enumerate(crafted_movie()[:2]):
        tifffile.imwrite(frames / f"t{t:03d}.tif", frame)
    given = []

    def tracked(frames, model, settings, normalization="auto", **kwargs):
        given.append(normalization)
        raise ValueError("stop here")

    monkeypatch.setattr("napari_sam2.tracking.everything.track_everything", tracked)
    assert main(["track", str(frames), "--ctc", str(tmp_path / "a"), "--limits", "100", "900"]) == 2
    assert main(["track", str(frames), "--ctc", str(tmp_path / "b")]) == 2
    assert given == [Normalization.from_limits(100, 900), "auto"]
    # --gamma: with the limits given, or with the movie's 'auto' limits
    assert main(["track", str(frames), "--ctc", str(tmp_path / "g"), "--limits", "100", "900", "--gamma", "0.5"]) == 2
    assert main(["track", str(frames), "--ctc", str(tmp_path / "h"), "--gamma", "0.5"]) == 2
    from napari_sam2.images.ctc import FrameFolder
    from napari_sam2.images.normalization import auto_normalization

    assert given[2:] == [Normalization.from_limits(100, 900, 0.5), auto_normalization(FrameFolder(frames)).with_gamma(0.5)]
    capsys.readouterr()
    assert main(["track", str(frames), "--ctc", str(tmp_path / "c"), "--limits", "900", "100"]) == 2
    assert "LOW must be below HIGH" in capsys.readouterr().err and len(given) == 4
    assert main(["track", str(frames), "--ctc", str(tmp_path / "c"), "--gamma", "0"]) == 2
    assert "positive number" in capsys.readouterr().err and len(given) == 4


def test_cli_track_refuses_an_existing_label_movie_before_any_work(tmp_path, capsys):
    import tifffile

    from napari_sam2.cli import main
    from napari_sam2.images.zarr_io import read_label_zarr, write_label_zarr

    frames = tmp_path / "01"
    frames.mkdir()
    for t, frame in enumerate(crafted_movie()[:2]):
        tifffile.imwrite(frames / f"t{t:03d}.tif", frame)
    kept = np.arange(2 * 16 * 16, dtype=np.uint32).reshape(2, 16, 16)
    tifffile.imwrite(tmp_path / "tracks.tif", kept)
    write_label_zarr(tmp_path / "tracks.zarr", kept, first_axis="t")
    for name in ("tracks.tif", "tracks.zarr"):
        capsys.readouterr()
        assert main(["track", str(frames), "--ctc", str(tmp_path / "res"), "--labels", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert "exists" in err and "--overwrite" in err and len(err.splitlines()) == 1
        assert not (tmp_path / "res").exists()  # refused before tracking
    assert np.array_equal(tifffile.imread(tmp_path / "tracks.tif"), kept)
    assert np.array_equal(read_label_zarr(tmp_path / "tracks.zarr"), kept)
    frame = frames / "t000.tif"
    before = frame.read_bytes()
    assert main(["track", str(frames), "--ctc", str(tmp_path / "res"), "--labels", str(frame), "--overwrite"]) == 2
    assert "is the input" in capsys.readouterr().err and frame.read_bytes() == before  # never a frame of the movie


def test_resumed_track_is_the_ended_one_under_the_new_object():
    from napari_sam2.tracking.everything import resumed_track

    shape = (64, 64)
    last_a, last_b = _disc(shape, 20, 20, 8), _disc(shape, 45, 45, 8)
    ended = {3: (5, last_a), 7: (6, last_b)}
    assert resumed_track(_disc(shape, 22, 21, 8), ended) == 3  # moved a little
    assert resumed_track(_disc(shape, 46, 44, 4), ended) == 7  # smaller, inside the old mask
    assert resumed_track(_disc(shape, 20, 50, 8), ended) == 0  # somewhere else: a new track


def test_a_nucleus_missing_for_a_frame_keeps_its_track(builtin):
    """A nucleus gone for one frame ends its track; found again, it resumes it (the challenge's
    files then split the track at the gap, with the earlier part as parent). A second nucleus
    stays throughout."""
    from napari_sam2 import track_everything

    shape = (128, 128)
    rng = np.random.default_rng(1)
    movie = np.full((7, *shape), 100.0)
    for t in range(7):
        movie[t][_disc(shape, 95, 95, 10)] = 900
        if t != 3:
            movie[t][_disc(shape, 40, 35 + t, 11)] = 1000
    movie = (movie + rng.normal(0, 20, movie.shape)).clip(0).astype(np.uint16)
    kept = track_everything(movie, builtin)
    before, after, other = int(kept.labels[2][40, 37]), int(kept.labels[4][40, 39]), int(kept.labels[3][95, 95])
    assert before and after == before and other not in (0, before)
    assert not (kept.labels[3] == before).any()
    labels, tracks = kept.ctc()
    assert len(tracks) == 3 and tracks[int(labels[4][40, 39])] == (4, 6, int(labels[2][40, 37]))
    split = track_everything(movie, builtin, bridge=0)
    assert int(split.labels[4][40, 39]) not in (0, int(split.labels[2][40, 37]))


# ------------------------------------------------------------------ real data

GOWT1 = Path(__file__).resolve().parents[3] / "shared" / "data" / "ctc" / "Fluo-N2DH-GOWT1"


def _gt_of_first_frames(gt: Path, frames: int, out: Path) -> Path:
    """The challenge's ground truth clipped to the first `frames` frames."""
    import shutil

    (out / "TRA").mkdir(parents=True)
    (out / "SEG").mkdir()
    lines = [f"{k} {a} {min(b, frames - 1)} {p}" for k, (a, b, p) in sorted(read_tracks(gt / "TRA" / "man_track.txt").items()) if a < frames]
    (out / "TRA" / "man_track.txt").write_text("\n".join(lines) + "\n")
    for t in range(frames):
        shutil.copy(gt / "TRA" / f"man_track{t:03d}.tif", out / "TRA")
        if (gt / "SEG" / f"man_seg{t:03d}.tif").exists():
            shutil.copy(gt / "SEG" / f"man_seg{t:03d}.tif", out / "SEG")
    return out


@pytest.mark.skipif(not GOWT1.is_dir(), reason="needs ../shared/data (Cell Tracking Challenge GOWT1)")
def test_windows_track_real_nuclei_as_well_as_whole_frames(tmp_path):
    """GOWT1 01, first 12 frames, built-in model: the challenge's TRA and DET with the default
    windows, and without memory, are within 0.02 of whole-frame tracking, and all track the nuclei."""
    import warnings

    ctc_metrics = pytest.importorskip("ctc_metrics")
    from napari_sam2 import load_model
    from napari_sam2.images.ctc import FrameFolder
    from napari_sam2.tracking.everything import track_everything

    frames = FrameFolder(GOWT1 / "01")
    movie = np.stack([frames[t] for t in range(12)])
    gt = _gt_of_first_frames(GOWT1 / "01_GT", 12, tmp_path / "GT")
    model = load_model()
    scores = {}
    for window, memory in ((256, True), (None, True), (256, False)):
        result = track_everything(movie, model, window=window, memory=memory)
        res = result.write_ctc(tmp_path / f"RES_{window}_{memory}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores[window, memory] = ctc_metrics.evaluate_sequence(str(res), str(gt), metrics=["DET", "TRA"], threads=1)
    whole = scores[None, True]
    assert whole["TRA"] > 0.85 and whole["DET"] > 0.85, scores  # measured 0.951 and 0.955
    for fast in (scores[256, True], scores[256, False]):  # measured TRA 0.963 and 0.964, DET 0.964 and 0.964
        assert fast["TRA"] > whole["TRA"] - 0.02 and fast["DET"] > whole["DET"] - 0.02, scores


def test_division_found_backward_on_the_crafted_movie(builtin, crafted_result):
    """Tracked from the last frame back, the two daughters meet in their mother: the same tracks,
    first and last frames and lineage as forward."""
    from napari_sam2 import track_everything

    backward = track_everything(crafted_movie(), builtin, direction="backward")
    labels, tracks = backward.ctc()
    mother = int(labels[0, 40, 40])
    top, bottom = int(labels[5, 28, 40]), int(labels[5, 52, 40])
    assert len({mother, top, bottom, 0}) == 4
    assert tracks[mother] == (0, 3, 0)
    assert tracks[top] == (4, 8, mother) and tracks[bottom] == (4, 8, mother)

    def shape(tracks):  # (first, last, has a parent) of every track: the ids differ
        return sorted((a, b, bool(p)) for a, b, p in tracks.values())

    assert shape(tracks) == shape(crafted_result.ctc()[1])


def test_fast_mode_without_memory_finds_the_division_the_entering_and_the_leaving_nucleus(builtin, crafted_result):
    """memory=False (each track found by a click inside its last mask): the crafted movie gives the
    same tracks, frames and lineage as the memory tracker."""
    from napari_sam2 import track_everything

    fast = track_everything(crafted_movie(), builtin, memory=False)
    labels, tracks = fast.ctc()
    mother, top, bottom = int(labels[0, 40, 40]), int(labels[5, 28, 40]), int(labels[5, 52, 40])
    assert len({mother, top, bottom, 0}) == 4
    assert tracks[top] == (4, 8, mother) and tracks[bottom] == (4, 8, mother)
    assert sorted(tracks.values()) == sorted(crafted_result.ctc()[1].values())
