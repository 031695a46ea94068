"""The SAM 2 dock widget in a real napari viewer (Xvfb): layers, preview, commit, undo, errors.

Random weights make masks meaningless, so these tests check mechanics; where the content of a
mask matters, the decoder is replaced by one that returns a known disk.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

napari = pytest.importorskip("napari")

from napari.utils.notifications import notification_manager  # noqa: E402

from napari_sam2 import build_model  # noqa: E402
from napari_sam2._widgets import _preview  # noqa: E402
from napari_sam2._widgets._main import SAM2Widget  # noqa: E402

TIMEOUT = 20_000


pytestmark = pytest.mark.usefixtures("own_settings")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("sam2.1_hiera_test", device="cpu", image_size=128)


@pytest.fixture
def notes():
    """Messages shown through napari's notifications during the test: [(severity, text)]."""
    seen: list[tuple[str, str]] = []

    def record(event):
        notification = getattr(event, "value", event)
        seen.append((str(notification.severity), str(notification.message)))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


def errors(notes) -> list[str]:
    return [text for severity, text in notes if severity.lower() == "error"]


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def dock(viewer) -> SAM2Widget:
    widget = SAM2Widget(viewer, load_model=False)
    viewer.window.add_dock_widget(widget, name="SAM 2")
    return widget


def stack_image(n=5, size=96) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.normal(300, 30, (n, size, size))
    yy, xx = np.mgrid[:size, :size]
    image[:, (yy - 48) ** 2 + (xx - 48) ** 2 < 15**2] += 2000
    return image.astype(np.uint16)


def disk(shape=(96, 96), centre=(48, 48), radius=12) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2


def centre(obj) -> tuple[float, float]:
    """(row, col) of an object's box centre, else of its first click."""
    if obj.box is not None:
        return (obj.box[1] + obj.box[3]) / 2, (obj.box[0] + obj.box[2]) / 2
    return obj.points[0][1], obj.points[0][0]


@pytest.fixture
def known_masks(monkeypatch):
    """The decoder returns a disk of radius 12 around each object's first click (or box centre)."""
    calls = []

    def fake(predictor, embedding, objects, zoom_plane=None):
        calls.append(objects)
        return [disk(embedding.image_hw, centre(obj)) for obj in objects], [0.9 for _ in objects]

    monkeypatch.setattr(_preview, "decode_objects", fake)
    return calls


def ready(viewer, qtbot, model, image=None, **kwargs):
    """A viewer with an image, the docked widget and the model; waits for the first embedding."""
    viewer.add_image(stack_image() if image is None else image, name="cells", **kwargs)
    for axis in range(viewer.dims.ndim - 2):
        viewer.dims.set_current_step(axis, 0)  # napari opens stacks in the middle
    widget = dock(viewer)
    widget.model_panel.precision.setCurrentText("fp32")  # exact, and quick to start on any CPU
    widget.session.set_model(model, "test")
    qtbot.waitUntil(lambda: len(widget.session.cache) == 1, timeout=TIMEOUT)
    return widget


def snapshot(viewer) -> dict[str, np.ndarray]:
    return {layer.name: np.array(layer.data, copy=True) for layer in viewer.layers}


def assert_unchanged(before, viewer):
    after = snapshot(viewer)
    assert list(after) == list(before)
    for name, data in before.items():
        np.testing.assert_array_equal(after[name], data, err_msg=name)


# ------------------------------------------------------------------ layers and preview


def test_choosing_an_image_makes_prompt_layers_and_embeds_the_current_plane(viewer, qtbot, model):
    widget = ready(viewer, qtbot, model)
    names = [layer.name for layer in viewer.layers]
    assert names == ["cells", "SAM2 points", "SAM2 boxes", "SAM2 preview"]
    points = viewer.layers["SAM2 points"]
    assert points.ndim == 3 and points.mode == "add"
    assert viewer.layers.selection.active is points
    assert widget.image_panel.stack_axis.currentData() == 0
    viewer.dims.set_current_step(0, 3)
    qtbot.waitUntil(lambda: len(widget.session.cache) == 2, timeout=TIMEOUT)


