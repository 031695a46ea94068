"""Keyboard shortcuts of the SAM 2 widget, bound on its viewer (and on the prompt layers)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

# (key, widget method, what it does); keys chosen to avoid napari's defaults for these layers.
SHORTCUTS: tuple[tuple[str, str, str], ...] = (
    (
        "T",
        "toggle_positive",
        "next click positive ↔ negative (in select mode: the selected clicks)",
    ),
    ("N", "next_candidate", "show the next candidate mask of a single click"),
    ("C", "commit", "commit the preview as a new object"),
    ("Shift-C", "clear_prompts", "clear the prompts on this plane"),
    ("Control-Z", "undo", "undo the last change of the output labels"),
    ("Control-Shift-Z", "redo", "redo it"),
    ("Shift-T", "propagate", "propagate through the stack"),
)
# Layer keys come first in napari: on a Labels layer, Ctrl-Z / Ctrl-Shift-Z keep their own
# meaning (undo / redo on that layer); elsewhere they undo / redo the output labels.
VIEWER_KEYS = ("T", "N", "C", "Shift-C", "Control-Z", "Control-Shift-Z", "Shift-T")


def help_text() -> str:
    shown = {"Control-Z": "Ctrl-Z", "Control-Shift-Z": "Ctrl-Shift-Z"}
    return "\n".join(f"{shown.get(key, key)}: {what}" for key, _, what in SHORTCUTS)


def _caller(widget: Any, method: str) -> Callable[[Any], None]:
    ref = weakref.ref(widget)

    def call(_: Any) -> None:
        target = ref()
        if target is not None:
            getattr(target, method)()

    call.__doc__ = f"SAM 2: {method.replace('_', ' ')}"
    return call


def bind_viewer(viewer: Any, widget: Any) -> None:
    """Viewer-wide keys: they work whichever layer is selected, unless that layer uses the key."""
    for key, method, _ in SHORTCUTS:
        if key in VIEWER_KEYS:
            viewer.bind_key(key, _caller(widget, method), overwrite=True)


def unbind_viewer(viewer: Any) -> None:
    for key in VIEWER_KEYS:
        viewer.bind_key(key, None)


def bind_prompt_layer(layer: Any, widget: Any) -> None:
    """Keys on a prompt layer, where Ctrl-Z has no meaning of its own: undo goes to the labels."""
    for key, method, _ in SHORTCUTS:
        layer.bind_key(key, _caller(widget, method), overwrite=True)
