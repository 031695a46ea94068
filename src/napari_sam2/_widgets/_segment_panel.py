"""Interactive segmentation: clicks and boxes give a live preview of the object; Commit labels it.

The embedding of the current plane is computed in a worker whenever the plane changes and kept in
the session's cache; decoding a preview also runs in a worker (the worker functions and the
preview layer are in `_preview`). A result that arrives after the plane, the image, the model or
the prompts changed is dropped, and the preview recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QTimer
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

from ..engine.predictor import ImageEmbedding, ImagePredictor
from . import _notify
from ._image_source import PlaneIndex
from ._jobs import run_short
from ._labels import commit_masks, matching_labels, next_label
from ._mask_prompt import MAX_LABEL, MaskPromptPicker
from ._output_panel import OutputPanel
from ._preview import (
    Preview,
    clear_preview,
    decode_objects,
    embed_plane,
    ensure_preview,
    show_masks,
)
from ._prompt_model import EMPTY, ObjectPrompt, PlanePrompts, PromptProblem, check_inside
from ._prompts import (
    ensure_boxes,
    ensure_points,
    find_masks,
    next_click_positive,
    object_tags,
    read_prompts,
    remove_on_plane,
    set_object,
    toggle_positive,
)
from ._session import Session, UserProblem

DEBOUNCE_MS = 40


class SegmentPanel(QWidget):
    """Prompt layers, live preview, commit / clear / undo."""

    def __init__(
        self, session: Session, output: OutputPanel, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.output = output
        self.viewer = session.viewer
        self.points: Any = None
        self.boxes: Any = None
        self.preview: Preview | None = None
        self.embedder: ImagePredictor | None = None
        self.decoder: ImagePredictor | None = None
        self._embedding_key: tuple | None = None
        self._failed: set[tuple] = set()
        self._decoding = False
        self._decode_again = False
        self._commit_waiting = False
        self._last_problem = ""
        self.on_prompt_layer: Callable[[Any], None] | None = None  # e.g. to bind shortcuts on it

        self.sign_button = QPushButton()
        self.sign_button.setToolTip(
            "Sign of the next click; in select mode, flips the selected clicks (T)."
        )
        self.sign_button.clicked.connect(self.toggle_positive)
        self.commit_button = QPushButton("Commit (C)")
        self.commit_button.setToolTip("Write the preview into the output labels as a new object.")
        self.commit_button.clicked.connect(self.commit)
        self.clear_button = QPushButton("Clear prompts (Shift-C)")
        self.clear_button.clicked.connect(self.clear_prompts)
        self.undo_button = QPushButton("Undo (Ctrl-Z)")
        self.undo_button.setToolTip(
            "Undo the last change of the output labels (commit, propagation or painting)."
        )
        self.undo_button.clicked.connect(self.undo)
        self.object_id = QSpinBox()
        self.object_id.setRange(0, MAX_LABEL)
        self.object_id.setSpecialValueText("new")
        self.object_id.setToolTip(
            "The object that new clicks, boxes and the mask prompt belong to: 'new' gives the "
            "next free id on Commit; an id adds prompts to that object (Commit replaces its "
            "label on this plane, Propagate tracks it with all its prompts)."
        )
        self.object_id.valueChanged.connect(self._on_object)
        self.zoom = QCheckBox("Zoom in on small objects")
        self.zoom.setToolTip(
            "Segment each object on an enlarged crop around it (embedded on the fly) and paste "
            "the mask back: finer masks for objects small in the image, slower per preview."
        )
        self.zoom.toggled.connect(self._on_zoom)
        self.picker = MaskPromptPicker(session)
        self.picker.changed.connect(self.schedule)
        self.status = QLabel()
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Object", self.object_id)
        grid = QGridLayout()
        grid.addWidget(self.sign_button, 0, 0)
        grid.addWidget(self.commit_button, 0, 1)
        grid.addWidget(self.clear_button, 1, 0)
        grid.addWidget(self.undo_button, 1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.zoom)
        layout.addWidget(self.picker)
        layout.addLayout(grid)
        layout.addWidget(self.status)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.update_preview)
        session.source_changed.connect(self._on_source)
        session.model_changed.connect(self._on_model)
        self.viewer.dims.events.current_step.connect(self.schedule)
        self.viewer.layers.events.removed.connect(self._on_removed)
        self._on_source()
        self._on_model()

    # ------------------------------------------------------------------ wiring

    def _on_model(self) -> None:
        model = self.session.model
        self._failed.clear()
        if model is None:
            self.embedder = self.decoder = None
        else:
            self.embedder = ImagePredictor(model, precision=self.session.precision)
            self.decoder = ImagePredictor(model, precision=self.session.precision)
        self._enable()
        self.schedule()

    def _on_source(self) -> None:
        self._failed.clear()
        self._show_preview(None)
        layer = self.session.image_layer
        if layer is not None and self.session.source is not None:
            self.ensure_prompt_layers()
        self._enable()
        self.schedule()

    def ensure_prompt_layers(self) -> None:
        """Make (or find) the clicks and boxes layers of the current image; clicks become active."""
        image = self.session.image_layer
        if image is None:
            return
        for name in ("points", "boxes"):
            old = getattr(self, name)
            new = (ensure_points if name == "points" else ensure_boxes)(self.viewer, image)
            if new is not old:
                if old is not None:
                    old.events.data.disconnect(self.schedule)
                new.events.data.connect(self.schedule)
                setattr(self, name, new)
                set_object(new, None, self.object_id.value())
                if self.on_prompt_layer is not None:
                    self.on_prompt_layer(new)
        self.ensure_preview_layer()
        self.viewer.layers.selection.active = self.points
        self._show_sign()

    def _on_removed(self, event: Any) -> None:
        layer = event.value
        if layer is self.points:
            self.points = None
        elif layer is self.boxes:
            self.boxes = None
        self.schedule()

    def _enable(self) -> None:
        ready = self.session.model is not None and self.session.source is not None
        why = "" if ready else "Load a model and choose an image first."
        for button in (self.commit_button,):
            button.setEnabled(ready)
            button.setToolTip(why or "Write the preview into the output labels as a new object.")

    def _show_sign(self) -> None:
        positive = next_click_positive(self.points)
        self.sign_button.setText("Next click: " + ("positive (T)" if positive else "negative (T)"))

    def schedule(self, *_: Any) -> None:
        """Recompute the preview soon (many events arrive together while dragging)."""
        self._timer.start()

    def _on_zoom(self, _: bool) -> None:
        self.preview = None  # same prompts, other masks: decode again
        self.schedule()

    def _on_object(self, value: int) -> None:
        set_object(self.points, self.boxes, value)
        self.schedule()

    # ------------------------------------------------------------------ prompts

    def masks_layer(self) -> Labels | None:
        """The mask prompts layer of the image (made when a prompts file brings masks)."""
        image = self.session.image_layer
        return find_masks(self.viewer, image) if image is not None else None

    def pending(self, strict: bool = False) -> dict[PlaneIndex, PlanePrompts]:
        """Every prompt not yet committed, by plane, with the mask prompt on the current plane.

        strict: a mask prompt that cannot be used raises PromptProblem (else it is left out).
        """
        source = self.session.source
        if source is None:
            return {}
        planes = read_prompts(source, self.points, self.boxes, self.masks_layer())
        index = self.session.current_plane()
        try:
            mask = self.picker.mask_on(index)
        except PromptProblem:
            if strict:
                raise
            mask = None
        if mask is not None:
            planes[index] = planes.get(index, EMPTY).with_masks({self.object_id.value(): mask})
        return planes

    def prompts_on(self, index: PlaneIndex, strict: bool = False) -> PlanePrompts:
        return self.pending(strict).get(index, EMPTY)

    def next_id(self, layer: Labels | None) -> int:
        """A new object id: above every label of the output and every id the prompts name."""
        used = [self.object_id.value()]
        for prompts in (self.points, self.boxes):
            if prompts is not None and len(prompts.data):
                used.append(int(object_tags(prompts, len(prompts.data)).max()))
        masks = self.masks_layer()
        if masks is not None and masks.data.size:
            used.append(int(np.max(masks.data)))
        first = next_label(layer) if layer is not None else 1
        return max(first, max(used) + 1)

    def toggle_positive(self) -> None:
        if self.points is None:
            self.ensure_prompt_layers()
        if self.points is None:
            _notify.error("Choose an image first: the clicks layer belongs to it.")
            return
        message = toggle_positive(self.points)
        self._show_sign()
        self.viewer.status = f"SAM 2: {message}"
        self.schedule()

    def clear_prompts(self) -> None:
        source, index = self.session.source, self.session.current_plane()
        if source is None or index is None:
            return
        remove_on_plane(source, index, self.points, self.boxes, self.masks_layer())
        self.picker.enabled.setChecked(False)
        self._show_preview(None)
        self.schedule()

    # ------------------------------------------------------------------ preview

    def update_preview(self) -> None:
        """Bring the preview up to date: embed the plane if needed, then decode the prompts."""
        source, model = self.session.source, self.session.model
        if source is None or model is None:
            self._show_preview(None)
            self._commit_waiting = False
            self.status.setText(
                "Load a model and choose an image to start."
                if model is None
                else "Choose an image."
            )
            return
        index = self.session.current_plane()
        key = self.session.embedding_key(index)
        if self.preview is not None and self.preview.index != index:
            self._show_preview(None)
        embedding = self.session.cache.get(key)
        if embedding is None:
            if key in self._failed:
                self.status.setText("This plane could not be embedded (see the notification).")
            else:
                self._request_embedding(key, index)
            return
        try:
            prompts = self.prompts_on(index, strict=True)
            if prompts.empty:
                self._show_preview(None)
                self._commit_waiting = False
                self.status.setText(
                    "Ready: click on an object (SAM2 points) or draw a box (SAM2 boxes)."
                )
                return
            check_inside(prompts, source.plane_shape)
            objects = prompts.objects()
        except PromptProblem as problem:
            self._show_preview(None)
            self._commit_waiting = False
            self._problem(str(problem))
            return
        self._last_problem = ""
        current = self.preview
        if (
            current is not None
            and current.index == index
            and current.signature == prompts.signature()
        ):
            if self._commit_waiting:
                self._write(current)
            return
        self._request_decode(embedding, index, prompts, objects)

    def _problem(self, message: str) -> None:
        self.status.setText(message)
        if message != self._last_problem:
            _notify.error(message)
            self._last_problem = message

    def _request_embedding(self, key: tuple, index: PlaneIndex) -> None:
        if self._embedding_key is not None:
            return  # when it finishes, update_preview asks for the plane shown then
        self._embedding_key = key
        where = f"plane {', '.join(map(str, index))}" if index else "the image"
        self.status.setText(f"Computing the image embedding of {where}…")
        run_short(
            "Computing the image embedding",
            embed_plane,
            self.embedder,
            self.session.source,
            index,
            on_return=lambda embedding: self.session.cache.put(key, embedding),
            on_finish=self._embedded,
        )

    def _embedded(self) -> None:
        key, self._embedding_key = self._embedding_key, None
        if key is not None and key not in self.session.cache:
            self._failed.add(key)
        self.update_preview()

    def _request_decode(
        self,
        embedding: ImageEmbedding,
        index: PlaneIndex,
        prompts: PlanePrompts,
        objects: list[ObjectPrompt],
    ) -> None:
        if self._decoding:
            self._decode_again = True
            return
        self._decoding = True
        signature = prompts.signature()
        key = self.session.embedding_key(index)
        run_short(
            "Segmenting",
            decode_objects,
            self.decoder,
            embedding,
            objects,
            (self.session.source, index) if self.zoom.isChecked() else None,
            on_return=lambda result: self._decoded(key, signature, objects, *result),
            on_finish=self._decode_finished,
        )

    def _decoded(
        self, key: tuple, signature: bytes, objects: list[ObjectPrompt], masks: list, scores: list
    ) -> None:
        index = key[-1]
        if (
            self.session.source is None
            or key != self.session.embedding_key(self.session.current_plane())
            or signature != self.prompts_on(index).signature()
        ):
            self._decode_again = True  # stale: the plane, image, model or prompts changed meanwhile
            return
        self._show_preview(Preview(index, signature, masks, scores, objects))
        quality = ", ".join(f"{s:.2f}" for s in scores)
        self.status.setText(
            f"Preview: {len(masks)} object(s), predicted IoU {quality}. Commit with C."
        )
        if self._commit_waiting:
            self._write(self.preview)

    def _decode_finished(self) -> None:
        self._decoding = False
        if self._decode_again:
            self._decode_again = False
            self.update_preview()
        elif self._commit_waiting and self.preview is None:
            self._commit_waiting = False  # the decoder failed: its error was shown

    def _show_preview(self, preview: Preview | None) -> None:
        self.preview = preview
        if preview is None:
            clear_preview(self.viewer)
        else:
            show_masks(self.viewer, self.session.image_layer, self.session.source, preview.masks)

    def ensure_preview_layer(self) -> Labels:
        return ensure_preview(self.viewer, self.session.image_layer, self.session.source)

    # ------------------------------------------------------------------ commit and undo

    def commit(self) -> None:
        """Label the previewed object(s) with new ids; waits for a preview being computed."""
        try:
            source = self.session.require_source()
            self.session.require_model()
            index = self.session.current_plane()
            prompts = self.prompts_on(index, strict=True)
            if prompts.empty:
                raise UserProblem(
                    "No prompts on this slice: click on the object (layer 'SAM2 points'; "
                    "T switches "
                    "positive/negative) or draw a box (layer 'SAM2 boxes'), then commit."
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
        current = self.preview
        if (
            current is not None
            and current.index == index
            and current.signature == prompts.signature()
        ):
            self._write(current)
        else:
            self._commit_waiting = True
            self.status.setText("Commit waits for the preview…")
            self.update_preview()

    def _write(self, preview: Preview) -> None:
        self._commit_waiting = False
        source = self.session.source
        layer = self.output.target()
        new_ids = iter(range(self.next_id(layer), MAX_LABEL))
        wanted = [o.obj_id if o.obj_id is not None else next(new_ids) for o in preview.objects]
        ids = commit_masks(
            layer,
            source,
            preview.index,
            preview.masks,
            wanted,
            self.output.overwrite.isChecked(),
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
        remove_on_plane(source, preview.index, self.points, self.boxes, self.masks_layer())
        if any(o.mask is not None for o in preview.objects):
            self.picker.enabled.setChecked(False)  # used up, like the clicks
        self._show_preview(None)
        names = ", ".join(str(i) for i in ids)
        self.status.setText(f"Committed object {names} to '{layer.name}'. Ctrl-Z undoes it.")
        self.viewer.status = f"SAM 2: committed object {names}"

    def undo(self) -> None:
        layer = self.output.layer()
        if layer is None:
            _notify.error("Nothing to undo: no output labels layer has been written yet.")
            return
        layer.undo()
