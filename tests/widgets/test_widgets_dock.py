"""The dock as a user meets it, in a real napari window (Xvfb) with real Qt events: the shared
choices, clicks on the canvas, keys, candidates, model loading, progress and messages.

Small images and the random-weight test model keep each test to a few seconds; where the content
of a mask matters, the decoder is replaced by one that returns known masks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

napari = pytest.importorskip("napari")

from qtpy.QtCore import QPoint, Qt  # noqa: E402

from napari_sam2 import build_model  # noqa: E402
from napari_sam2._widgets import _preview, _settings  # noqa: E402
from napari_sam2._widgets._main import SAM2Widget  # noqa: E402
from napari_sam2._widgets._session import Choices, Session  # noqa: E402

TIMEOUT = 20_000
pytestmark = pytest.mark.usefixtures("own_settings")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("sam2.1_hiera_test", device="cpu", image_size=128)


def nuclei(n=4, size=96) -> np.ndarray:
    """A stack with one bright disk at (48, 48) on every plane."""
    rng = np.random.default_rng(0)
    image = rng.normal(300, 30, (n, size, size))
    yy, xx = np.mgrid[:size, :size]
    image[:, (yy - 48) ** 2 + (xx - 48) ** 2 < 15**2] += 2000
    return image.astype(np.uint16)


def disk(shape, centre, radius=12) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2


@pytest.fixture
def candidates(monkeypatch):
    """The decoder returns three nested disks (radius 6, 12, 18) for a single click, the middle
    one scored best, and one disk for other prompts."""

    def fake(predictor, embedding, objects, zoom_plane=None):
        masks, scores = [], []
        for obj in objects:
            centre = (obj.points[0][1], obj.points[0][0])
            if obj.multimask:
                masks.append(np.stack([disk(embedding.image_hw, centre, r) for r in (6, 12, 18)]))
                scores.append(np.array([0.5, 0.9, 0.7]))
            else:
                masks.append(disk(embedding.image_hw, centre))
                scores.append(0.8)
        return masks, scores

    monkeypatch.setattr(_preview, "decode_objects", fake)


def dock(viewer, **kwargs) -> SAM2Widget:
    widget = SAM2Widget(viewer, **kwargs)
    viewer.window.add_dock_widget(widget, name="SAM 2")
    return widget


def ready(viewer, qtbot, model, image=None) -> SAM2Widget:
    viewer.add_image(nuclei() if image is None else image, name="nuclei")
    for axis in range(viewer.dims.ndim - 2):
        viewer.dims.set_current_step(axis, 0)
    widget = dock(viewer, load_model=False)
    widget.session.choices.precision = "fp32"
    widget.session.set_model(model, "test")
    qtbot.waitUntil(lambda: len(widget.session.cache) == 1, timeout=TIMEOUT)
    return widget


def click(viewer, qtbot, row: float, col: float, button=Qt.MouseButton.LeftButton) -> None:
    """A real mouse click on the canvas at a pixel of the (2-D view of the) image."""
    canvas = viewer.window._qt_viewer.canvas
    x, y = canvas.view.scene.transform.map([col, row, 0, 1])[:2]
    qtbot.mouseClick(canvas.native, button, pos=QPoint(round(float(x)), round(float(y))))


def key(viewer, qtbot, which, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, which, modifier)


# ------------------------------------------------------------------ the shared choices (Qt-free)


def test_choices_are_qt_free_and_say_what_changed():
    session = Session(viewer=None)
    seen = []
    session.choices.events.connect(lambda info: seen.append(info.signal.name))
    session.cache.put((0,), np.zeros(4))
    token = session._model_token
    session.choices.precision = "bf16"  # another precision: embeddings are stale
    session.choices.zoom = True
    session.choices.direction = "forward"
    assert seen == ["precision", "zoom", "direction"]
    assert session.precision == "bf16" and len(session.cache) == 0
    assert session._model_token == token + 1
    session.choices.direction = "forward"  # the same value: no event
    assert seen == ["precision", "zoom", "direction"]
    assert Choices().track == "all" and Choices().first_frame is None


def test_panels_follow_the_choices_and_write_them(make_napari_viewer, qtbot, model, tmp_path):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    choices = widget.session.choices
    # a choice set in the state shows in every panel that has it
    choices.zoom, choices.direction, choices.overwrite, choices.last_frame = True, "backward", True, 2
    assert widget.segment_panel.zoom.isChecked()
    assert widget.propagate_panel.direction.currentText() == "backward"
    assert widget.output_panel.overwrite.isChecked()
    assert widget.propagate_panel.last_frame.value() == 2
    assert widget.propagate_panel.first_frame.text() == "first"  # no limit shown as such
    # a control the user changes writes the state
    widget.model_panel.precision.setCurrentIndex(widget.model_panel.precision.findData("bf16"))
    widget.image_panel.stack_axis.setCurrentIndex(0)  # none: single planes
    widget.segment_panel.object_id.setValue(7)
    assert (choices.precision, choices.stack_axis, choices.object_id) == ("bf16", None, 7)
    # the object choice reaches the prompt layers: the next click belongs to object 7
    widget.image_panel.stack_axis.setCurrentIndex(1)
    widget.prompts.points.add([0, 48, 48])
    assert int(widget.prompts.points.features["object"].iloc[-1]) == 7
    # the panels hold no reference to each other
    for panel in (widget.segment_panel, widget.propagate_panel, widget.session_panel):
        others = {"segment", "propagate", "model", "image", "session_panel"}
        assert not others & set(vars(panel)), type(panel).__name__


# ------------------------------------------------------------------ clicks reach the prompts


def test_the_dock_shows_the_intensity_limits_it_uses(make_napari_viewer):
    """The image line says which intensities become black and white, for the auto rule and for
    the layer's contrast limits (what a user checks when masks swallow bright objects)."""
    from napari_sam2.images.normalization import auto_normalization

    viewer = make_napari_viewer()
    data = nuclei()
    layer = viewer.add_image(data, name="nuclei")
    widget = dock(viewer, load_model=False)
    panel = widget.image_panel
    expected = auto_normalization(data)
    assert f"intensities {expected.low[0]:.4g}-{expected.high[0]:.4g} shown black to white" in panel.info.text()
    layer.contrast_limits = (250.0, 4000.0)
    panel.normalization.setCurrentIndex(panel.normalization.findData("contrast"))
    assert "intensities 250-4000 shown black to white" in panel.info.text()
    # the layer's gamma goes with its limits (press Re-read after changing either)
    layer.gamma = 0.5
    panel.reread.click()
    source = widget.session.source
    assert "intensities 250-4000 shown black to white, gamma 0.5" in panel.info.text()
    assert source.normalization().gamma == 0.5
    from napari_sam2.images.model_input import prepare_image

    expected = np.clip((data[1].astype(np.float32) - 250) / 3750, 0, 1) ** 0.5
    np.testing.assert_allclose(prepare_image(data[1], source.normalization())[..., 0], expected, atol=1e-6)