def test_click_shows_a_preview_on_that_plane_only(viewer, qtbot, model):
    widget = ready(viewer, qtbot, model)
    viewer.dims.set_current_step(0, 2)
    panel = widget.segment_panel
    widget.prompts.points.add([2, 48, 48])  # (z, row, col)
    qtbot.waitUntil(lambda: panel.loop.preview is not None, timeout=TIMEOUT)
    preview = viewer.layers["SAM2 preview"]
    assert preview.data.shape == (96, 96) and preview.data.any()
    assert panel.loop.preview.index == (2,)
    viewer.dims.set_current_step(0, 3)  # no prompts there: the preview goes
    qtbot.waitUntil(lambda: panel.loop.preview is None and not preview.data.any(), timeout=TIMEOUT)


def test_zoom_segments_on_a_crop_of_the_plane(viewer, qtbot, model, monkeypatch):
    real, windows = _preview.decode_objects, []

    def spy(predictor, embedding, objects, zoom_plane=None):
        result = real(predictor, embedding, objects, zoom_plane)
        windows.append(None if predictor._zoomed is None else predictor._zoomed[0][0])  # (window, brightening)
        return result

    monkeypatch.setattr(_preview, "decode_objects", spy)
    widget = ready(viewer, qtbot, model)
    panel = widget.segment_panel
    widget.prompts.boxes.add_rectangles(np.array([[0, 45, 45], [0, 45, 51], [0, 51, 51], [0, 51, 45]]))
    qtbot.waitUntil(lambda: panel.loop.preview is not None, timeout=TIMEOUT)
    assert windows[-1] is None  # whole plane
    panel.zoom.setChecked(True)
    qtbot.waitUntil(lambda: panel.loop.preview is not None and windows[-1] is not None, timeout=TIMEOUT)
    x0, y0, x1, y1 = windows[-1]  # a 64 px crop (the 128 px model enlarges it 2x) of the 96 px plane
    assert x1 - x0 == y1 - y0 == 64 and x0 <= 48 < x1 and y0 <= 48 < y1
    assert viewer.layers["SAM2 preview"].data.shape == (96, 96)


def test_points_carry_their_sign_and_t_flips_it(viewer, qtbot, model, known_masks):
    widget = ready(viewer, qtbot, model)
    points = widget.prompts.points
    points.add([0, 48, 48])
    widget.toggle_positive()
    points.add([0, 10, 10])
    assert list(points.features["positive"]) == [True, False]
    assert "negative" in widget.segment_panel.sign_button.text()
    assert not np.allclose(points.face_color[0], points.face_color[1])
    points.mode = "select"
    points.selected_data = {0, 1}
    widget.toggle_positive()
    assert list(points.features["positive"]) == [False, True]
    qtbot.waitUntil(
        lambda: bool(known_masks) and list(known_masks[-1][0].labels) == [0, 1], timeout=TIMEOUT
    )
    np.testing.assert_array_equal(known_masks[-1][0].points, [[48, 48], [10, 10]])  # (x, y)


def test_a_box_is_a_prompt_on_its_plane(viewer, qtbot, model, known_masks):
    widget = ready(viewer, qtbot, model)
    boxes = widget.prompts.boxes
    boxes.add_rectangles(
        np.array([[0, 30, 20], [0, 30, 70], [0, 60, 70], [0, 60, 20]])
    )  # rows 30-60, cols 20-70, z=0
    qtbot.waitUntil(lambda: widget.segment_panel.loop.preview is not None, timeout=TIMEOUT)
    [obj] = known_masks[-1]
    np.testing.assert_allclose(obj.box, [20, 30, 70, 60])


