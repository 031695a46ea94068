"""Prompts file section: save the objects and prompts of the stack to a JSON prompts file, or
load one back into the prompt layers (docs/prompts.md describes the file).

Saving writes the objects the widget committed or propagated (with the prompts they were made
with) and the prompts not yet used; the command line and `napari_sam2.api.run_session` replay
it. Loading puts the file's prompts into the clicks, boxes and mask-prompt layers, each tagged
with its object id; Propagate (or Commit on each plane) then makes the labels again. Prompts
already in those layers are never lost: they are replaced only when the user says so, else they
stay in their layers, which the widget then leaves alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Labels, Points
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..engine.orientations import CHOICES as ORIENTATIONS, default_orientations
from ..modeling.config import get_config
from ..prompt_file import PromptSession, PromptsFileError
from . import _notify
from ._model_panel import FILE_CHOICE, TEST_CHOICE, TEST_PRESET
from ._output_panel import OutputPanel
from ._plane_prompts import ObjectPrompt, PromptProblem, assign_new_ids, check_inside
from ._prompt_layers import ROLE, PromptLayers, ensure_masks
from ._propagate_panel import FROM_ALL
from ._session import Session, UserProblem
from ._session_file import ImageInfo, Objects, build_session, layout_session

FILTER = "napari-sam2 prompts (*.json);;All files (*)"
BEFORE_LOADING = " (before loading)"


class SessionPanel(QWidget):
    """Save prompts… / Load prompts…"""

    def __init__(
        self,
        session: Session,
        prompts: PromptLayers,
        output: OutputPanel,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.prompts, self.output = session, prompts, output
        self.save_button = QPushButton("Save prompts…")
        self.save_button.setToolTip(
            "Write the objects of this stack and their prompts, the model, the axes and the "
            "intensity limits to a JSON file that napari-sam2 prompt/propagate can replay."
        )
        self.save_button.clicked.connect(lambda: self.save())
        self.load_button = QPushButton("Load prompts…")
        self.load_button.setToolTip(
            "Put the prompts of a prompts file into the prompt layers, tagged with their object "
            "ids; then Propagate (or Commit) makes the labels."
        )
        self.load_button.clicked.connect(lambda: self.load())
        self.status = QLabel()
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.save_button)
        row.addWidget(self.load_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status)

    # ------------------------------------------------------------------ save

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the prompts file (asks where when `path` is None); returns where it went."""
        try:
            self.session.require_source()
            self.session.require_model()
        except UserProblem as problem:
            _notify.error(str(problem))
            return None
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Save prompts", "prompts.json", FILTER)
            if not chosen:
                return None
            path = chosen
        path = Path(path)
        try:
            prompts, left_out = self._build(path.parent)
            prompts.save(path)
        except (UserProblem, PromptProblem, OSError) as problem:
            _notify.error(f"The prompts were not saved: {problem}")
            return None
        text = f"Saved {len(prompts.objects)} object(s) ({prompts.mode}) to {path.name}."
        if left_out:
            text += f" {left_out} object(s) on other stacks were left out."
        self.status.setText(text)
        return path

    def _build(self, folder: Path) -> tuple[PromptSession, int]:
        session = self.session
        source = session.require_source()
        index = session.current_plane()
        labels = self.output.layer()
        record = session.record
        record.prune(source, labels.data if labels is not None else None)
        mode = (
            "propagate"
            if record.propagated or (not record.prompts and source.is_stack)
            else "segment"
        )
        objects: Objects = {i: dict(planes) for i, planes in record.prompts.items()}
        new: dict[Any, list[ObjectPrompt]] = {}
        for plane, prompts in self.prompts.pending(strict=True).items():
            if prompts.empty:
                continue
            check_inside(prompts, source.plane_shape)
            for obj in prompts.objects():
                if obj.obj_id is None:
                    new.setdefault(plane, []).append(obj)
                else:
                    objects.setdefault(obj.obj_id, {})[plane] = obj
        first = self.prompts.next_id(labels)
        for plane, obj_id, obj in assign_new_ids(new, first, across_planes=mode == "propagate"):
            objects.setdefault(obj_id, {})[plane] = obj
        if not objects:
            raise UserProblem(
                "nothing to save yet: commit or propagate objects, or add prompts, first."
            )
        layer = session.image_layer
        image = ImageInfo(_source_path(layer), layer.name, tuple(int(s) for s in layer.data.shape))
        prompts, left_out = build_session(
            source, index, objects, image, self._model_spec(), mode,
            session.choices.direction, folder,
        )
        if not prompts.objects:
            raise UserProblem("no objects on this stack: move to the stack that holds them.")
        return prompts, left_out

    def _model_spec(self) -> dict[str, Any]:
        spec = {"name": None, "checkpoint": None, **self.session.model_spec}
        spec["precision"] = self.session.precision
        model = self.session.model
        try:
            trained = get_config(model.config.name).image_size
        except KeyError:
            trained = None
        spec["image_size"] = model.image_size if model.image_size != trained else None
        spec["zoom"] = self.session.choices.zoom
        spec["orientations"] = self.session.orientations or default_orientations(model)
        return spec

    # ------------------------------------------------------------------ load

    def load(self, path: str | Path | None = None, replace: bool | None = None) -> bool:
        """Put a prompts file's prompts into the prompt layers (asks for the file when `path`
        is None). Prompts already there: `replace` True deletes them, False keeps them in their
        layers (renamed; new prompt layers are made), None asks."""
        try:
            source = self.session.require_source()
        except UserProblem as problem:
            _notify.error(str(problem))
            return False
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self, "Load prompts", "", FILTER)
            if not chosen:
                return False
            path = chosen
        try:
            prompts = PromptSession.load(path)
            layout = layout_session(prompts, source, self.session.current_plane(), self._channel())
        except (PromptsFileError, PromptProblem, ValueError, OSError) as problem:
            _notify.error(f"The prompts file was not loaded: {problem}")
            return False
        if replace is None and self._has_prompts():
            replace = self._ask()
            if replace is None:
                return False
        self._make_room(bool(replace))
        self._fill(layout)
        self._apply_settings(prompts)
        clash = sorted(set(layout.ids) & set(self._labels_in_output()))
        text = (
            f"Loaded {len(layout.ids)} object(s) from {Path(path).name}: Propagate (or Commit "
            "on each plane) makes their labels."
        )
        if clash:
            text += (
                f" Ids {', '.join(map(str, clash))} are already in the output labels: running "
                "these prompts replaces those objects."
            )
        self.status.setText(text)
        return True

    def _channel(self) -> int:
        layer, source = self.session.image_layer, self.session.source
        if source is None or source.channel_dim is None:
            return 0
        world = np.asarray(self.session.viewer.dims.point, dtype=float)[-layer.ndim :]
        return int(round(float(np.asarray(layer.world_to_data(world))[source.channel_dim])))

    def _has_prompts(self) -> bool:
        return any(_holds_prompts(layer) for layer in self.prompts.layers())

    def _ask(self) -> bool | None:
        box = QMessageBox(self)
        box.setWindowTitle("Load prompts")
        box.setText("The prompt layers already hold prompts.")
        box.setInformativeText(
            "Replace them with the file's, or keep them in their layers (renamed, no longer used "
            "as prompts) and load the file into new ones?"
        )
        replace = box.addButton("Replace", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Keep them", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        clicked = box.clickedButton()
        return True if clicked is replace else False if clicked is keep else None

    def _make_room(self, replace: bool) -> None:
        """Empty the prompt layers, or retire those that hold prompts (renamed, kept as they
        are, no longer read by the widget) so that new ones are made."""
        for layer in self.prompts.layers():
            if not _holds_prompts(layer):
                continue
            if not replace:
                layer.metadata = {k: v for k, v in layer.metadata.items() if k != ROLE}
                layer.name = layer.name + BEFORE_LOADING
            elif isinstance(layer, Labels):
                layer.data[...] = 0
                layer.refresh()
            elif isinstance(layer, Points):
                layer.data = np.zeros((0, layer.ndim))
            else:
                layer.data = []
        self.prompts.ensure()

    def _fill(self, layout: Any) -> None:
        points, boxes = self.prompts.points, self.prompts.boxes
        if len(layout.points):
            n = len(points.data)
            old = np.asarray(points.data).reshape(-1, points.ndim)
            points.data = np.concatenate([old, layout.points])
            features = points.features.copy()
            features.loc[n:, "positive"] = layout.positive
            features.loc[n:, "object"] = layout.point_objects
            points.features = features
            points.refresh_colors()
        if layout.boxes:
            n = len(boxes.data)
            boxes.add_rectangles(layout.boxes)
            features = boxes.features.copy()
            features.loc[n:, "object"] = layout.box_objects
            boxes.features = features
        if layout.masks:
            source = self.session.source
            masks = ensure_masks(self.session.viewer, source, self.session.image_layer)
            for plane, obj_id, mask in layout.masks:
                key = source.labels_plane_key(plane)
                masks.data[key] = np.where(mask, obj_id, np.asarray(masks.data[key]))
            masks.refresh()
        self.prompts.changed.emit()

    def _apply_settings(self, prompts: PromptSession) -> None:
        """The file's direction, model choice, precision and zoom (the model is not loaded)."""
        choices = self.session.choices
        direction = prompts.propagation.get("direction")
        if direction:
            choices.direction = str(direction)
        choices.track = FROM_ALL
        spec = prompts.model
        if spec.get("checkpoint"):
            choices.checkpoint = str(spec["checkpoint"])
            choices.model = FILE_CHOICE
        elif spec.get("name"):
            name = str(spec["name"])
            choices.model = TEST_CHOICE if name == TEST_PRESET else name
        if spec.get("precision"):
            choices.precision = str(spec["precision"])
        choices.zoom = bool(spec.get("zoom", False))
        if spec.get("orientations") in ORIENTATIONS:
            choices.orientations = int(spec["orientations"])

    def _labels_in_output(self) -> list[int]:
        layer = self.output.layer()
        return [] if layer is None else [int(i) for i in np.unique(layer.data) if i != 0]


def _holds_prompts(layer: Any) -> bool:
    if isinstance(layer, Labels):
        return bool(np.asarray(layer.data).any())
    return len(layer.data) > 0


def _source_path(layer: Any) -> str | None:
    path = getattr(getattr(layer, "source", None), "path", None)
    return str(path) if path else None
