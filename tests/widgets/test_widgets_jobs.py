"""Long jobs of the SAM 2 widget in a real viewer: propagation and segment everything.

They run in thread workers: results are written plane by plane as they arrive, Cancel stops within
one frame and keeps what was done, and the GUI thread keeps ticking meanwhile.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

napari = pytest.importorskip("napari")

from qtpy.QtCore import QTimer  # noqa: E402

from napari_sam2 import build_model  # noqa: E402
from napari_sam2._widgets._main import SAM2Widget  # noqa: E402
from napari_sam2._widgets._propagate_panel import FROM_LABELS  # noqa: E402

TIMEOUT = 60_000
MAX_GAP = 0.2  # seconds the GUI thread may go without processing a timer event


pytestmark = pytest.mark.usefixtures("own_settings")


@pytest.fixture(scope="module")
def model():
    """The random-weight test model, made to call objects present so tracked masks are not empty."""
    torch.manual_seed(0)
    m = build_model("sam2.1_hiera_test", device="cpu", image_size=128)
    with torch.no_grad():
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return m


def stack_image(n=6, size=96) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.normal(300, 30, (n, size, size))
    yy, xx = np.mgrid[:size, :size]
    for t in range(n):
        image[t, (yy - 48) ** 2 + (xx - 30 - 4 * t) ** 2 < 12**2] += 2000
    return image.astype(np.uint16)


def disk(shape, centre, radius=10) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2


def ready(viewer, qtbot, model, n=6) -> SAM2Widget:
    viewer.add_image(stack_image(n), name="movie")
    viewer.dims.set_current_step(0, 0)
    widget = SAM2Widget(viewer, load_model=False)
    viewer.window.add_dock_widget(widget, name="SAM 2")
    widget.model_panel.precision.setCurrentText("fp32")
    widget.session.set_model(model, "test")
    qtbot.waitUntil(lambda: len(widget.session.cache) == 1, timeout=TIMEOUT)
    return widget


class GapMeter:
    """A QTimer on the GUI thread; records the longest time between two of its ticks."""

    def __init__(self, interval_ms: int = 10) -> None:
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def __enter__(self) -> GapMeter:
        self._last = time.perf_counter()
        self.timer.start()
        return self

    def __exit__(self, *_) -> None:
        self.timer.stop()

    @property
    def max_gap(self) -> float:
        return max(self.gaps)


class FakeTracker:
    """Stands in for StackTracker: records prompts; propagate yields a disk per object and frame."""

    delay = 0.0
    made: list[FakeTracker] = []
    ends: dict[int, int] = {}  # object id -> its last frame (absent after it)

    def __init__(self, model, frames, precision="auto", normalization=None, **kwargs):
        self.frames, self.n = frames, len(frames)
        self.hw = tuple(frames.shape[1:3])
        self.prompts: list[tuple] = []
        self.computed: list[int] = []
        self.closed = False
        FakeTracker.made.append(self)

    def add_points(self, frame, obj_id, points, labels=None, clear=True):
        self.prompts.append(("points", frame, obj_id, np.asarray(points), np.asarray(labels)))

    def add_box(self, frame, obj_id, box, points=None, labels=None):
        self.prompts.append(("box", frame, obj_id, np.asarray(box)))

    def add_mask(self, frame, obj_id, mask):
        self.prompts.append(("mask", frame, obj_id, np.asarray(mask)))

    def propagate(self, direction="both", start=None, stop=None, writer=None):
        ids = sorted({p[2] for p in self.prompts})
        first = min(p[1] for p in self.prompts) if start is None else start
        low, high = 0, self.n - 1
        if stop is not None:
            if direction == "both":
                low, high = stop
            elif direction == "forward":
                high = stop
            else:
                low = stop
        order = list(range(first, high + 1)) if direction != "backward" else []
        if direction != "forward":
            order += list(range(first, low - 1, -1))
        try:
            for frame in order:
                time.sleep(self.delay)
                self.computed.append(frame)
                masks = np.stack(
                    [disk(self.hw, (20 + 25 * k, 30 + 4 * frame)) for k in range(len(ids))]
                )
                present = np.array([
                    -2.0 if frame > self.ends.get(i, self.n) else 3.0 for i in ids
                ])
                masks[present < 0] = False
                yield SimpleNamespace(
                    frame=frame,
                    obj_ids=ids,
                    masks=masks,
                    scores=np.ones(len(ids)),
                    present=present,
                )
        finally:
            self.closed = True


@pytest.fixture
def fake_tracker(monkeypatch):
    FakeTracker.made = []
    FakeTracker.delay = 0.0
    FakeTracker.ends = {}
    monkeypatch.setattr("napari_sam2.engine.tracker.StackTracker", FakeTracker)
    return FakeTracker


# ------------------------------------------------------------------ propagation


def test_propagate_prompts_writes_frames_as_they_arrive(
    make_napari_viewer, qtbot, model, fake_tracker
):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    points = widget.prompts.points
    points.add([2, 20, 38])  # (t, row, col) on frame 2
    widget.toggle_positive()
    points.add([2, 80, 80])
    panel = widget.propagate_panel
    seen = []  # planes holding labels after each frame arrived
    write = panel._write

    def watch(result):
        write(result)
        seen.append(int((viewer.layers["SAM2 labels"].data > 0).any(axis=(1, 2)).sum()))

    panel._write = watch
    with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        widget.propagate()
    labels = viewer.layers["SAM2 labels"]
    [tracker] = fake_tracker.made
    kind, frame, obj_id, xy, signs = tracker.prompts[0]
    assert (kind, frame, obj_id) == ("points", 2, 1)
    np.testing.assert_array_equal(xy, [[38, 20], [80, 80]])  # (x, y)
    np.testing.assert_array_equal(signs, [1, 0])
    assert seen == [1, 2, 3, 4, 4, 5, 6]  # frames 2..5, 2 again, then 1, 0: one after the other
    assert (labels.data > 0).any(axis=(1, 2)).all() and set(np.unique(labels.data)) == {0, 1}
    assert tracker.closed
    assert len(points.data) == 0  # the propagated prompts are cleared
    assert "Propagated through 6 frame(s)" in panel.status.text()
    labels.undo()  # the whole run is one undo step
    assert not labels.data.any()


def test_frame_range_and_where_each_object_ended(make_napari_viewer, qtbot, model, fake_tracker):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model, n=8)
    fake_tracker.ends = {2: 4}  # object 2 is gone after frame 4
    widget.prompts.points.add([2, 20, 30])
    widget.segment_panel.object_id.setValue(2)
    widget.prompts.points.add([2, 45, 34])
    widget.segment_panel.object_id.setValue(0)
    panel = widget.propagate_panel
    panel.first_frame.setValue(1)  # the user limits the run to frames 1-5
    panel.last_frame.setValue(5)
    assert (widget.session.choices.first_frame, widget.session.choices.last_frame) == (1, 5)
    reports = []
    with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        widget.propagate()
        panel.job._relay.progress.connect(lambda done, total: reports.append((done, total)))
    [tracker] = fake_tracker.made
    assert sorted(set(tracker.computed)) == [1, 2, 3, 4, 5]
    labels = viewer.layers["SAM2 labels"].data
    assert not labels[[0, 6, 7]].any() and labels[1:6].any(axis=(1, 2)).all()
    assert {total for _, total in reports} == {5.0} and max(done for done, _ in reports) == 5
    rows = {
        panel.table.item(r, 0).text(): [panel.table.item(r, c).text() for c in (1, 2)]
        for r in range(panel.table.rowCount())
    }
    assert rows == {"2": ["frames 1-4", "1"], "3": ["frames 1-5", "0"]}  # the new object is 3
    assert "object 2: frames 1-4" in panel.status.text()
    panel.first_frame.setValue(3)  # a range that leaves out the prompted frame is refused
    widget.prompts.points.add([2, 70, 70])
    widget.propagate()
    assert len(fake_tracker.made) == 1


def test_cancel_stops_within_one_frame_and_keeps_what_was_done(
    make_napari_viewer, qtbot, model, fake_tracker
):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model, n=30)
    fake_tracker.delay = 0.1
    widget.prompts.points.add([0, 20, 30])
    panel = widget.propagate_panel
    widget.propagate()
    labels = viewer.layers["SAM2 labels"]
    qtbot.waitUntil(lambda: (labels.data > 0).any(axis=(1, 2)).sum() >= 3, timeout=TIMEOUT)
    [tracker] = fake_tracker.made
    computed_at_cancel = len(tracker.computed)
    assert not panel.job.isHidden() and panel.job.cancel_button.isEnabled()
    with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        widget.cancel()
    assert len(tracker.computed) <= computed_at_cancel + 1
    assert tracker.closed
    written = int((labels.data > 0).any(axis=(1, 2)).sum())
    assert written == len(tracker.computed) and written < 30
    assert "Cancelled after" in panel.status.text()
    assert len(widget.prompts.points.data) == 1  # prompts stay for another try
    labels.undo()
    assert not labels.data.any()


def test_propagate_objects_labelled_on_this_plane(make_napari_viewer, qtbot, model, fake_tracker):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    user = np.zeros((6, 96, 96), np.uint32)
    user[0, 10:30, 25:35] = 4
    user[0, 40:60, 25:35] = 9
    user[3, 0:5, 0:5] = 2  # painted elsewhere: must survive
    labels = viewer.add_labels(user.copy(), name="mine")
    widget.output_panel.combo.set_layer(labels)
    widget.session.choices.track = FROM_LABELS
    with qtbot.waitSignal(widget.propagate_panel.job.finished, timeout=TIMEOUT):
        widget.propagate()
    [tracker] = fake_tracker.made
    assert [(p[0], p[1], p[2]) for p in tracker.prompts] == [("mask", 0, 4), ("mask", 0, 9)]
    np.testing.assert_array_equal(labels.data[0], user[0])  # the source plane is left as drawn
    assert (labels.data[3, 0:5, 0:5] == 2).all()
    assert {4, 9} <= set(np.unique(labels.data[5]))


def test_propagation_misuse_is_explained_and_changes_nothing(
    make_napari_viewer, qtbot, model, notes, fake_tracker
):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    before = [layer.name for layer in viewer.layers]
    widget.propagate()
    assert "No prompts on this stack" in notes[-1]
    boxes = widget.prompts.boxes
    for r in (10, 50):
        boxes.add_rectangles(np.array([[0, r, 10], [0, r, 30], [0, r + 20, 30], [0, r + 20, 10]]))
    widget.prompts.points.add([3, 40, 40])  # and a click for a new object on another plane
    widget.propagate()
    assert "follow one new object" in notes[-1]
    boxes.data = []
    widget.session.choices.track = FROM_LABELS
    widget.propagate()
    assert "commit objects on this plane first" in notes[-1]
    assert [layer.name for layer in viewer.layers] == before
    assert not fake_tracker.made
    widget.session.set_model(None)
    widget.propagate()
    assert "No model is loaded" in notes[-1]
    assert not widget.propagate_panel.button.isEnabled()


def test_real_propagation_keeps_the_gui_responsive(
    make_napari_viewer, qtbot, model, record_property
):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model, n=30)
    widget.prompts.points.add([0, 48, 30])
    qtbot.waitUntil(lambda: widget.segment_panel.loop.preview is not None, timeout=TIMEOUT)
    widget.output_panel.target()  # make the output layer first: adding layers is napari's work
    panel = widget.propagate_panel
    with GapMeter() as meter:
        widget.propagate()
        with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
            pass
    labels = viewer.layers["SAM2 labels"]
    record_property("max_gui_gap_propagate_s", round(meter.max_gap, 3))
    print(
        f"propagation of 30 frames: max GUI gap {meter.max_gap * 1000:.0f} ms "
        f"over {len(meter.gaps)} ticks"
    )
    assert (labels.data > 0).any(axis=(1, 2)).sum() >= 1
    assert meter.max_gap < MAX_GAP


# ------------------------------------------------------------------ segment everything


def test_segment_everything_writes_a_new_labels_layer(
    make_napari_viewer, qtbot, model, record_property
):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model, n=4)
    panel = widget.everything_panel
    panel.points_per_side.setValue(16)
    panel.pred_iou.setValue(0.0)
    panel.stability.setValue(0.0)
    viewer.dims.set_current_step(0, 2)
    widget.segment_everything()  # adds the output layer, then runs in a worker
    with GapMeter() as meter, qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        pass
    layer = viewer.layers["SAM2 everything"]
    assert layer.data.shape == (4, 96, 96)
    assert layer.data[2].any() and not layer.data[[0, 1, 3]].any()
    assert "on 1 plane(s)" in panel.status.text()
    record_property("max_gui_gap_everything_s", round(meter.max_gap, 3))
    print(
        f"segment everything: max GUI gap {meter.max_gap * 1000:.0f} ms "
        f"over {len(meter.gaps)} ticks"
    )
    assert meter.max_gap < MAX_GAP

    panel.points_per_side.setValue(4)
    panel.scope.setCurrentIndex(1)  # every plane, cancelled after the first
    widget.segment_everything()
    second = viewer.layers["SAM2 everything [1]"]
    qtbot.waitUntil(lambda: second.data.any(), timeout=TIMEOUT)
    with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        widget.cancel()
    done = int(second.data.any(axis=(1, 2)).sum())
    assert 1 <= done <= 2 and "Cancelled" in panel.status.text()
    ids = [set(np.unique(second.data[t])) - {0} for t in range(done)]
    assert not (len(ids) == 2 and ids[0] & ids[1])  # ids are unique across planes


def test_4d_propagates_along_the_chosen_axis_at_the_current_index(
    make_napari_viewer, qtbot, model, fake_tracker
):
    viewer = make_napari_viewer()
    image = np.stack([stack_image(6)] * 3)  # T, Z, Y, X
    viewer.add_image(image, name="tzyx")
    widget = SAM2Widget(viewer, load_model=False)
    viewer.window.add_dock_widget(widget, name="SAM 2")
    axis = widget.image_panel.stack_axis
    axis.setCurrentIndex(axis.findData(1))  # propagate along Z
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 2)
    widget.model_panel.precision.setCurrentText("fp32")
    widget.session.set_model(model, "test")
    widget.prompts.points.add([1, 2, 48, 30])
    with qtbot.waitSignal(widget.propagate_panel.job.finished, timeout=TIMEOUT):
        widget.propagate()
    [tracker] = fake_tracker.made
    assert tracker.frames.shape == (6, 96, 96) and tracker.prompts[0][1] == 2
    labels = viewer.layers["SAM2 labels"].data
    assert labels.shape == (3, 6, 96, 96)
    assert labels[1].any(axis=(1, 2)).all() and not labels[[0, 2]].any()