def test_first_click_counts_when_the_image_is_opened_after_the_dock(
    make_napari_viewer, qtbot, model, candidates
):
    viewer = make_napari_viewer(show=True)
    widget = dock(viewer, load_model=False)
    widget.session.set_model(model, "test")
    viewer.add_image(nuclei(), name="nuclei")  # napari makes the new image the active layer
    qtbot.waitUntil(lambda: viewer.layers.selection.active is widget.prompts.points, timeout=TIMEOUT)
    viewer.layers.selection.active = viewer.layers["nuclei"]  # e.g. to adjust its contrast
    step = viewer.dims.current_step[0]
    click(viewer, qtbot, 48, 48)
    qtbot.waitUntil(lambda: len(widget.prompts.points.data) == 1, timeout=TIMEOUT)
    np.testing.assert_allclose(widget.prompts.points.data[0], [step, 48, 48], atol=1.5)
    assert viewer.layers.selection.active is widget.prompts.points
    qtbot.waitUntil(lambda: widget.segment_panel.loop.preview is not None, timeout=TIMEOUT)
    # a drag with the image active pans, as in napari, and adds nothing
    canvas = viewer.window._qt_viewer.canvas.native
    viewer.layers.selection.active = viewer.layers["nuclei"]
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(200, 200))
    qtbot.mouseMove(canvas, QPoint(260, 240))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(260, 240))
    assert len(widget.prompts.points.data) == 1


