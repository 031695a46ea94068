"""Click latency in a real napari window: from adding a click to the preview layer updated, on
planes the dock embedded in the background, beside a plane embedded on demand.

    xvfb-run -a python benchmarks/click_latency.py [--model sam2.1_hiera_tiny] [--size 1024] [--planes 5]
        [--orientations 1|4|8]

Without --model, the built-in model. Random weights for presets (the masks do not matter here,
only the time).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from common import machine_line, print_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a preset (random weights); default the built-in model")
    parser.add_argument("--size", type=int, default=1024, help="plane side in pixels")
    parser.add_argument("--planes", type=int, default=5)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--orientations", type=int, default=0, choices=[0, 1, 4, 8], help="0: the model's own")
    args = parser.parse_args()
    os.environ.setdefault("NAPARI_SAM2_EMBEDDINGS", tempfile.mkdtemp(prefix="sam2-embeddings-"))
    os.environ["NAPARI_SAM2_PRECOMPUTE"] = "1"

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_sam2 import build_model, load_model
    from napari_sam2._widgets._main import SAM2Widget

    model = build_model(args.model, device="cpu") if args.model else load_model(device="cpu")
    rng = np.random.default_rng(0)
    stack = rng.normal(300, 30, (args.planes + 1, args.size, args.size))
    yy, xx = np.mgrid[: args.size, : args.size]
    c = args.size // 2
    stack[:, (yy - c) ** 2 + (xx - c) ** 2 < (args.size // 16) ** 2] += 2000
    viewer = napari.Viewer(show=True)
    viewer.add_image(stack.astype(np.uint16), name="stack")
    viewer.dims.set_current_step(0, 0)
    widget = SAM2Widget(viewer, load_model=False)
    viewer.window.add_dock_widget(widget, name="SAM 2")
    widget.session.choices.precision = args.precision
    widget.session.choices.orientations = args.orientations
    widget.session.set_model(model, args.model or "built-in")
    app = QApplication.instance()
    panel, background = widget.segment_panel, widget.segment_panel.background

    def wait(condition, timeout=3600.0) -> None:
        end = time.perf_counter() + timeout
        while not condition():
            app.processEvents()
            time.sleep(0.001)
            if time.perf_counter() > end:
                raise TimeoutError

    # the last plane is kept out of the background work, to time a plane embedded on demand
    background.plan.drop((args.planes,))
    start = time.perf_counter()
    wait(lambda: background.ready >= args.planes and not background.running)
    precompute_s = time.perf_counter() - start

    def click(plane: int, settle: bool = True) -> float:
        t0 = time.perf_counter()
        viewer.dims.set_current_step(0, plane)
        if settle:  # the plane shown and idle before the click (what a user sees)
            wait(lambda: panel.loop.preview is None and not widget.session.interactive.is_set())
            t0 = time.perf_counter()
        widget.prompts.points.add([plane, c, c])
        wait(lambda: panel.loop.preview is not None and panel.loop.preview.index == (plane,))
        return time.perf_counter() - t0

    ready = [click(p) for p in range(args.planes)]
    cold = click(args.planes, settle=False)
    name = args.model or "built-in"
    turns = panel.loop.decoder.orientations
    print(machine_line())
    print_table(
        f"Click to preview in napari, {name}, {args.size} px planes, precision {args.precision}, {turns} orientation(s)",
        ["case", "seconds"],
        [
            [f"background precompute of {args.planes} planes (total)", precompute_s],
            ["click on a precomputed plane (median)", float(np.median(ready))],
            ["click on a precomputed plane (max)", float(np.max(ready))],
            ["moving to a plane not yet embedded and clicking", cold],
        ],
    )
    viewer.close()


if __name__ == "__main__":
    main()
