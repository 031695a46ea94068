"""The SAM 2 dock widget: model, image, output, segment, propagate and segment-everything sections.

Its public methods (load_model, commit, toggle_positive, clear_prompts, undo, propagate,
segment_everything, save_prompts, load_prompts) are what the keyboard shortcuts and the plugin's
commands call, and what scripts can call too.
"""

from __future__ import annotations

import contextlib
import weakref
from pathlib import Path
from typing import Any

from napari.viewer import Viewer
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QGroupBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from . import _shortcuts
from ._everything_panel import EverythingPanel
from ._image_panel import ImagePanel
from ._model_panel import ModelPanel
from ._output_panel import OutputPanel
from ._propagate_panel import PropagatePanel
from ._segment_panel import SegmentPanel
from ._session import Session
from ._session_panel import SessionPanel

_widgets: dict[int, weakref.ReferenceType[SAM2Widget]] = {}


def widget_for(viewer: Any) -> SAM2Widget | None:
    """The SAM 2 widget docked in `viewer`, if there is one."""
    viewer = getattr(viewer, "__wrapped__", viewer)
    ref = _widgets.get(id(viewer))
    widget = ref() if ref is not None else None
    return widget if widget is not None and widget.viewer is viewer else None


def _section(title: str, body: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(6, 6, 6, 6)
    layout.addWidget(body)
    return box


class SAM2Widget(QScrollArea):
    """Segment Anything 2 for microscopy: interactive, through stacks, and everything at once."""

    def __init__(self, napari_viewer: Viewer) -> None:
        super().__init__()
        # napari may hand plugins a proxy that wraps every value it returns in a new object; the
        # widget compares layers by identity, so it works on the viewer itself.
        napari_viewer = getattr(napari_viewer, "__wrapped__", napari_viewer)
        self.viewer = napari_viewer
        self.session = Session(napari_viewer)
        self.model_panel = ModelPanel(self.session)
        self.image_panel = ImagePanel(self.session)
        self.output_panel = OutputPanel(self.session)
        self.segment_panel = SegmentPanel(self.session, self.output_panel)
        self.propagate_panel = PropagatePanel(self.session, self.output_panel, self.segment_panel)
        self.everything_panel = EverythingPanel(self.session)
        self.session_panel = SessionPanel(
            self.session, self.model_panel, self.output_panel, self.segment_panel,
            self.propagate_panel,
        )
        self.help = QLabel("Shortcuts\n" + _shortcuts.help_text())
        self.help.setWordWrap(True)
        self.help.setStyleSheet("color: gray;")

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(_section("Model", self.model_panel))
        layout.addWidget(_section("Image", self.image_panel))
        layout.addWidget(_section("Output", self.output_panel))
        layout.addWidget(_section("Segment (click or box, then commit)", self.segment_panel))
        layout.addWidget(_section("Propagate through the stack", self.propagate_panel))
        layout.addWidget(_section("Segment everything", self.everything_panel))
        layout.addWidget(_section("Prompts file", self.session_panel))
        layout.addWidget(self.help)
        layout.addStretch(1)
        for combo in body.findChildren(QComboBox):  # long layer names must not widen the dock
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(12)
        self.setWidget(body)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(340)

        _shortcuts.bind_viewer(napari_viewer, self)
        self.segment_panel.on_prompt_layer = lambda layer: _shortcuts.bind_prompt_layer(layer, self)
        for layer in (self.segment_panel.points, self.segment_panel.boxes):
            if layer is not None:
                _shortcuts.bind_prompt_layer(layer, self)
        _widgets[id(napari_viewer)] = weakref.ref(self)
        viewer_ref = weakref.ref(napari_viewer)
        self.destroyed.connect(lambda *_: _forget(viewer_ref))

    # ------------------------------------------------------------------ actions

    def load_model(self) -> None:
        self.model_panel.load()

    def toggle_positive(self) -> None:
        self.segment_panel.toggle_positive()

    def commit(self) -> None:
        self.segment_panel.commit()

    def clear_prompts(self) -> None:
        self.segment_panel.clear_prompts()

    def undo(self) -> None:
        self.segment_panel.undo()

    def propagate(self) -> None:
        self.propagate_panel.propagate()

    def segment_everything(self) -> None:
        self.everything_panel.run()

    def save_prompts(self, path: str | Path | None = None) -> Path | None:
        """Save the objects and prompts of this stack as a prompts file (asks where without a
        path); returns the file written."""
        return self.session_panel.save(path)

    def load_prompts(self, path: str | Path | None = None, replace: bool | None = None) -> bool:
        """Load a prompts file into the prompt layers; prompts already there are replaced
        (replace=True), kept in renamed layers (False), or the user is asked (None)."""
        return self.session_panel.load(path, replace)

    def cancel(self) -> None:
        """Cancel every running long job (propagation, segment everything, model loading)."""
        for panel in (self.propagate_panel, self.everything_panel, self.model_panel):
            panel.job.cancel()


def _forget(viewer_ref: weakref.ReferenceType) -> None:
    viewer = viewer_ref()
    if viewer is None:
        return
    _widgets.pop(id(viewer), None)
    with contextlib.suppress(AttributeError, RuntimeError):
        _shortcuts.unbind_viewer(viewer)
