"""Clicks on the image reach the prompts whichever layer is active.

napari sends a canvas click to the active layer only: after the user opens an image (napari makes
the new layer active) or selects the image to adjust its contrast, a click on an object would
pan the view and add no prompt. While the dock has a clicks layer, a click (pressed and released
without dragging) on the canvas with an Image layer active becomes a click prompt, and the clicks
layer becomes active again; a click that cannot be used says why in the status bar.
"""

from __future__ import annotations

import weakref
from collections.abc import Generator
from typing import Any

import numpy as np
from napari.layers import Image

from ._prompt_layers import PromptLayers

DRAG_PIXELS = 3  # a press and release further apart than this (canvas pixels) is a drag


def forward_clicks(viewer: Any, prompts: PromptLayers) -> None:
    """Install the forwarding callback on `viewer` (held weakly: it ends with the dock)."""
    ref = weakref.ref(prompts)

    def on_mouse(viewer: Any, event: Any) -> Generator[None, None, None]:
        target = ref()
        if target is None or event.button != 1 or event.modifiers:
            return
        active = viewer.layers.selection.active
        if not isinstance(active, Image):
            return
        start = np.asarray(event.pos, dtype=float)
        yield
        while event.type == "mouse_move":
            yield
        if np.abs(np.asarray(event.pos, dtype=float) - start).max() > DRAG_PIXELS:
            return  # a drag pans the view, as napari does
        add_click(target, np.asarray(event.position, dtype=float))

    on_mouse.__napari_sam2__ = True  # type: ignore[attr-defined]
    viewer.mouse_drag_callbacks.append(on_mouse)


def remove_forwarding(viewer: Any) -> None:
    viewer.mouse_drag_callbacks[:] = [
        cb for cb in viewer.mouse_drag_callbacks if not getattr(cb, "__napari_sam2__", False)
    ]


def add_click(prompts: PromptLayers, world: np.ndarray) -> bool:
    """Add a click prompt at a world position; False (and the status says why) when it cannot
    be used."""
    viewer, session = prompts.viewer, prompts.session
    image, source = session.image_layer, session.source
    if image is None or source is None:
        viewer.status = "SAM 2: this click was not used: choose an image under 'Image' first."
        return False
    prompts.ensure()
    points = prompts.points
    data = np.asarray(points.world_to_data(world[-points.ndim :]), dtype=float)
    h, w = source.plane_shape
    row, col = data[-2], data[-1]
    if not (-0.5 <= row <= h - 0.5 and -0.5 <= col <= w - 0.5):
        viewer.status = (
            f"SAM 2: this click (row {row:.0f}, column {col:.0f}) is outside the image "
            f"'{image.name}': click on the image."
        )
        return False
    points.add(data)
    viewer.layers.selection.active = points
    points.mode = "add"
    viewer.status = "SAM 2: click added to 'SAM2 points' (now the active layer)"
    return True