def test_a_click_that_cannot_be_used_says_why(make_napari_viewer, qtbot, model):
    viewer = make_napari_viewer(show=True)
    widget = ready(viewer, qtbot, model)
    viewer.layers.selection.active = viewer.layers["nuclei"]
    click(viewer, qtbot, 48, 400)  # beside the image
    assert len(widget.prompts.points.data) == 0
    assert "outside the image" in viewer.status


def test_clicks_on_other_slices_outside_the_mask_start_new_objects(
    make_napari_viewer, qtbot, model, candidates
):
    viewer = make_napari_viewer(show=True)
    widget = ready(viewer, qtbot, model)
    loop, panel = widget.segment_panel.loop, widget.segment_panel
    click(viewer, qtbot, 30, 30)  # slice 0
    qtbot.waitUntil(lambda: loop.preview is not None, timeout=TIMEOUT)
    viewer.dims.set_current_step(0, 1)
    click(viewer, qtbot, 32, 31)  # slice 1, inside the new object's mask on slice 0: joins it
    qtbot.waitUntil(lambda: loop.preview is not None and loop.preview.index == (1,), timeout=TIMEOUT)
    tags = widget.prompts.points.features["object"].to_list()
    assert tags == [0, 0] and "same object" in panel.object_info.text()
    viewer.dims.set_current_step(0, 2)
    click(viewer, qtbot, 75, 75)  # slice 2, far from it: the earlier clicks become object 1
    qtbot.waitUntil(lambda: len(widget.prompts.points.data) == 3, timeout=TIMEOUT)
    tags = widget.prompts.points.features["object"].to_list()
    assert tags == [1, 1, 0]
    assert "object 1" in panel.object_info.text() and "new object" in panel.object_info.text()
    plan = widget.propagate_panel._prompt_plan(
        widget.session.source, (2,), None, committed=False
    )
    assert sorted({obj_id for _, obj_id, _ in plan}) == [1, 2]  # two objects, not one


# ------------------------------------------------------------------ candidates and keys


def test_n_cycles_the_three_candidates_and_commit_writes_the_one_shown(
    make_napari_viewer, qtbot, model, candidates
):
    viewer = make_napari_viewer(show=True)
    widget = ready(viewer, qtbot, model)
    loop, panel = widget.segment_panel.loop, widget.segment_panel
    click(viewer, qtbot, 48, 48)
    qtbot.waitUntil(lambda: loop.preview is not None, timeout=TIMEOUT)
    at = tuple(widget.prompts.points.data[0][-2:])  # where the click landed
    shown = viewer.layers["SAM2 preview"].data
    assert shown.sum() == disk((96, 96), at, 12).sum()  # the best-scored first
    assert "candidate 2/3, model confidence 0.90" in panel.status.text()
    assert "IoU" not in panel.status.text()
    key(viewer, qtbot, Qt.Key.Key_N)
    assert "candidate 3/3, model confidence 0.70" in panel.status.text()
    assert viewer.layers["SAM2 preview"].data.sum() == disk((96, 96), at, 18).sum()
    panel.candidate_button.click()  # the button does the same: back to the first
    assert "candidate 1/3" in panel.status.text()
    key(viewer, qtbot, Qt.Key.Key_C)
    labels = viewer.layers["SAM2 labels"]
    qtbot.waitUntil(lambda: labels.data.any(), timeout=TIMEOUT)
    assert labels.data[0].sum() == disk((96, 96), at, 6).sum()