def test_stale_previews_are_dropped(viewer, qtbot, model, monkeypatch):
    widget = ready(viewer, qtbot, model)
    panel = widget.segment_panel
    slow = []

    def slow_decode(predictor, embedding, objects, zoom_plane=None):
        slow.append(1)
        time.sleep(0.4)
        return [disk() for _ in objects], [0.5 for _ in objects]

    monkeypatch.setattr(_preview, "decode_objects", slow_decode)
    widget.prompts.points.add([0, 48, 48])
    qtbot.waitUntil(lambda: bool(slow), timeout=TIMEOUT)
    viewer.dims.set_current_step(0, 4)  # the plane changes while the decoder runs
    qtbot.waitUntil(lambda: not panel.loop._decoding, timeout=TIMEOUT)
    qtbot.wait(200)
    assert panel.loop.preview is None and not viewer.layers["SAM2 preview"].data.any()


# ------------------------------------------------------------------ commit and undo


def test_commit_writes_a_new_id_and_ctrl_z_undoes_it(viewer, qtbot, model, known_masks):
    widget = ready(viewer, qtbot, model)
    viewer.dims.set_current_step(0, 1)
    qtbot.waitUntil(lambda: len(widget.session.cache) == 2, timeout=TIMEOUT)
    panel = widget.segment_panel
    widget.prompts.points.add([1, 48, 48])
    widget.commit()  # waits for the preview, then writes
    qtbot.waitUntil(
        lambda: "SAM2 labels" in viewer.layers and viewer.layers["SAM2 labels"].data.any(),
        timeout=TIMEOUT,
    )
    labels = viewer.layers["SAM2 labels"]
    assert labels.data.shape == (5, 96, 96) and labels.data.dtype == np.uint32
    np.testing.assert_array_equal(labels.data[1] == 1, disk())
    assert not labels.data[[0, 2, 3, 4]].any()
    assert len(widget.prompts.points.data) == 0  # the committed prompts are cleared
    assert viewer.layers.selection.active is widget.prompts.points  # clicks keep going to the prompts

    widget.prompts.points.add([1, 20, 20])  # a second object gets the next id
    widget.commit()
    qtbot.waitUntil(lambda: labels.data.max() == 2, timeout=TIMEOUT)

    widget.undo()
    assert labels.data.max() == 1
    labels.undo()  # napari's own history (what Ctrl-Z on the layer does)
    assert labels.data.max() == 0
    labels.redo()
    assert labels.data.max() == 1


def test_commit_never_overwrites_user_labels_unless_asked(viewer, qtbot, model, known_masks):
    user = np.zeros((5, 96, 96), np.uint32)
    user[0, 40:56, 40:56] = 7
    widget = ready(viewer, qtbot, model)
    labels = viewer.add_labels(user.copy(), name="mine")
    widget.output_panel.combo.set_layer(labels)
    with labels.block_history():  # a stroke painted by the user, in the layer's history
        labels.paint((0, 10, 10), 3)
    painted = labels.data.copy()
    viewer.layers.selection.active = widget.prompts.points
    widget.prompts.points.add([0, 48, 48])
    widget.commit()
    qtbot.waitUntil(lambda: labels.data.max() == 8, timeout=TIMEOUT)
    assert (labels.data[painted > 0] == painted[painted > 0]).all()  # nothing of the user's is lost
    expected = np.zeros_like(painted, dtype=bool)
    expected[0] = disk() & (painted[0] == 0)
    np.testing.assert_array_equal(labels.data == 8, expected)
    widget.undo()
    np.testing.assert_array_equal(labels.data, painted)
    labels.undo()  # and the user's own stroke is still undoable after ours
    np.testing.assert_array_equal(labels.data, user)

    widget.output_panel.overwrite.setChecked(True)
    widget.prompts.points.add([0, 48, 48])
    widget.commit()
    qtbot.waitUntil(lambda: labels.data.max() == 8, timeout=TIMEOUT)
    assert (labels.data[0][disk()] == 8).all()


