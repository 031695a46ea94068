"""Segment section (layout and actions): clicks and boxes give a live preview of the object, N
shows the next candidate mask, Commit labels it. The preview's state machine is `PreviewLoop`;
the prompts are the session's `PromptLayers`."""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import _bind, _notify
from ._labels import commit_masks, matching_labels
from ._mask_prompt import MAX_LABEL, MaskPromptPicker
from ._output_panel import OutputPanel
from ._plane_prompts import NEW, PromptProblem, check_inside
from ._preview import Preview, dim_level, ensure_preview
from ._precompute import BackgroundEmbedder
from ._preview_loop import PreviewLoop
from ._prompt_layers import (
    PromptLayers,
    next_click_positive,
    object_tags,
    tag_new_prompts,
    toggle_positive,
)
from ._session import Session, UserProblem


class SegmentPanel(QWidget):
    """Object choice, zoom, mask prompt, sign / candidate / commit / clear / undo / redo."""

    def __init__(
        self,
        session: Session,
        prompts: PromptLayers,
        output: OutputPanel,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.prompts, self.output = session, prompts, output
        self.viewer = session.viewer
        self.loop = PreviewLoop(session, prompts, self)
        self.background = BackgroundEmbedder(session, self)  # the stack's planes, nearest first

        self.sign_button = QPushButton()
        self.sign_button.setToolTip(
            "Sign of the next click; in select mode, flips the selected clicks (T)."
        )
        self.sign_button.clicked.connect(self.toggle_positive)
        self.candidate_button = QPushButton("Next candidate (N)")
        self.candidate_button.setToolTip(
            "A single click is ambiguous: SAM 2 proposes three masks (e.g. nucleus, cell, "
            "clump). Show the next one; Commit writes the one shown."
        )
        self.candidate_button.clicked.connect(self.next_candidate)
        self.commit_button = QPushButton("Commit (C)")
        self.commit_button.clicked.connect(self.commit)
        self.clear_button = QPushButton("Clear prompts (Shift-C)")
        self.clear_button.clicked.connect(self.clear_prompts)
        self.undo_button = QPushButton("Undo (Ctrl-Z)")
        self.undo_button.setToolTip(
            "Undo the last change of the output labels (a commit, a whole propagation, painting)."
        )
        self.undo_button.clicked.connect(self.undo)
        self.redo_button = QPushButton("Redo (Ctrl-Shift-Z)")
        self.redo_button.setToolTip("Redo what Undo took back from the output labels.")
        self.redo_button.clicked.connect(self.redo)
        self.object_id = QSpinBox()
        self.object_id.setRange(0, MAX_LABEL)
        self.object_id.setSpecialValueText("new")
        self.object_id.setToolTip(
            "The object that new clicks, boxes and the mask prompt belong to: 'new' gives the "
            "next free id on Commit; an id adds prompts to that object (Commit replaces its "
            "label on this plane, Propagate tracks it with all its prompts). A click on another "
            "slice outside the new object's mask starts another new object."
        )
        _bind.spin(self.object_id, session.choices, "object_id")
        self.object_info = QLabel()
        self.object_info.setWordWrap(True)
        self.object_info.setStyleSheet("color: gray;")
        self.zoom = QCheckBox("Zoom in on small or dim objects")
        self.zoom.setToolTip(
            "Segment each object on an enlarged crop around it (embedded on the fly) and paste "
            "the mask back: finer masks for objects small in the image, slower per preview. "
            "A dim object (darker than a quarter of the intensity range where clicked) is "
            "segmented on its crop brightened to mid-grey."
        )
        _bind.check(self.zoom, session.choices, "zoom")
        self.picker = MaskPromptPicker(session)
        self.picker.changed.connect(self.loop.schedule)
        prompts.mask_source = self.picker.mask_on
        prompts.used.connect(lambda: self.picker.enabled.setChecked(False))
        self.status = QLabel()
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Object", self.object_id)
        form.addRow("", self.object_info)
        grid = QGridLayout()
        grid.addWidget(self.sign_button, 0, 0)
        grid.addWidget(self.candidate_button, 0, 1)
        grid.addWidget(self.commit_button, 1, 0)
        grid.addWidget(self.clear_button, 1, 1)
        grid.addWidget(self.undo_button, 2, 0)
        grid.addWidget(self.redo_button, 2, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.zoom)
        layout.addWidget(self.picker)
        layout.addLayout(grid)
        layout.addWidget(self.status)
        self.ready_status = QLabel()
        layout.addWidget(self.ready_status)
        self.background.status.connect(self.ready_status.setText)

        self.loop.status.connect(self.status.setText)
        self.loop.shown.connect(self._on_shown)
        self._masks_by_plane: dict[Any, np.ndarray] = {}  # the new object's last mask per plane
        prompts.made.connect(self._watch_layer)
        prompts.changed.connect(self._show_object)
        session.source_changed.connect(self._on_source)
        session.model_changed.connect(self._enable)
        self._on_source()

    # ------------------------------------------------------------------ wiring

    def _on_source(self) -> None:
        self._masks_by_plane.clear()
        if self.session.image_layer is not None and self.session.source is not None:
            self.ensure_prompt_layers()
        self._enable()
        self._show_sign()
        self._show_object()

    def ensure_prompt_layers(self) -> None:
        """Make (or find) the prompt and preview layers of the image; clicks become active."""
        self.prompts.ensure()
        ensure_preview(self.viewer, self.session.image_layer, self.session.source)
        if self.prompts.points is not None:
            self.viewer.layers.selection.active = self.prompts.points
        self._show_sign()

    def _watch_layer(self, layer: Any) -> None:
        if layer is self.prompts.points:
            layer.events.data.connect(self._on_points_data)

    def _enable(self) -> None:
        ready = self.session.model is not None and self.session.source is not None
        self.commit_button.setEnabled(ready)
        self.commit_button.setToolTip(
            "Write the preview into the output labels as a new object."
            if ready
            else "Wait for the model to load and choose an image first."
        )

    def _show_sign(self) -> None:
        positive = next_click_positive(self.prompts.points)
        self.sign_button.setText("Next click: " + ("positive (T)" if positive else "negative (T)"))

    def _on_shown(self, preview: Preview | None) -> None:
        if preview is None:
            return
        for obj, mask in zip(preview.objects, preview.shown_masks(), strict=True):
            if obj.obj_id is None:
                self._masks_by_plane[preview.index] = mask
        more = " N shows the next candidate." if preview.candidates() > 1 else ""
        self.status.setText(
            f"Preview of {len(preview.masks)} object(s): {preview.describe()}.{more} "
            "Commit with C." + self._dim_hint(preview)
        )

    def _dim_hint(self, preview: Preview) -> str:
        """A hint when a clicked object is so dim that the model sees it nearly black."""
        source = self.session.source
        if self.session.choices.zoom or source is None:
            return ""
        level = dim_level(source, preview.index, preview.objects)
        if level is None:
            return ""
        return (
            f" The clicked object is dim ({level:.0%} of the intensity range): turn on 'Zoom in on "
            "small or dim objects', or lower the layer's gamma and use its contrast limits."
        )

    # ------------------------------------------------------------------ objects

    def _on_points_data(self, event: Any) -> None:
        """The rule for a new click on another slice: it joins the new object when it falls in
        that object's mask on a slice already prompted, else the new object's earlier prompts
        get their own id and this click starts another object."""
        if str(getattr(event, "action", "")) != "added":
            return
        source, points = self.session.source, self.prompts.points
        if source is None or points is None or not len(points.data):
            return
        tags = object_tags(points, len(points.data))
        index = source.plane_indices(np.asarray(points.data)[-1:])[0]
        if tags[-1] != NEW:
            return
        others = {
            plane: prompts
            for plane, prompts in self.prompts.pending().items()
            if plane != index and source.same_line(plane, index) and _has_new(prompts)
        }
        if not others:
            return
        row, col = (round(float(v)) for v in np.asarray(points.data)[-1][-2:])
        inside = any(
            0 <= row < mask.shape[0] and 0 <= col < mask.shape[1] and mask[row, col]
            for plane, mask in self._masks_by_plane.items()
            if plane in others
        )
        if inside:
            self.object_info.setText(
                "This click falls in the new object's mask on another slice: it is the same "
                "object."
            )
            return
        obj_id = self.prompts.next_id(self.output.layer())
        for plane in others:
            tag_new_prompts(source, plane, points, self.prompts.boxes, obj_id)
        planes = ", ".join(str(source.frame_of(p)) for p in sorted(others))
        self.object_info.setText(
            f"The new prompts on slice(s) {planes} are object {obj_id}; this click lies outside "
            "its mask, so it starts another new object."
        )

    def _show_object(self, *_: Any) -> None:
        obj_id = self.session.choices.object_id
        if obj_id != NEW:
            self.object_info.setText(f"New clicks and boxes go to object {obj_id}.")
        elif not self.object_info.text().startswith(("The new prompts", "This click")):
            self.object_info.setText("New clicks and boxes make a new object.")

    # ------------------------------------------------------------------ actions

    def toggle_positive(self) -> None:
        if self.prompts.points is None:
            self.ensure_prompt_layers()
        if self.prompts.points is None:
            _notify.error("Choose an image first: the clicks layer belongs to it.")
            return
        message = toggle_positive(self.prompts.points)
        self._show_sign()
        self.viewer.status = f"SAM 2: {message}"
        self.loop.schedule()

    def next_candidate(self) -> None:
        """Show the next candidate mask of a single-click preview."""
        preview = self.loop.preview
        if preview is None or not preview.cycle():
            self.status.setText(
                "Only a single click has several candidate masks; this preview has one."
                if preview is not None
                else "No preview to choose from: click on an object first."
            )
            return
        self.loop.show(preview)

    def clear_prompts(self) -> None:
        index = self.session.current_plane()
        if self.session.source is None or index is None:
            return
        self.prompts.clear_plane(index)
        self._masks_by_plane.pop(index, None)
        self.loop.show(None)
        self.loop.schedule()

    def commit(self) -> None:
        """Label the previewed object(s) with new ids; waits for a preview being computed."""
        try:
            source = self.session.require_source()
            self.session.require_model()
            index = self.session.current_plane()
            prompts = self.prompts.on_plane(index, strict=True)
            if prompts.empty:
                raise UserProblem(
                    "No prompts on this slice: click on the object (layer 'SAM2 points'; "
                    "T switches positive/negative) or draw a box (layer 'SAM2 boxes'), then "
                    "commit."
                )
            check_inside(prompts, source.plane_shape)
            prompts.objects()
            layer = self.output.layer()
            if layer is not None and not matching_labels(source, layer):
                raise UserProblem(
                    f"The labels layer '{layer.name}' does not match the image's shape "
                    f"{source.labels_shape}."
                )
        except (UserProblem, PromptProblem) as problem:
            _notify.error(str(problem))
            return
        self.loop.when_ready(self._write)

    def _write(self, preview: Preview) -> None:
        source = self.session.source
        layer = self.output.target()
        new_ids = iter(range(self.prompts.next_id(layer), MAX_LABEL))
        wanted = [o.obj_id if o.obj_id is not None else next(new_ids) for o in preview.objects]
        ids = commit_masks(
            layer, source, preview.index, preview.shown_masks(), wanted,
            self.session.choices.overwrite,
        )
        if not ids:
            _notify.warning(
                "Nothing was committed: the object lies on pixels that are already labelled. Tick "
                "'Overwrite existing labels' to replace them, or adjust the prompts."
            )
            return
        self.session.record.put(
            [(preview.index, i, o) for i, o in zip(wanted, preview.objects) if i in ids]
        )
        self.prompts.clear_plane(preview.index)
        self._masks_by_plane.pop(preview.index, None)
        self.loop.show(None)
        names = ", ".join(str(i) for i in ids)
        self.status.setText(f"Committed object {names} to '{layer.name}'. Ctrl-Z undoes it.")
        self.object_info.setText("")
        self._show_object()
        self.viewer.status = f"SAM 2: committed object {names}"

    def undo(self) -> None:
        layer = self.output.layer()
        if layer is None:
            _notify.error("Nothing to undo: no output labels layer has been written yet.")
            return
        layer.undo()

    def redo(self) -> None:
        layer = self.output.layer()
        if layer is None:
            _notify.error("Nothing to redo: no output labels layer has been written yet.")
            return
        layer.redo()


def _has_new(prompts: Any) -> bool:
    """One new (untagged) object on a plane: the new object that a click elsewhere may join.
    Several new objects on a plane (boxes) are left as they are: Propagate explains."""
    try:
        return sum(obj.obj_id is None for obj in prompts.objects()) == 1
    except PromptProblem:
        return False
