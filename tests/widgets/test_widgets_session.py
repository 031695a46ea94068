"""Prompts files and several objects in a real napari viewer (Xvfb).

A session saved from the widget replays with the command line and the Python API to the labels
the widget made; loading a file puts its prompts back into the prompt layers without losing the
user's; committed and new objects propagate together; a label can be a mask prompt.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

napari = pytest.importorskip("napari")


from napari_sam2 import build_model, cli  # noqa: E402
from napari_sam2._widgets import _preview, _preview_loop  # noqa: E402
from napari_sam2._widgets._main import SAM2Widget  # noqa: E402
from napari_sam2._widgets._propagate_panel import FROM_PROMPTS  # noqa: E402
from napari_sam2.api import run_session  # noqa: E402
from napari_sam2.prompt_file import Prompt, PromptSession  # noqa: E402
from tests.widgets.test_widgets_jobs import FakeTracker  # noqa: E402

TIMEOUT = 180_000


pytestmark = pytest.mark.usefixtures("own_settings")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("sam2.1_hiera_test", device="cpu", image_size=128)


@pytest.fixture
def fake_tracker(monkeypatch):
    FakeTracker.made = []
    FakeTracker.delay = 0.0
    monkeypatch.setattr("napari_sam2.engine.tracker.StackTracker", FakeTracker)
    return FakeTracker


def disk(shape, centre, radius=10) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2


@pytest.fixture
def disks(monkeypatch):
    """The decoder returns a disk around each object's first click (or box centre)."""

    def fake(predictor, embedding, objects, zoom_plane=None):
        masks = []
        for obj in objects:
            if obj.box is not None:
                centre = ((obj.box[1] + obj.box[3]) / 2, (obj.box[0] + obj.box[2]) / 2)
            else:
                centre = (obj.points[0][1], obj.points[0][0])
            masks.append(disk(embedding.image_hw, centre))
        return masks, [0.9] * len(objects)

    monkeypatch.setattr(_preview, "decode_objects", fake)


def movie(n: int, size: int = 96) -> np.ndarray:
    """Two bright cells on a noisy background; one moves to the right."""
    rng = np.random.default_rng(0)
    image = rng.normal(300, 30, (n, size, size))
    yy, xx = np.mgrid[:size, :size]
    for t in range(n):
        image[t, (yy - 30) ** 2 + (xx - 28 - 3 * t) ** 2 < 10**2] += 2000
        image[t, (yy - 68) ** 2 + (xx - 64) ** 2 < 12**2] += 1500
    return image.astype(np.uint16)


def open_movie(viewer, tmp_path, n: int):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie(n), photometric="minisblack")
    [layer] = viewer.open(str(path), plugin="napari")
    assert str(layer.source.path) == str(path)
    viewer.dims.set_current_step(0, 0)
    return path


def dock_with_checkpoint(viewer, qtbot, checkpoint) -> SAM2Widget:
    """The widget with the test checkpoint loaded from its file, as a user would."""
    widget = SAM2Widget(viewer, load_model=False)
    viewer.window.add_dock_widget(widget, name="SAM 2")
    panel = widget.model_panel
    panel.set_choice("file")
    panel.path.setText(str(checkpoint))
    panel.device.setCurrentText("cpu")
    panel.precision.setCurrentText("fp32")
    with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        widget.load_model()
    assert widget.session.model_spec["checkpoint"] == str(checkpoint.resolve())
    return widget


def ready(viewer, qtbot, model, n=6) -> SAM2Widget:
    viewer.add_image(movie(n), name="movie")
    viewer.dims.set_current_step(0, 0)
    widget = SAM2Widget(viewer, load_model=False)
    viewer.window.add_dock_widget(widget, name="SAM 2")
    widget.model_panel.precision.setCurrentText("fp32")
    widget.session.set_model(model, "test")
    qtbot.waitUntil(lambda: len(widget.session.cache) == 1, timeout=TIMEOUT)
    return widget


def commit(widget, viewer, qtbot, obj_id: int) -> None:
    widget.commit()  # waits for the plane's embedding and preview, then writes
    qtbot.waitUntil(
        lambda: "SAM2 labels" in viewer.layers and (viewer.layers["SAM2 labels"].data == obj_id).any(),
        timeout=TIMEOUT,
    )


