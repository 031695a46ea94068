"""Background precompute in the dock: the plane shown first then outward, status, pausing,
cancelling, never blocking the GUI, and a second session on the same stack computing nothing."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

napari = pytest.importorskip("napari")

from qtpy.QtCore import QTimer  # noqa: E402

from napari_sam2 import build_model  # noqa: E402
from napari_sam2._widgets import _precompute  # noqa: E402
from napari_sam2._widgets._main import SAM2Widget  # noqa: E402
from napari_sam2._widgets._precompute import PlanePlan  # noqa: E402

TIMEOUT = 60_000
pytestmark = pytest.mark.usefixtures("own_settings")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("sam2.1_hiera_test", device="cpu", image_size=128)
    with torch.no_grad():  # objects present, so that tracked masks are not empty
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return m


@pytest.fixture
def precompute(monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_PRECOMPUTE", "1")


def stack(n=7, size=64) -> np.ndarray:
    return np.random.default_rng(0).integers(100, 4000, (n, size, size)).astype(np.uint16)


def open_dock(viewer, model, plane=3, n=7) -> SAM2Widget:
    viewer.add_image(stack(n), name="stack")
    viewer.dims.set_current_step(0, plane)
    widget = SAM2Widget(viewer, load_model=False)
    viewer.window.add_dock_widget(widget, name="SAM 2")
    widget.session.choices.precision = "fp32"
    widget.session.set_model(model, "test")
    return widget


def embedded_order(monkeypatch) -> list:
    order = []
    original = _precompute.prepare_image

    def recording(plane, normalization):
        order.append(plane)
        return original(plane, normalization)

    monkeypatch.setattr(_precompute, "prepare_image", recording)
    return order


def test_plan_goes_outward_and_follows_the_user():
    plan = PlanePlan([(i,) for i in range(6)], (2,))
    assert [plan.take() for _ in range(3)] == [(2,), (3,), (1,)]
    plan.current = (5,)
    assert [plan.take() for _ in range(3)] == [(5,), (4,), (0,)]
    assert plan.take() is None


def test_planes_are_embedded_nearest_first_without_blocking_the_gui(make_napari_viewer, qtbot, model, precompute):
    viewer = make_napari_viewer()
    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    widget = open_dock(viewer, model)
    background = widget.segment_panel.background
    qtbot.waitUntil(lambda: background.ready == 7 and not background.running, timeout=TIMEOUT)
    timer.stop()
    assert widget.segment_panel.ready_status.text() == "Embeddings ready: 7 of 7 planes"
    session = widget.session
    assert all(session.embedding_key((i,)) in session.cache for i in range(7))
    # the GUI thread kept running its timer while planes were embedded on the worker
    gaps = np.diff(ticks)
    assert len(ticks) > 20 and gaps.max() < 0.5, f"longest gap {gaps.max():.3f} s"


def test_it_pauses_for_the_user_and_stops_when_the_image_goes(make_napari_viewer, qtbot, model, precompute, monkeypatch):
    order = embedded_order(monkeypatch)
    viewer = make_napari_viewer()
    widget = open_dock(viewer, model, plane=1, n=12)
    session, background = widget.session, widget.segment_panel.background
    qtbot.waitUntil(lambda: background.ready >= 2, timeout=TIMEOUT)
    session.interactive.set()  # the user's own request runs: nothing new starts
    qtbot.wait(300)
    paused_at = len(order)
    qtbot.wait(500)
    assert len(order) == paused_at < 12
    session.interactive.clear()
    qtbot.waitUntil(lambda: len(order) > paused_at, timeout=TIMEOUT)
    background.cancel()
    stopped_at = len(order)
    qtbot.wait(500)
    assert len(order) <= stopped_at + 1 < 12  # at most the plane in progress finishes
    assert [p.sum() for p in order[:3]] == [stack(12)[i].sum() for i in (1, 2, 0)]


def test_a_second_session_on_the_same_stack_computes_no_embedding(make_napari_viewer, qtbot, model, precompute, monkeypatch):
    viewer = make_napari_viewer()
    first = open_dock(viewer, model, n=4)
    qtbot.waitUntil(lambda: first.segment_panel.background.ready == 4 and not first.segment_panel.background.running, timeout=TIMEOUT)
    viewer.close()
    calls = []
    original = model.encode_image
    monkeypatch.setattr(model, "encode_image", lambda x: calls.append(1) or original(x))
    again = make_napari_viewer()
    second = open_dock(again, model, n=4)
    background = second.segment_panel.background
    qtbot.waitUntil(lambda: background.ready == 4 and not background.running, timeout=TIMEOUT)
    store = second.session.embedding_store
    assert calls == [] and store.hits >= 4 and store.writes == 0


def test_propagating_in_the_dock_reads_the_precomputed_planes(make_napari_viewer, qtbot, model, precompute, monkeypatch):
    viewer = make_napari_viewer()
    widget = open_dock(viewer, model, plane=0, n=5)
    background = widget.segment_panel.background
    qtbot.waitUntil(lambda: background.ready == 5 and not background.running, timeout=TIMEOUT)
    widget.prompts.points.add([0, 32, 32])
    qtbot.waitUntil(lambda: widget.segment_panel.loop.preview is not None, timeout=TIMEOUT)
    widget.output_panel.target()
    calls = []
    original = model.encode_image
    monkeypatch.setattr(model, "encode_image", lambda x: calls.append(1) or original(x))
    widget.propagate()
    with qtbot.waitSignal(widget.propagate_panel.job.finished, timeout=TIMEOUT):
        pass
    assert calls == [] and widget.session.embedding_store.hits >= 5
    assert (viewer.layers["SAM2 labels"].data > 0).any()
