"""The SAM 2 dock widget: model, image, output, segment, propagate and segment-everything sections.

Its public methods (load_model, commit, toggle_positive, next_candidate, clear_prompts, undo,
redo, propagate, segment_everything, save_prompts, load_prompts) are what the keyboard shortcuts and the plugin's
commands call, and what scripts can call too.
"""

from __future__ import annotations

import contextlib
import weakref
from pathlib import Path
from typing import Any

from napari.layers import Image
from napari.viewer import Viewer
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFrame,
    QLabel,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import _canvas_clicks, _shortcuts
from ._everything_panel import EverythingPanel
from ._finetune_panel import FinetunePanel
from ._image_panel import ImagePanel
from ._model_panel import ModelPanel
from ._output_panel import OutputPanel
from ._prompt_layers import PromptLayers
from ._propagate_panel import PropagatePanel
from ._segment_panel import SegmentPanel
from ._session import Session
from ._session_panel import SessionPanel
from ._track_everything_panel import TrackEverythingPanel

_widgets: dict[int, weakref.ReferenceType[SAM2Widget]] = {}


def widget_for(viewer: Any) -> SAM2Widget | None:
    """The SAM 2 widget docked in `viewer`, if there is one."""
    viewer = getattr(viewer, "__wrapped__", viewer)
    ref = _widgets.get(id(viewer))
    widget = ref() if ref is not None else None
    return widget if widget is not None and widget.viewer is viewer else None


class Section(QWidget):
    """A titled part of the dock whose body folds away under its title (click the title)."""

    def __init__(self, title: str, body: QWidget, open_: bool = True) -> None:
        super().__init__()
        self.body = body
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        self.toggle.toggled.connect(self._show)
        box = QFrame()
        box.setFrameShape(QFrame.Shape.StyledPanel)
        inner = QVBoxLayout(box)
        inner.setContentsMargins(6, 6, 6, 6)
        inner.addWidget(body)
        self.frame = box
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(box)
        self.toggle.setChecked(open_)
        self._show(open_)

    def _show(self, shown: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.frame.setVisible(shown)

    def expand(self) -> None:
        self.toggle.setChecked(True)


class SAM2Widget(QScrollArea):
    """Segment Anything 2 for microscopy: interactive, through stacks, and everything at once."""

    def __init__(self, napari_viewer: Viewer, load_model: bool = True) -> None:
        """load_model: load the chosen model (in a worker) as soon as the dock opens."""
        super().__init__()
        # napari may hand plugins a proxy that wraps every value it returns in a new object; the
        # widget compares layers by identity, so it works on the viewer itself.
        napari_viewer = getattr(napari_viewer, "__wrapped__", napari_viewer)
        self.viewer = napari_viewer
        self.session = Session(napari_viewer)
        self.prompts = PromptLayers(self.session)
        self.model_panel = ModelPanel(self.session)
        self.image_panel = ImagePanel(self.session)
        self.output_panel = OutputPanel(self.session)
        self.segment_panel = SegmentPanel(self.session, self.prompts, self.output_panel)
        self.propagate_panel = PropagatePanel(self.session, self.prompts, self.output_panel)
        self.everything_panel = EverythingPanel(self.session)
        self.track_everything_panel = TrackEverythingPanel(self.session)
        self.session_panel = SessionPanel(self.session, self.prompts, self.output_panel)
        self.finetune_panel = FinetunePanel(
            self.session,
            on_trained=lambda path, name: self.model_panel.add_trained(path, f"Fine-tuned: {name}"),
            output=self.output_panel.layer,
        )
        self.help = QLabel(_shortcuts.help_text())
        self.help.setWordWrap(True)
        self.help.setStyleSheet("color: gray;")

        self.sections = {
            "model": Section("Model", self.model_panel),
            "image": Section("Image", self.image_panel),
            "output": Section("Output", self.output_panel),
            "segment": Section("Segment (click or box, then commit)", self.segment_panel),
            "propagate": Section("Propagate through the stack", self.propagate_panel),
            "everything": Section("Segment everything", self.everything_panel),
            "track everything": Section("Track everything (every cell, divisions)", self.track_everything_panel, open_=False),
            "prompts file": Section("Prompts file", self.session_panel, open_=False),
            "finetune": Section("Fine-tune on your labels", self.finetune_panel, open_=False),
            "shortcuts": Section("Shortcuts", self.help, open_=False),
        }
        body = QWidget()
        layout = QVBoxLayout(body)
        for section in self.sections.values():
            layout.addWidget(section)
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
        for key, panel in (
            ("propagate", self.propagate_panel),
            ("everything", self.everything_panel),
            ("track everything", self.track_everything_panel),
            ("model", self.model_panel),
            ("finetune", self.finetune_panel),
        ):
            panel.job.started.connect(lambda key=key, panel=panel: self._reveal(key, panel.job))

        _shortcuts.bind_viewer(napari_viewer, self)
        self.prompts.made.connect(lambda layer: _shortcuts.bind_prompt_layer(layer, self))
        for layer in (self.prompts.points, self.prompts.boxes):
            if layer is not None:
                _shortcuts.bind_prompt_layer(layer, self)
        _canvas_clicks.forward_clicks(napari_viewer, self.prompts)
        napari_viewer.layers.events.inserted.connect(self._on_inserted)
        _widgets[id(napari_viewer)] = weakref.ref(self)
        viewer_ref = weakref.ref(napari_viewer)
        self.destroyed.connect(lambda *_: _forget(viewer_ref))
        if load_model:
            QTimer.singleShot(0, lambda: self.model_panel.load(automatic=True))

    def _reveal(self, key: str, job: QWidget) -> None:
        """A job started: open its section and scroll its progress bar into sight."""
        self.sections[key].expand()
        QTimer.singleShot(0, lambda: self.ensureWidgetVisible(job))

    def _on_inserted(self, event: Any) -> None:
        """napari makes a newly added image the active layer; clicks go back to the prompts."""
        if isinstance(event.value, Image) and self.prompts.points is not None:
            QTimer.singleShot(0, self._select_points)

    def _select_points(self) -> None:
        points = self.prompts.points
        if points is not None and points in self.viewer.layers:
            self.viewer.layers.selection.active = points
            points.mode = "add"

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

    def redo(self) -> None:
        self.segment_panel.redo()

    def next_candidate(self) -> None:
        self.segment_panel.next_candidate()

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
        """Cancel every running long job (propagation, segment everything, model loading,
        fine-tuning)."""
        for panel in (
            self.propagate_panel, self.everything_panel, self.model_panel, self.finetune_panel
        ):
            panel.job.cancel()


def _forget(viewer_ref: weakref.ReferenceType) -> None:
    viewer = viewer_ref()
    if viewer is None:
        return
    _widgets.pop(id(viewer), None)
    with contextlib.suppress(AttributeError, RuntimeError):
        _shortcuts.unbind_viewer(viewer)
        _canvas_clicks.remove_forwarding(viewer)
