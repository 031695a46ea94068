"""Propagation through the stack with SAM 2's memory: frames are written as they are tracked.

Every object of the stack through the current plane at once: the committed ones (with the
prompts they were committed with) and those prompted but not committed yet; or the new prompts
only; or every object labelled on the current plane (each keeps its id). Cancel stops within one
frame and keeps what was written; the whole run is one undo step of the labels layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from . import _bind, _notify
from ._choice_box import choice_box
from ._image_source import ImageSource, PlaneIndex
from ._jobs import JobPanel
from ._labels import StagedWrites, matching_labels
from ._output_panel import OutputPanel
from ._plane_prompts import ObjectPrompt, PromptProblem, assign_new_ids, check_inside
from ._prompt_layers import PromptLayers
from ._propagate_job import (
    ObjectSpan,
    frame_range,
    object_presence,
    propagate_job,
)
from ._record import Plan
from ._session import Session, UserProblem

FROM_ALL = "all"
FROM_PROMPTS = "prompts"
FROM_LABELS = "labels"
SOURCES = (
    ("All objects: committed and prompted", FROM_ALL),
    ("New prompts only", FROM_PROMPTS),
    ("Objects labelled on this plane (keep their ids)", FROM_LABELS),
)
DIRECTIONS = ("both", "forward", "backward")

NO_LIMIT = -1  # the frame-range spin boxes' value for "the end of the stack"


class PropagatePanel(QWidget):
    """Track the objects of the stack (or the labelled objects of this plane) through it."""

    def __init__(
        self,
        session: Session,
        prompts: PromptLayers,
        output: OutputPanel,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.prompts, self.output = session, prompts, output
        choices = session.choices
        self.source_combo = choice_box(SOURCES)
        _bind.combo_data(self.source_combo, choices, "track")
        self.direction = QComboBox()
        self.direction.addItems(DIRECTIONS)
        self.direction.setToolTip(
            "both: from the first prompted plane towards both ends of the stack"
        )
        _bind.combo_text(self.direction, choices, "direction")
        self.first_frame, self.last_frame = _frame_box("first"), _frame_box("last")
        _frame_link(self.first_frame, choices, "first_frame")
        _frame_link(self.last_frame, choices, "last_frame")
        frames = QHBoxLayout()
        frames.addWidget(self.first_frame)
        frames.addWidget(QLabel("to"))
        frames.addWidget(self.last_frame)
        self.button = QPushButton("Propagate (Shift-T)")
        self.button.clicked.connect(self.propagate)
        self.job = JobPanel(unit="frames")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Object", "Found on", "Not found", "Lowest score"])
        self.table.setToolTip(
            "Where each object was found in the last run, on how many tracked frames it was not "
            "(it ended, or the model called it absent), and its lowest object score (0-1) where "
            "it was found: a low score marks the frames to check."
        )
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setVisible(False)
        form = QFormLayout()
        form.addRow("Track", self.source_combo)
        form.addRow("Direction", self.direction)
        form.addRow("Frames", frames)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.button)
        layout.addWidget(self.job)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        self.writes: StagedWrites | None = None
        self.spans: dict[int, ObjectSpan] = {}
        self._plan: Plan = []
        self._from_prompts = True
        self._index: PlaneIndex = ()
        session.source_changed.connect(self._on_source)
        session.model_changed.connect(self._enable)
        self._on_source()

    def _on_source(self) -> None:
        source = self.session.source
        last = source.n_frames - 1 if source is not None and source.is_stack else 0
        for box in (self.first_frame, self.last_frame):
            box.setMaximum(last)
        self._enable()

    def _enable(self) -> None:
        why = self.session.stack_job_blocker(self.job.busy, "A propagation is running.", "Propagation needs a stack: a 3-D (Z or T) or 4-D image with a stack axis chosen.")
        self.button.setEnabled(not why)
        self.button.setToolTip(why or "Track through the stack; frames appear as they are done.")

    # ------------------------------------------------------------------ planning

    def _prompt_plan(
        self, source: ImageSource, index: PlaneIndex, layer: Any, committed: bool
    ) -> Plan:
        """The objects to track: the pending prompts on the stack through `index` and, when
        `committed`, the prompts of the objects committed there before (pending prompts of an
        object on a plane replace its committed ones there)."""
        plan: dict[tuple[int, PlaneIndex], ObjectPrompt] = {}
        if committed:
            self.session.record.prune(source, layer.data if layer is not None else None)
            for plane, obj_id, obj in self.session.record.on_line(source, index):
                plan[(obj_id, plane)] = obj
        new: dict[PlaneIndex, list[ObjectPrompt]] = {}
        for plane, prompts in sorted(self.prompts.pending(strict=True).items()):
            if not source.same_line(plane, index) or prompts.empty:
                continue
            check_inside(prompts, source.plane_shape)
            for obj in prompts.objects():
                if obj.obj_id is None:
                    new.setdefault(plane, []).append(obj)
                else:
                    plan[(obj.obj_id, plane)] = obj
        first = self.prompts.next_id(layer)
        for plane, obj_id, obj in assign_new_ids(new, first, across_planes=True):
            plan[(obj_id, plane)] = obj
        if not plan:
            raise UserProblem(
                "No prompts on this stack: click on the object (or draw a box) on at least one "
                "plane, or track the objects labelled on this plane instead."
            )
        return [(plane, obj_id, obj) for (obj_id, plane), obj in sorted(plan.items())]

    def _mask_plan(self, source: ImageSource, index: PlaneIndex, layer: Any) -> Plan:
        plane = np.asarray(layer.data[source.labels_plane_key(index)])
        ids = [int(i) for i in np.unique(plane) if i != 0]
        if not ids:
            raise UserProblem(
                f"No objects are labelled on this plane of '{layer.name}': commit some first, "
                "or track the prompts instead."
            )
        no_points, no_labels = np.zeros((0, 2)), np.zeros(0, np.int64)
        return [
            (index, obj_id, ObjectPrompt(no_points, no_labels, None, obj_id, plane == obj_id))
            for obj_id in ids
        ]

    # ------------------------------------------------------------------ running

    def propagate(self) -> None:
        """Start propagating (errors are shown as notifications and change nothing)."""
        if self.job.busy:
            _notify.info("A propagation is already running: cancel it or wait for it to finish.")
            return
        choices = self.session.choices
        try:
            model = self.session.require_model()
            source = self.session.require_source()
            if not source.is_stack:
                raise UserProblem(
                    "Propagation needs a stack: this image has no stack axis. Choose one under "
                    "'Image' (3-D or 4-D images), or segment this plane with Commit."
                )
            index = self.session.current_plane()
            layer = self.output.layer()
            if layer is not None and not matching_labels(source, layer):
                raise UserProblem(
                    f"The labels layer '{layer.name}' does not match the image's shape."
                )
            if choices.track == FROM_LABELS:
                if layer is None:
                    raise UserProblem(
                        "No output labels layer yet: commit objects on this plane first."
                    )
                plan = self._mask_plan(source, index, layer)
            else:
                plan = self._prompt_plan(source, index, layer, committed=choices.track == FROM_ALL)
            frame_plan = [(source.frame_of(plane), obj_id, obj) for plane, obj_id, obj in plan]
            limits = frame_range(
                source.n_frames, min(f for f, _, _ in frame_plan), choices.direction,
                choices.first_frame, choices.last_frame,
            )
        except (UserProblem, PromptProblem) as problem:
            _notify.error(str(problem))
            return
        layer = self.output.target()
        self.writes = StagedWrites(layer, source, overwrite=choices.overwrite)
        self._plan, self._index, self._source = plan, index, source
        self._from_prompts = choices.track != FROM_LABELS
        ids = sorted({i for _, i, _ in plan})
        self.spans = {i: ObjectSpan() for i in ids}
        self.table.setVisible(False)
        self.status.setText(
            f"Tracking object(s) {', '.join(map(str, ids))} on frames {limits[0]}-{limits[1]}…"
        )
        self.job.start(
            "Propagating",
            propagate_job,
            model,
            self.session.precision,
            source,
            index,
            frame_plan,
            choices.direction,
            limits,
            self.session.embedding_store,
            on_yield=self._write,
            on_finish=self._finished,
        )
        self._enable()

    def _write(self, result: Any) -> None:
        if self.writes is None:
            return
        frame = int(result.frame)
        masks = np.asarray(result.masks, dtype=bool)
        ids = [int(i) for i in result.obj_ids]
        for obj_id, found, score in zip(ids, *object_presence(result, masks), strict=True):
            self.spans.setdefault(obj_id, ObjectSpan()).add(frame, found, score)
        self.writes.write(self._source.with_frame(self._index, frame), ids, masks)

    def _finished(self, outcome: str) -> None:
        writes, self.writes = self.writes, None
        done = len(set(writes.frames_written)) if writes is not None else 0
        if writes is not None:
            writes.finish()
        if outcome == "failed":
            self.status.setText(f"Propagation failed after {done} frame(s) (see the notification).")
        elif outcome == "cancelled":
            self.status.setText(
                f"Cancelled after {done} frame(s); they are kept (Ctrl-Z removes them)."
            )
        else:
            ends = self._ends()
            self.status.setText(
                f"Propagated through {done} frame(s). {ends + ' ' if ends else ''}"
                "Ctrl-Z undoes the whole run."
            )
            if done:
                record = self.session.record
                record.put(self._plan)
                record.propagated = True
                record.direction = self.session.choices.direction
                if self._from_prompts:  # the prompts are used up; after Cancel they stay
                    self.prompts.clear_line(self._index)
        self._show_spans()
        self._enable()

    def _ends(self) -> str:
        """'Object 3 ends at frame 17.' for each object found on fewer frames than tracked."""
        ended = [
            f"object {i}: frames {s.first}-{s.last}"
            for i, s in sorted(self.spans.items())
            if s.missing and s.first is not None
        ]
        lost = [str(i) for i, s in sorted(self.spans.items()) if s.first is None]
        text = ("Found on fewer frames: " + "; ".join(ended) + ".") if ended else ""
        if lost:
            text += f" Not found on any frame: object {', '.join(lost)}."
        return text.strip()

    def _show_spans(self) -> None:
        self.table.setRowCount(len(self.spans))
        for row, (obj_id, span) in enumerate(sorted(self.spans.items())):
            found = "none" if span.first is None else f"frames {span.first}-{span.last}"
            lowest = "" if span.first is None else f"{span.lowest:.2f}"
            for col, text in enumerate((str(obj_id), found, str(span.missing), lowest)):
                self.table.setItem(row, col, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.setVisible(bool(self.spans))


def _frame_box(end: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(NO_LIMIT, 0)
    box.setValue(NO_LIMIT)
    box.setSpecialValueText(end)
    box.setToolTip(
        f"The {end} frame a propagation may reach ('{end}': the {end} of the stack); objects are "
        "not tracked beyond it."
    )
    return box


def _frame_link(box: QSpinBox, choices: Any, name: str) -> None:
    """The spin box <-> choices.<name> (NO_LIMIT <-> None)."""
    box.valueChanged.connect(lambda v: setattr(choices, name, None if v == NO_LIMIT else int(v)))
    getattr(choices.events, name).connect(
        lambda v: box.setValue(NO_LIMIT if v is None else int(v))
    )
