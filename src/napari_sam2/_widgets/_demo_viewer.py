"""`napari-sam2 demo` with a display: napari with the sample time-lapse and the SAM 2 widget."""

from __future__ import annotations

import napari

from ._commands import sam2_widget
from ._sample_data import timelapse


def open_demo_viewer(model_name: str | None = None) -> None:
    """Open napari with the sample loaded, the widget docked and the model loading; blocks until closed."""
    viewer = napari.Viewer(title="napari-sam2 demo")
    for data, meta, kind in timelapse():
        getattr(viewer, f"add_{kind}")(data, **meta)
    widget = sam2_widget(viewer)
    if model_name is not None:
        widget.model_panel.set_choice(model_name)
    widget.load_model()
    napari.run()