def box(frame: int, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
    return np.array([[frame, r0, c0], [frame, r0, c1], [frame, r1, c1], [frame, r1, c0]])


class HeldJobs:
    """Runs each short job (embedding, decode) at once but holds its two signals, its result and
    its end, which the test delivers in the order under test."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, object, object]] = []

    def __call__(self, title, func, *args, on_return, on_finish=None):
        try:
            result = func(*args)
            returned = lambda: on_return(result)  # noqa: E731
        except RuntimeError:
            returned = lambda: None  # noqa: E731  (a worker's error: no result, only its end)
        self.jobs.append((title, returned, on_finish or (lambda: None)))

    def deliver(self, i: int) -> None:
        _, returned, finished = self.jobs[i]
        returned()
        finished()


def test_a_commit_asked_between_a_decode_result_and_its_end_is_kept(
    make_napari_viewer, qtbot, model, disks, monkeypatch
):
    """A decode's end arrives after its result; a commit asked in between, on a plane still to
    be embedded, waits for its own preview instead of being dropped as if the decode had failed."""
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    held = HeldJobs()
    monkeypatch.setattr(_preview_loop, "run_short", held)
    widget.prompts.points.add([0, 20, 30])
    widget.commit()
    [(title, first_result, first_end)] = held.jobs
    assert title == "Segmenting"
    first_result()  # object 1 is written
    labels = viewer.layers["SAM2 labels"]
    assert (labels.data[0] == 1).any()
    viewer.dims.set_current_step(0, 2)
    widget.prompts.points.add([2, 60, 60])
    widget.commit()  # plane 2 is not embedded yet: the commit waits
    first_end()
    assert [t for t, *_ in held.jobs[1:]] == ["Computing the image embedding"]
    held.deliver(1)
    assert [t for t, *_ in held.jobs[2:]] == ["Segmenting"]
    held.deliver(2)
    assert (labels.data[2] == 2).any() and not (labels.data[2] == 1).any()
    assert len(widget.prompts.points.data) == 0


def test_a_failed_decode_drops_the_commit_that_waited_for_it(
    make_napari_viewer, qtbot, model, disks, monkeypatch
):
    """A commit whose preview could not be computed is dropped (the error was shown), not kept
    to fire on a later preview of other prompts."""
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    held = HeldJobs()
    monkeypatch.setattr(_preview_loop, "run_short", held)
    works = _preview.decode_objects
    calls = []

    def first_fails(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return works(*args)

    monkeypatch.setattr(_preview, "decode_objects", first_fails)
    widget.prompts.points.add([0, 20, 30])
    widget.commit()
    held.deliver(0)
    widget.prompts.points.add([0, 24, 30])
    widget.segment_panel.loop.update()
    held.deliver(1)
    assert widget.segment_panel.loop.preview is not None
    assert "SAM2 labels" not in viewer.layers
    assert len(widget.prompts.points.data) == 2


def test_a_commit_never_lands_on_another_slice(make_napari_viewer, qtbot, model, disks, monkeypatch):
    """Commit on a slice still being embedded, then move to a slice with other prompts: the
    commit is dropped with a status, not written with the other slice's preview."""
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    held = HeldJobs()
    monkeypatch.setattr(_preview_loop, "run_short", held)
    widget.prompts.points.add([0, 20, 30])
    viewer.dims.set_current_step(0, 2)
    widget.prompts.points.add([2, 60, 60])
    widget.commit()  # waits for the embedding of slice 2
    viewer.dims.set_current_step(0, 0)
    widget.segment_panel.loop.update()
    held.deliver(1)  # the preview of slice 0
    assert widget.segment_panel.loop.preview is not None
    assert "slice changed" in widget.segment_panel.status.text()
    held.deliver(0)
    assert "SAM2 labels" not in viewer.layers
    assert len(widget.prompts.points.data) == 2


def test_a_click_is_decoded_at_once_and_a_drag_at_the_decoders_pace(
    make_napari_viewer, qtbot, model, disks, monkeypatch
):
    """A prompt event is decoded as soon as it is handled (no waiting time); events that come
    while a decode runs make one more decode, of the newest prompts, when it ends."""
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    loop = widget.segment_panel.loop
    held = HeldJobs()
    monkeypatch.setattr(_preview_loop, "run_short", held)
    widget.prompts.points.add([0, 20, 30])
    qtbot.waitUntil(lambda: len(held.jobs) == 1, timeout=5_000)
    for row in (40, 44, 48):  # while the first decode runs
        widget.prompts.points.add([0, row, 60])
        qtbot.wait(5)
    assert len(held.jobs) == 1
    held.deliver(0)  # stale: the prompts changed meanwhile
    assert loop.preview is None and len(held.jobs) == 2
    held.deliver(1)
    assert loop.preview.signature == widget.prompts.on_plane((0,)).signature()
    assert len(loop.preview.objects) == 1 and len(held.jobs) == 2


# ------------------------------------------------------------------ replay


def test_saved_propagation_replays_with_the_cli_and_the_api(make_napari_viewer, qtbot, checkpoint, tmp_path):
    viewer = make_napari_viewer()
    path = open_movie(viewer, tmp_path, n=5)
    widget = dock_with_checkpoint(viewer, qtbot, checkpoint)
    segment = widget.segment_panel
    widget.prompts.points.add([0, 30, 28])  # object 1: a click on frame 0
    commit(widget, viewer, qtbot, 1)
    viewer.dims.set_current_step(0, 2)
    widget.prompts.boxes.add_rectangles(box(2, 54, 50, 82, 78))  # object 2: a box on frame 2
    commit(widget, viewer, qtbot, 2)
    segment.object_id.setValue(1)  # more clicks for object 1, on frame 4
    viewer.dims.set_current_step(0, 4)
    widget.prompts.points.add([4, 30, 40])
    widget.toggle_positive()
    widget.prompts.points.add([4, 68, 64])
    widget.toggle_positive()
    assert list(widget.prompts.points.features["object"]) == [1, 1]
    segment.object_id.setValue(0)
    with qtbot.waitSignal(widget.propagate_panel.job.finished, timeout=TIMEOUT):
        widget.propagate()
    labels = np.array(viewer.layers["SAM2 labels"].data, copy=True)
    assert set(np.unique(labels)) <= {0, 1, 2} and {1, 2} <= set(np.unique(labels))
    assert len(widget.prompts.points.data) == 0  # used up

    saved = widget.save_prompts(tmp_path / "session.json")
    data = json.loads(saved.read_text())
    assert data["mode"] == "propagate" and data["propagation"] == {"direction": "both"}
    assert data["image"]["path"] == "movie.tif" and data["image"]["stack_axis"] == 0
    assert data["model"]["checkpoint"] == str(checkpoint.resolve())
    assert data["model"]["precision"] == "fp32" and data["model"]["zoom"] is False
    assert data["normalization"]["method"] == "limits"
    one, two = data["objects"]
    assert [p["frame"] for p in one["prompts"]] == [0, 4]
    assert one["prompts"][0] == {"frame": 0, "points": [[28.0, 30.0]], "labels": [1]}
    assert one["prompts"][1]["labels"] == [1, 0]
    assert two == {"id": 2, "prompts": [{"frame": 2, "box": [50.0, 54.0, 78.0, 82.0]}]}

    out = tmp_path / "cli.tif"
    assert cli.main(["propagate", str(path), "--prompts", str(saved), "--out", str(out)]) == 0
    np.testing.assert_array_equal(tifffile.imread(out), labels)
    np.testing.assert_array_equal(run_session(saved), labels)


def test_saved_commits_with_a_mask_prompt_replay_with_the_cli_and_the_api(
    make_napari_viewer, qtbot, checkpoint, tmp_path
):
    viewer = make_napari_viewer()
    path = open_movie(viewer, tmp_path, n=3)
    rough = np.zeros((3, 96, 96), np.uint32)
    rough[1, 56:80, 52:78] = 5  # a rough outline of the second cell on frame 1
    mine = viewer.add_labels(rough, name="rough")
    widget = dock_with_checkpoint(viewer, qtbot, checkpoint)
    segment = widget.segment_panel
    viewer.layers.selection.active = widget.prompts.points
    widget.prompts.points.add([0, 30, 28])
    commit(widget, viewer, qtbot, 1)
    viewer.dims.set_current_step(0, 1)
    segment.picker.set_choice(mine, 5)  # label 5 of 'rough' is the mask prompt of a new object
    commit(widget, viewer, qtbot, 2)
    assert not segment.picker.enabled.isChecked()  # used up
    np.testing.assert_array_equal(mine.data, rough)  # the user's layer is untouched
    segment.zoom.setChecked(True)
    widget.prompts.boxes.add_rectangles(box(1, 20, 20, 26, 26))  # small: segmented on a crop
    commit(widget, viewer, qtbot, 3)
    labels = np.array(viewer.layers["SAM2 labels"].data, copy=True)
    assert labels[1].any() and not labels[2].any()

    saved = widget.save_prompts(tmp_path / "session.json")
    data = json.loads(saved.read_text())
    assert data["mode"] == "segment" and data["model"]["zoom"] is True
    [prompt] = data["objects"][1]["prompts"]
    assert prompt["frame"] == 1 and set(prompt) == {"frame", "mask"}
    loaded = PromptSession.load(saved)
    np.testing.assert_array_equal(loaded.mask_array(loaded.objects[1].prompts[0], (96, 96)), rough[1] == 5)

    out = tmp_path / "cli.tif"
    assert cli.main(["prompt", str(path), "--prompts", str(saved), "--out", str(out)]) == 0
    np.testing.assert_array_equal(tifffile.imread(out), labels)
    np.testing.assert_array_equal(run_session(saved), labels)


# ------------------------------------------------------------------ several objects


def test_committed_and_prompted_objects_propagate_together(
    make_napari_viewer, qtbot, model, disks, fake_tracker
):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    segment = widget.segment_panel
    widget.prompts.points.add([0, 20, 30])
    commit(widget, viewer, qtbot, 1)  # object 1 on frame 0
    viewer.dims.set_current_step(0, 2)
    widget.prompts.boxes.add_rectangles(box(2, 60, 50, 80, 70))
    commit(widget, viewer, qtbot, 2)  # object 2 on frame 2
    segment.object_id.setValue(1)
    widget.prompts.points.add([4, 22, 40])  # object 1 again, on frame 4
    segment.object_id.setValue(0)
    viewer.dims.set_current_step(0, 1)
    widget.prompts.points.add([1, 45, 80])  # a new object, clicked on frames 1 and 3
    qtbot.waitUntil(lambda: segment.loop.preview is not None, timeout=TIMEOUT)
    widget.prompts.points.add([3, 47, 82])  # inside its mask on frame 1: the same object
    panel = widget.propagate_panel
    with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        widget.propagate()
    [tracker] = fake_tracker.made
    given = sorted((kind, frame, obj) for kind, frame, obj, *_ in tracker.prompts)
    assert given == [
        ("box", 2, 2), ("points", 0, 1), ("points", 1, 3), ("points", 3, 3), ("points", 4, 1)
    ]
    labels = viewer.layers["SAM2 labels"].data
    assert all(set(np.unique(labels[t])) == {0, 1, 2, 3} for t in range(6))
    assert "Tracking object(s) 1, 2, 3" in panel.status.text() or "Propagated" in panel.status.text()
    assert widget.session.record.ids() == [1, 2, 3]

    widget.prompts.points.add([5, 85, 10])  # new prompts only: object 4 alone
    widget.session.choices.track = FROM_PROMPTS
    with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        widget.propagate()
    assert [(p[0], p[1], p[2]) for p in fake_tracker.made[-1].prompts] == [("points", 5, 4)]


def test_a_label_is_a_mask_prompt_of_the_current_object(
    make_napari_viewer, qtbot, model, notes, monkeypatch
):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    rough = np.zeros((6, 96, 96), np.uint32)
    rough[0, 20:40, 18:38] = 3
    rough[0, 60:70, 60:70] = 8
    mine = viewer.add_labels(rough, name="rough")
    seen = []

    def fake(predictor, embedding, objects, zoom_plane=None):
        seen.append(objects)
        return [obj.mask.copy() for obj in objects], [0.9] * len(objects)

    monkeypatch.setattr(_preview, "decode_objects", fake)
    segment = widget.segment_panel
    viewer.layers.selection.active = widget.prompts.points
    mine.selected_label = 8
    segment.picker.set_choice(mine)  # the layer's selected label
    qtbot.waitUntil(lambda: segment.loop.preview is not None, timeout=TIMEOUT)
    [obj] = seen[-1]
    assert obj.obj_id is None and len(obj.points) == 0
    np.testing.assert_array_equal(obj.mask, rough[0] == 8)
    mine.selected_label = 3  # follows the selected label
    qtbot.waitUntil(lambda: seen[-1][0].mask.sum() == 400, timeout=TIMEOUT)
    widget.prompts.points.add([0, 30, 28])  # a click joins the mask prompt: still one object
    qtbot.waitUntil(lambda: len(seen[-1][0].points) == 1, timeout=TIMEOUT)
    commit(widget, viewer, qtbot, 1)
    labels = viewer.layers["SAM2 labels"].data
    np.testing.assert_array_equal(labels[0] == 1, rough[0] == 3)
    assert widget.session.record.prompts[1][(0,)].mask.sum() == 400

    segment.picker.set_choice(mine, 5)  # a label that is not there
    widget.commit()
    assert "Label 5 of 'rough' is not on this plane" in notes[-1]
    assert (labels == 1).sum() == 400 and labels.max() == 1


# ------------------------------------------------------------------ loading


def test_loading_prompts_recreates_the_prompt_layers_and_keeps_the_users(
    make_napari_viewer, qtbot, model, notes, fake_tracker, tmp_path
):
    session = PromptSession(mode="propagate", propagation={"direction": "forward"})
    session.add(3, Prompt(frame=0, points=[[30, 20], [60, 70]], labels=[1, 0]))
    session.add(3, Prompt(frame=2, points=[[34, 21]], labels=[1]))
    session.add(7, Prompt(frame=1, box=[50, 60, 70, 80]))
    mask = np.zeros((96, 96), bool)
    mask[10:20, 70:90] = True
    tifffile.imwrite(tmp_path / "mask.tif", mask.astype(np.uint8))
    session.add(9, Prompt(frame=3, mask="mask.tif"))
    saved = session.save(tmp_path / "prompts.json")

    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    old_points = widget.prompts.points
    old_points.add([1, 5, 5])  # the user's own click: must survive
    assert widget.load_prompts(saved, replace=False)
    assert old_points.name == "SAM2 points (before loading)" and len(old_points.data) == 1
    assert "napari_sam2_role" not in old_points.metadata
    points, boxes = widget.prompts.points, widget.prompts.boxes
    assert points is not old_points and points.name == "SAM2 points"
    np.testing.assert_array_equal(points.data, [[0, 20, 30], [0, 70, 60], [2, 21, 34]])  # (t, row, col)
    assert list(points.features["positive"]) == [True, False, True]
    assert list(points.features["object"]) == [3, 3, 3]
    np.testing.assert_array_equal(boxes.data[0], box(1, 60, 50, 80, 70))
    assert list(boxes.features["object"]) == [7]
    masks = viewer.layers["SAM2 mask prompts"]
    np.testing.assert_array_equal(masks.data[3] == 9, mask)
    assert widget.propagate_panel.direction.currentText() == "forward"

    assert widget.load_prompts(saved, replace=True)  # again: replaces, does not add
    assert len(widget.prompts.points.data) == 3 and len(widget.prompts.boxes.data) == 1
    assert len(old_points.data) == 1

    with qtbot.waitSignal(widget.propagate_panel.job.finished, timeout=TIMEOUT):
        widget.propagate()
    [tracker] = fake_tracker.made
    given = [(kind, frame, obj) for kind, frame, obj, *_ in tracker.prompts]
    assert given == [("points", 0, 3), ("points", 2, 3), ("box", 1, 7), ("mask", 3, 9)]
    np.testing.assert_array_equal(tracker.prompts[0][3], [[30, 20], [60, 70]])
    np.testing.assert_array_equal(tracker.prompts[-1][3], mask)
    labels = viewer.layers["SAM2 labels"].data
    np.testing.assert_array_equal(labels[3] == 9, mask)  # a mask alone is kept exactly
    assert not viewer.layers["SAM2 mask prompts"].data.any()  # used up, like the clicks

    far = PromptSession()
    far.add(1, Prompt(frame=40, points=[[1, 1]]))
    before = len(widget.prompts.points.data)
    assert not widget.load_prompts(far.save(tmp_path / "far.json"), replace=True)
    assert "position 40 of axis 0" in notes[-1]
    assert len(widget.prompts.points.data) == before


def test_saving_without_anything_to_save_says_so(make_napari_viewer, qtbot, model, notes, tmp_path):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    assert widget.save_prompts(tmp_path / "empty.json") is None
    assert "nothing to save" in notes[-1] and not (tmp_path / "empty.json").exists()