def test_undo_and_redo_by_button_and_key(make_napari_viewer, qtbot, model, candidates):
    viewer = make_napari_viewer(show=True)
    widget = ready(viewer, qtbot, model)
    click(viewer, qtbot, 48, 48)
    qtbot.waitUntil(lambda: widget.segment_panel.loop.preview is not None, timeout=TIMEOUT)
    widget.commit()
    labels = viewer.layers["SAM2 labels"]
    committed = labels.data.copy()
    assert committed.any()
    widget.segment_panel.undo_button.click()
    assert not labels.data.any()
    widget.segment_panel.redo_button.click()
    np.testing.assert_array_equal(labels.data, committed)
    viewer.layers.selection.active = viewer.layers["nuclei"]  # keys work with the image active
    key(viewer, qtbot, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not labels.data.any()
    key(
        viewer, qtbot, Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    np.testing.assert_array_equal(labels.data, committed)


# ------------------------------------------------------------------ texts


def test_texts_say_what_is_true(make_napari_viewer, qtbot, model):
    viewer = make_napari_viewer()
    widget = dock(viewer, load_model=False)
    assert widget.segment_panel.sign_button.text() == "Next click: positive (T)"  # before an image
    viewer.add_image(nuclei(51, 64), name="stack")
    stack_items = [
        widget.image_panel.stack_axis.itemText(i)
        for i in range(widget.image_panel.stack_axis.count())
    ]
    assert stack_items == ["none (single planes)", "axis 0 (51)"]  # not napari's "-3"
    widget.session.set_model(model, "test")
    precision = widget.model_panel.precision
    assert precision.itemText(precision.findData("auto")).startswith("auto (")
    qtbot.waitUntil(
        lambda: widget.segment_panel.status.text().startswith("Ready"), timeout=TIMEOUT
    )


def test_orientations_choice_reaches_the_embeddings_and_the_prompts_file(make_napari_viewer, qtbot, model):
    """'Orientations' shows the model's own choice; another one embeds the plane anew in that
    many orientations, a click decodes in all of them and the prompts file records it."""
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    session, box = widget.session, widget.model_panel.orientations
    assert box.itemText(box.findData(0)) == "auto (1)"
    plane = session.current_plane()
    assert len(session.cache.get(session.embedding_key(plane)).embedding) == 1
    box.setCurrentIndex(box.findData(4))
    assert session.choices.orientations == 4 and len(session.cache) == 0  # stale embeddings dropped
    qtbot.waitUntil(lambda: len(session.cache) == 1, timeout=TIMEOUT)
    assert len(session.cache.get(session.embedding_key(plane)).embedding) == 4
    click(viewer, qtbot, 48, 48)
    loop = widget.segment_panel.loop
    qtbot.waitUntil(lambda: loop.preview is not None, timeout=TIMEOUT)
    assert loop.decoder.orientations == 4
    assert widget.session_panel._model_spec()["orientations"] == 4


# ------------------------------------------------------------------ model loading


def test_the_chosen_model_loads_when_the_dock_opens(make_napari_viewer, qtbot):
    _settings.save({"model": "test", "device": "cpu"})
    viewer = make_napari_viewer()
    widget = dock(viewer)
    qtbot.waitUntil(lambda: widget.session.model is not None, timeout=TIMEOUT)
    assert "Loaded sam2.1_hiera_test" in widget.model_panel.status.text()


def test_a_failed_load_is_shown_in_full_and_not_remembered(make_napari_viewer, qtbot, tmp_path):
    _settings.save({"model": "test", "device": "cpu"})
    viewer = make_napari_viewer()
    widget = dock(viewer, load_model=False)
    bad = tmp_path / "not_a_checkpoint.pt"
    bad.write_bytes(b"no weights here")
    widget.session.choices.checkpoint = str(bad)
    widget.session.choices.model = "file"
    assert widget.model_panel.path.text() == str(bad)
    with qtbot.waitSignal(widget.model_panel.job.finished, timeout=TIMEOUT):
        widget.load_model()
    text = widget.model_panel.status.text()
    assert text.startswith("The model was not loaded:") and bad.name in text and len(text) > 60
    assert widget.session.model is None
    assert _settings.load()["model"] == "test"  # the failed choice is not remembered


# ------------------------------------------------------------------ progress in sight


def test_sections_fold_and_a_running_job_comes_into_sight(make_napari_viewer, qtbot, model):
    viewer = make_napari_viewer(show=True)
    widget = ready(viewer, qtbot, model)
    section = widget.sections["everything"]
    section.toggle.click()
    assert not section.frame.isVisible()
    panel = widget.everything_panel
    panel.points_per_side.setValue(2)
    with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        widget.segment_everything()
        assert section.frame.isVisible()  # opened for its progress bar
        assert panel.job.activity is not None  # mirrored in napari's activity panel
    assert panel.job.activity is None


def test_segment_everything_always_reports_the_count(make_napari_viewer, qtbot, model):
    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    panel = widget.everything_panel
    panel.points_per_side.setValue(2)
    panel.pred_iou.setValue(1.0)
    panel.stability.setValue(1.0)
    with qtbot.waitSignal(panel.job.finished, timeout=TIMEOUT):
        widget.segment_everything()
    text = panel.status.text()
    assert "no object was found on 1 plane(s)" in text
    assert "Lower 'Predicted IoU ≥' (now 1.00)" in text and "'Stability ≥' (now 1.00)" in text


def test_segment_everything_filters_follow_the_loaded_model(make_napari_viewer, qtbot, model):
    """Each model brings its own mask filters (the official ones for Meta's weights); changing
    the precision keeps what the user typed."""
    import copy

    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    panel = widget.everything_panel
    assert (panel.pred_iou.value(), panel.stability.value()) == (0.8, 0.95)  # no metadata: official
    small = copy.deepcopy(model)
    small.segment_everything_defaults = {"pred_iou_thresh": 0.3, "stability_score_thresh": 0.9}
    widget.session.set_model(small, "small")
    assert (panel.pred_iou.value(), panel.stability.value()) == (0.3, 0.9)
    assert "small's own: 0.30" in panel.pred_iou.toolTip()
    panel.pred_iou.setValue(0.5)
    widget.session.choices.precision = "bf16"  # the same model at another precision
    assert panel.pred_iou.value() == 0.5
    params = panel.params()  # what a run passes to the generator
    assert (params["pred_iou_thresh"], params["stability_score_thresh"]) == (0.5, 0.9)
    widget.session.set_model(model, "test")
    assert (panel.pred_iou.value(), panel.stability.value()) == (0.8, 0.95)
    qtbot.waitUntil(lambda: len(widget.session.cache) == 1, timeout=TIMEOUT)  # its embedding done


def test_a_message_fades_while_napari_is_the_active_window(make_napari_viewer, qtbot):
    """napari's rule, which the dock's messages follow: a toast fades after a few seconds while
    napari is the active window, and waits for the user while napari is in the background."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    viewer = make_napari_viewer(show=True)
    widget = dock(viewer, load_model=False)
    window = viewer.window._qt_window
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    widget.commit()  # no image, no model: an error toast
    qtbot.waitUntil(lambda: any("No image" in t.message.text() for t in NapariQtNotification._instances), timeout=5_000)
    qtbot.waitUntil(lambda: not NapariQtNotification._instances, timeout=10_000)


# ------------------------------------------------------------------ fine-tuning


def test_fine_tune_on_committed_labels_saves_loads_and_lists_the_model(
    make_napari_viewer, qtbot, model, tmp_path
):
    viewer = make_napari_viewer()
    image = nuclei(1, 64)[0]
    viewer.add_image(image, name="nuclei")
    labels = np.zeros((64, 64), np.uint32)
    labels[disk((64, 64), (32, 32), 10)] = 1
    labels[:8, :8] = 2
    viewer.add_labels(labels, name="SAM2 labels")
    widget = dock(viewer, load_model=False)
    widget.session.set_model(model, "test")
    panel = widget.finetune_panel
    panel.steps.setValue(2)
    panel.images_per_step.setValue(1)
    panel.folder.setText(str(tmp_path / "run"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with qtbot.waitSignal(panel.job.finished, timeout=120_000):
        panel.button.click()
        assert widget.sections["finetune"].frame.isVisibleTo(widget)  # opened for its progress
    best = tmp_path / "run" / "best.pt"
    assert best.is_file() and best.with_suffix(".json").is_file()
    assert len(panel.plot.losses) == 2 and panel.plot.scores  # the loss and a validation score
    assert widget.session.model is not model  # the tuned model is the dock's model now
    assert widget.session.model_spec["checkpoint"] == str(best)
    for name, p in model.named_parameters():  # the original was trained as a copy
        torch.testing.assert_close(p, before[name])
    combo = widget.model_panel.preset
    assert combo.currentData() == "trained:" + str(best)  # in the model list, chosen
    assert "Saved" in panel.status.text()
    # a second dock lists it too (remembered)
    again = dock(make_napari_viewer(), load_model=False)
    assert again.model_panel.preset.findData("trained:" + str(best)) >= 0


def test_fine_tune_stops_and_resumes(make_napari_viewer, qtbot, model, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(nuclei(1, 64)[0], name="nuclei")
    labels = np.zeros((64, 64), np.uint32)
    labels[disk((64, 64), (32, 32), 10)] = 1
    viewer.add_labels(labels, name="SAM2 labels")
    widget = dock(viewer, load_model=False)
    widget.session.set_model(model, "test")
    panel = widget.finetune_panel
    panel.steps.setValue(30)
    panel.images_per_step.setValue(1)
    panel.folder.setText(str(tmp_path / "run"))
    panel.button.click()
    qtbot.waitUntil(lambda: len(panel.plot.losses) >= 1, timeout=60_000)
    with qtbot.waitSignal(panel.job.finished, timeout=60_000):
        panel.job.cancel()
    assert "resumes" in panel.status.text() and (tmp_path / "run" / "state.pt").is_file()
    done = len(panel.plot.losses)
    assert done < 30
    panel.steps.setValue(done + 1)  # one more step: resumed, not restarted
    with qtbot.waitSignal(panel.job.finished, timeout=60_000):
        panel.button.click()
    assert [s for s, _ in panel.plot.losses] == [done + 1]


def test_fine_tune_uses_the_labels_layer_chosen_for_each_image(make_napari_viewer, qtbot, model):
    from napari_sam2._widgets._finetune_sources import NOT_USED, labelled_images

    viewer = make_napari_viewer()
    viewer.add_image(nuclei(1, 64)[0], name="a")
    widget = dock(viewer, load_model=False)
    drawn = np.zeros((64, 64), np.uint32)
    drawn[disk((64, 64), (32, 32), 10)] = 1
    manual = np.zeros((64, 64), np.uint32)
    manual[disk((64, 64), (20, 40), 6)] = 3
    viewer.add_labels(drawn, name="SAM2 labels")
    viewer.add_labels(manual, name="manual")
    viewer.add_image(nuclei(1, 48)[0], name="b")  # another shape: its own labels
    b_labels = np.zeros((48, 48), np.uint32)
    b_labels[10:20, 10:20] = 1
    viewer.add_labels(b_labels, name="b labels")
    table = widget.finetune_panel.sources
    rows = {table.item(r, 0).text(): table.cellWidget(r, 1) for r in range(table.rowCount())}
    assert set(rows) == {"a", "b"}  # rows follow the layers as they are added
    options = [rows["a"].itemText(i) for i in range(rows["a"].count())]
    assert options == ["SAM2 labels", "manual", NOT_USED]  # only layers of a's shape; default first
    assert [rows["b"].itemText(i) for i in range(rows["b"].count())] == ["b labels", NOT_USED]
    table.pick("a", "manual")
    table.pick("b", None)
    table.refresh()  # a refresh (a layer added, Fine-tune pressed) keeps the user's picks
    assert table.choices() == {"a": "manual", "b": None}
    images = labelled_images(viewer, None, table.choices())
    assert [item.name for item in images] == ["a"]
    np.testing.assert_array_equal(images[0].labels, manual)
    table.pick("a", None)
    widget.session.set_model(model, "test")
    widget.finetune_panel.button.click()  # nothing chosen: says so, trains nothing
    assert "choose it under 'Training data'" in widget.finetune_panel.status.text()
    assert not widget.finetune_panel.job.busy


def test_fine_tune_without_labels_says_what_to_do(make_napari_viewer, qtbot, model):
    viewer = make_napari_viewer()
    viewer.add_image(nuclei(1, 64)[0], name="nuclei")
    widget = dock(viewer, load_model=False)
    widget.session.set_model(model, "test")
    widget.finetune_panel.button.click()
    assert "No labels to train on" in widget.finetune_panel.status.text()
    assert not widget.finetune_panel.job.busy


def test_progress_wording(qtbot):
    from napari_sam2._widgets._jobs import JobControl, JobPanel

    panel = JobPanel(unit="planes")
    qtbot.addWidget(panel)
    panel.control, panel._title = JobControl(panel._relay), "Segmenting everything"
    panel._on_progress(0.4, 1)
    assert panel.label.text().startswith("Segmenting everything: 40 % of 1 plane")
    panel._on_progress(3, 12)
    assert panel.label.text().startswith("Segmenting everything: 3 of 12 planes done · ")


def test_redo_and_next_candidate_are_plugin_commands(make_napari_viewer, qtbot, model, candidates):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    widget = ready(viewer, qtbot, model)
    widget.prompts.points.add([0, 48, 48])
    qtbot.waitUntil(lambda: widget.segment_panel.loop.preview is not None, timeout=TIMEOUT)
    commands = get_app_model().commands
    commands.execute_command("napari-sam2.next_candidate").result()
    assert widget.segment_panel.loop.preview.chosen == [2]
    widget.commit()
    labels = viewer.layers["SAM2 labels"]
    widget.undo()
    commands.execute_command("napari-sam2.redo").result()
    assert labels.data.any()


def test_a_click_on_a_dim_object_says_how_to_segment_it(make_napari_viewer, qtbot, model, candidates):
    """A nucleus a tenth as bright as the others reaches the model nearly black: the preview's
    status says so and names the two fixes; with zoom on (which brightens it) it does not."""
    data = nuclei()
    yy, xx = np.mgrid[:96, :96]
    data[:, (yy - 80) ** 2 + (xx - 16) ** 2 < 8**2] = 500  # dim: 300 -> 500 where bright is 2300
    viewer = make_napari_viewer(show=True)
    widget = ready(viewer, qtbot, model, image=data)
    status = widget.segment_panel.status
    click(viewer, qtbot, 80, 16)
    qtbot.waitUntil(lambda: status.text().startswith("Preview"), timeout=TIMEOUT)
    assert "The clicked object is dim" in status.text() and "gamma" in status.text()
    widget.session.choices.zoom = True  # the same click decoded again, zoomed: no hint
    qtbot.waitUntil(lambda: status.text().startswith("Preview") and "dim" not in status.text(), timeout=TIMEOUT)
    widget.session.choices.zoom = False
    qtbot.waitUntil(lambda: "The clicked object is dim (" in status.text(), timeout=TIMEOUT)