def test_keyboard_shortcuts(viewer, qtbot, model, known_masks):
    widget = ready(viewer, qtbot, model)
    from qtpy.QtCore import Qt

    canvas = viewer.window._qt_viewer.canvas.native
    points = widget.prompts.points
    viewer.layers.selection.active = points
    qtbot.keyClick(canvas, Qt.Key.Key_T)
    assert not widget.prompts.points.feature_defaults["positive"].iloc[0]
    qtbot.keyClick(canvas, Qt.Key.Key_T)
    points.add([0, 48, 48])
    qtbot.keyClick(canvas, Qt.Key.Key_C)
    qtbot.waitUntil(
        lambda: "SAM2 labels" in viewer.layers and viewer.layers["SAM2 labels"].data.any(),
        timeout=TIMEOUT,
    )
    viewer.layers.selection.active = points
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not viewer.layers["SAM2 labels"].data.any()
    points.add([0, 20, 20])
    qtbot.keyClick(canvas, Qt.Key.Key_C, Qt.KeyboardModifier.ShiftModifier)
    assert len(points.data) == 0
    assert "Shift-T" in widget.help.text() and "Ctrl-Z" in widget.help.text()


# ------------------------------------------------------------------ images of every kind


@pytest.mark.parametrize(
    "shape, dtype, kwargs, channel_axis, labels_shape",
    [
        ((64, 80), np.float32, {}, None, (64, 80)),
        ((64, 80, 3), np.uint8, {"rgb": True}, None, (64, 80)),
        ((2, 3, 64, 80), np.uint16, {}, None, (2, 3, 64, 80)),  # T, Z, Y, X
        ((3, 4, 64, 80), np.uint16, {}, 0, (4, 64, 80)),  # C, Z, Y, X
    ],
)
def test_images_of_any_kind_can_be_committed(
    viewer, qtbot, model, known_masks, shape, dtype, kwargs, channel_axis, labels_shape
):
    image = (np.random.default_rng(0).random(shape) * 200).astype(dtype)
    widget = ready(viewer, qtbot, model, image=image, **kwargs)
    if channel_axis is not None:
        combo = widget.image_panel.channel_axis
        combo.setCurrentIndex(combo.findData(channel_axis))
        qtbot.waitUntil(
            lambda: widget.session.source.channel_dim == 0 and len(widget.session.cache) == 1,
            timeout=TIMEOUT,
        )
    points = widget.prompts.points
    position = list(viewer.dims.current_step[-points.ndim : -2]) + [30, 40]
    points.add(position)
    widget.commit()
    qtbot.waitUntil(
        lambda: "SAM2 labels" in viewer.layers and viewer.layers["SAM2 labels"].data.any(),
        timeout=TIMEOUT,
    )
    assert viewer.layers["SAM2 labels"].data.shape == labels_shape


# ------------------------------------------------------------ misuse: a notification, no change


def test_commit_without_image_or_model_or_prompts(viewer, qtbot, model, notes):
    widget = dock(viewer)
    widget.commit()
    assert "No image is chosen" in errors(notes)[-1]
    viewer.add_image(stack_image(), name="cells")
    before = snapshot(viewer)
    widget.commit()
    assert "No model is loaded" in errors(notes)[-1]
    widget.session.set_model(model, "test")
    qtbot.waitUntil(lambda: len(widget.session.cache) == 1, timeout=TIMEOUT)
    widget.commit()
    assert "No prompts on this slice" in errors(notes)[-1]
    widget.undo()
    assert "Nothing to undo" in errors(notes)[-1]
    assert_unchanged(before, viewer)


def test_prompt_outside_the_image(viewer, qtbot, model, notes, known_masks):
    widget = ready(viewer, qtbot, model)
    widget.prompts.points.add([0, 48, 150])
    qtbot.waitUntil(lambda: bool(errors(notes)), timeout=TIMEOUT)
    assert "outside the 96 x 96 image" in errors(notes)[-1]
    before = snapshot(viewer)
    widget.commit()
    assert "outside" in errors(notes)[-1]
    assert_unchanged(before, viewer)
    assert not known_masks


