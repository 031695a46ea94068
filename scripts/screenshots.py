"""Regenerate the screenshots in docs/images/ from a real napari window.

    python scripts/screenshots.py     # needs a display; without one it re-runs under xvfb-run

It opens the synthetic samples, docks the SAM 2 widget, and drives it as a user would: load a
model, click, commit, propagate, segment everything, save the prompts file. It uses official
sam2.1_hiera_tiny weights when they are in the cache, else the built-in model; without either,
the random-weight test model, whose masks only show where results appear (the pictures then
say so on the canvas).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
SIZE = (1500, 950)


def _ensure_display() -> None:
    if (
        sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
    ):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            sys.exit("No display: install Xvfb (xvfb-run) or run this on a desktop.")
        os.execv(xvfb, [xvfb, "-a", "-s", "-screen 0 1920x1200x24", sys.executable, *sys.argv])


def main() -> None:
    _ensure_display()
    os.environ.setdefault("NAPARI_SAM2_CONFIG_DIR", str(ROOT / "build" / "screenshot-config"))
    os.environ.setdefault("NAPARI_SAM2_OFFLINE", "1")
    import napari
    import numpy as np
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_sam2._widgets import _sample_data
    from napari_sam2._widgets._main import SAM2Widget
    from napari_sam2._widgets._model_panel import TEST_CHOICE, weights_present
    from napari_sam2.checkpoints.shipped import SHIPPED_MODEL, has_shipped_model

    OUT.mkdir(parents=True, exist_ok=True)

    def settle(seconds: float = 0.3) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait(condition, timeout: float = 300) -> None:
        end = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > end:
                raise TimeoutError("the widget did not finish in time")
            app.processEvents()
            time.sleep(0.01)
        settle()

    def shoot(target, name: str) -> None:
        settle()
        path = OUT / f"{name}.png"
        target.grab().save(str(path))
        print("wrote", path.relative_to(ROOT))

    viewer = napari.Viewer(title="napari-sam2", show=True)
    app = QApplication.instance()
    window = viewer.window._qt_window
    window.resize(*SIZE)
    for data, meta, kind in _sample_data.zstack():
        getattr(viewer, f"add_{kind}")(data, **meta)
    widget = SAM2Widget(viewer, load_model=False)
    viewer.window.add_dock_widget(widget, name="SAM 2", area="right")
    official = weights_present("sam2.1_hiera_tiny") or has_shipped_model()
    choice = "sam2.1_hiera_tiny" if weights_present("sam2.1_hiera_tiny") else SHIPPED_MODEL
    widget.model_panel.set_choice(choice if official else TEST_CHOICE)
    widget.model_panel.precision.setCurrentText("fp32")
    if not official:
        note = viewer.canvas.overlays.text
        note.text = "random-weight test model: the masks are not meaningful"
        note.position = "top_center"
        note.font_size = 12
        note.color = "yellow"
        note.visible = True
    widget.load_model()
    wait(lambda: widget.session.model is not None)
    if not official:  # make the random model call objects present, so tracking shows masks
        with torch.no_grad():
            widget.session.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    shoot(widget.sections["model"], "model")
    shoot(widget.sections["image"], "image")

    truth = viewer.layers["z-stack ground truth"].data
    z = 14
    viewer.dims.set_current_step(0, z)
    wait(lambda: widget.segment_panel.status.text().startswith("Ready"))
    ids = [i for i in np.unique(truth[z]) if i]
    rows, cols = np.nonzero(truth[z] == ids[0])
    points = widget.prompts.points
    points.add([z, rows.mean(), cols.mean()])
    wait(lambda: widget.segment_panel.loop.preview is not None)
    shoot(window, "segment")

    widget.commit()
    wait(lambda: "SAM2 labels" in viewer.layers and viewer.layers["SAM2 labels"].data.any())
    rows, cols = np.nonzero(truth[z] == ids[1])
    points.add([z, rows.mean(), cols.mean()])
    wait(lambda: widget.segment_panel.loop.preview is not None)
    widget.ensureWidgetVisible(widget.propagate_panel, 0, 0)
    widget.propagate()
    wait(lambda: widget.propagate_panel.job.bar.value() > 300)
    shoot(window, "propagate-running")
    wait(lambda: not widget.propagate_panel.job.busy)
    shoot(window, "propagate")

    panel = widget.everything_panel
    panel.points_per_side.setValue(16)
    if not official:  # random weights pass no quality filter: show every candidate instead
        panel.pred_iou.setValue(0.0)
        panel.stability.setValue(0.0)
    viewer.layers["SAM2 labels"].visible = False
    widget.ensureWidgetVisible(panel, 0, 0)
    widget.segment_everything()
    wait(lambda: not panel.job.busy)
    shoot(window, "everything")
    widget.sections["prompts file"].expand()
    widget.ensureWidgetVisible(widget.session_panel, 0, 0)
    shoot(widget.sections["prompts file"], "session")
    viewer.layers["SAM2 labels"].visible = True
    tune = widget.finetune_panel
    widget.sections["finetune"].expand()
    tune.steps.setValue(4)
    tune.images_per_step.setValue(1)
    tune.folder.setText(tempfile.mkdtemp(prefix="napari-sam2-finetune-"))
    tune.button.click()
    wait(lambda: not tune.job.busy, timeout=900)
    widget.ensureWidgetVisible(tune, 0, 0)
    shoot(widget.sections["finetune"], "finetune")
    viewer.close()
    from napari.qt.threading import WorkerBase

    WorkerBase.await_workers(60_000)  # as napari does when its app quits: no job outlives the window


if __name__ == "__main__":
    main()