def test_wrong_dimensionality(viewer, qtbot, model, notes):
    viewer.add_image(np.zeros((2, 2, 2, 2, 40, 40)), name="6-D")
    widget = dock(viewer)
    assert "up to 4-D" in errors(notes)[-1]
    assert widget.session.source is None
    before = snapshot(viewer)
    widget.commit()
    assert "No image is chosen" in errors(notes)[-1]
    viewer.layers.clear()
    viewer.add_image(np.zeros((40, 40)), name="flat")
    widget.session.set_model(model, "test")
    before = snapshot(viewer)
    assert not widget.propagate_panel.button.isEnabled()
    assert "stack" in widget.propagate_panel.button.toolTip()
    widget.propagate()
    assert "needs a stack" in errors(notes)[-1]
    assert_unchanged(before, viewer)


def test_model_errors_are_notifications(viewer, qtbot, notes, tmp_path):
    widget = dock(viewer)
    panel = widget.model_panel
    assert not widget.propagate_panel.button.isEnabled()
    assert "model" in widget.propagate_panel.button.toolTip().lower()
    panel.set_choice("file")
    panel.load()
    assert "Choose a checkpoint file" in errors(notes)[-1]
    bad = tmp_path / "weights.pt"
    bad.write_text("<html>not weights</html>")
    panel.path.setText(str(bad))
    panel.load()
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=TIMEOUT)
    assert "Loading the model failed" in errors(notes)[-1]
    assert widget.session.model is None
    panel.set_choice("sam2.1_hiera_large")
    panel.load()
    qtbot.waitUntil(lambda: not panel.job.busy, timeout=TIMEOUT)
    if (
        widget.session.model is None
    ):  # no official weights here (and offline): say where to put them
        assert "sam2.1_hiera_large.pt" in errors(notes)[-1]


def test_model_loads_in_a_worker_and_the_choice_is_remembered(viewer, qtbot):
    widget = dock(viewer)
    panel = widget.model_panel
    panel.set_choice("test")
    panel.device.setCurrentText("cpu")
    panel.precision.setCurrentText("fp32")
    with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        widget.load_model()
        assert panel.job.busy and not panel.load_button.isEnabled()
    assert widget.session.model is not None and widget.session.precision == "fp32"
    again = dock(viewer)
    assert again.model_panel.choice() == "test"
    assert again.model_panel.device.currentText() == "cpu"
    assert again.model_panel.precision.currentText() == "fp32"


def test_built_in_model_is_offered_first_and_is_the_default_offline(viewer, qtbot, empty_cache, fake_shipped):
    from napari_sam2.checkpoints import shipped

    panel = dock(viewer).model_panel
    assert panel.preset.itemData(0) == shipped.SHIPPED_MODEL
    assert panel.choice() == shipped.SHIPPED_MODEL  # nothing remembered: the offline default
    panel.device.setCurrentText("cpu")
    with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        panel.load()
    assert panel.session.model.config.name == shipped.SHIPPED_MODEL
    assert "built-in" in panel.status.text()


# ------------------------------------------------------------------ plugin contributions


@pytest.mark.parametrize(
    "sample, n_layers, ndim",
    [("nuclei_fluorescence", 2, 2), ("nuclei_histology", 2, 2), ("timelapse", 2, 3), ("zstack", 2, 3), ("cell", 1, 2)],
)
def test_sample_data_loads_with_ground_truth(viewer, sample, n_layers, ndim):
    viewer.open_sample("napari-sam2", sample)
    assert len(viewer.layers) == n_layers
    image = viewer.layers[0]
    assert image.ndim == ndim
    if n_layers == 2:
        truth = viewer.layers[1]
        assert truth.data.shape == image.data.shape[: image.ndim] and truth.data.max() > 0


def test_manifest_widget_and_commands(viewer, qtbot, model):
    viewer.add_image(stack_image(), name="cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    from napari._app_model import get_app_model

    from napari_sam2._widgets._main import widget_for

    widget = widget_for(viewer)
    assert widget is not None and widget.session.source is not None
    get_app_model().commands.execute_command("napari-sam2.toggle_positive").result()
    assert not widget.prompts.points.feature_defaults["positive"].iloc[0]
