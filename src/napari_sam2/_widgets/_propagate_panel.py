"""Propagation through the stack with SAM 2's memory: frames are written as they are tracked.

Every object of the stack through the current plane at once: the committed ones (with the
prompts they were committed with) and those prompted but not committed yet; or the new prompts
only; or every object labelled on the current plane (each keeps its id). Cancel stops within one
frame and keeps what was written; the whole run is one undo step of the labels layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..engine import tracker as tracking  # imported here, not in the worker: imports hold the GIL
from ..engine.apply_prompts import GivenMasks, add_to_tracker, is_given_mask, keep_given_masks
from . import _notify
from ._choice_box import choice_box
from ._image_source import ImageSource, PlaneIndex
from ._jobs import JobControl, JobPanel
from ._labels import StagedWrites, matching_labels
from ._output_panel import OutputPanel
from ._prompt_model import ObjectPrompt, PromptProblem, assign_new_ids, check_inside
from ._prompts import remove_on_line
from ._record import Plan
from ._segment_panel import SegmentPanel
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

FramePlan = list[tuple[int, int, ObjectPrompt]]  # (frame, object id, prompts)


def frames_to_track(n_frames: int, start: int, direction: str) -> int:
    """How many results the tracker yields ('both' visits the start frame twice)."""
    if direction == "forward":
        return n_frames - start
    if direction == "backward":
        return start + 1
    return n_frames + 1


def propagate_job(
    control: JobControl,
    model: Any,
    precision: str,
    source: ImageSource,
    index: PlaneIndex,
    plan: FramePlan,
    direction: str,
) -> Iterator[Any]:
    """Worker: prompt the tracker, then yield each frame's result as soon as it is tracked."""
    tracker = tracking.StackTracker(
        model, source.stack(index), precision=precision, normalization=source.normalization()
    )
    total = frames_to_track(source.n_frames, min(f for f, _, _ in plan), direction)
    control.report(0, total)
    given: GivenMasks = {}
    for frame, obj_id, obj in plan:
        add_to_tracker(tracker, frame, obj_id, obj.points, obj.labels, obj.box, obj.mask)
        if is_given_mask(obj.points, obj.box, obj.mask):
            given[(frame, obj_id)] = obj.mask
    if control.stop_requested:
        return
    results = tracker.propagate(direction=direction)
    try:
        for done, result in enumerate(results, 1):
            keep_given_masks(result, given)
            yield result
            control.report(done, total)
            if control.stop_requested:
                break
    finally:
        results.close()
        close = getattr(tracker.frames, "close", None)
        if close is not None:
            close()


class PropagatePanel(QWidget):
    """Track the objects of the stack (or the labelled objects of this plane) through it."""

    def __init__(
        self,
        session: Session,
        output: OutputPanel,
        segment: SegmentPanel,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.output = output
        self.segment = segment
        self.source_combo = choice_box(SOURCES)
        self.direction = QComboBox()
        self.direction.addItems(DIRECTIONS)
        self.direction.setToolTip(
            "both: from the first prompted plane towards both ends of the stack"
        )
        self.button = QPushButton("Propagate (Shift-T)")
        self.button.clicked.connect(self.propagate)
        self.job = JobPanel(unit="frames")
        self.status = QLabel()
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Track", self.source_combo)
        form.addRow("Direction", self.direction)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.button)
        layout.addWidget(self.job)
        layout.addWidget(self.status)
        self.writes: StagedWrites | None = None
        self._plan: Plan = []
        self._from_prompts = True
        self._index: PlaneIndex = ()
        session.source_changed.connect(self._enable)
        session.model_changed.connect(self._enable)
        self._enable()

    def _enable(self) -> None:
        source = self.session.source
        if self.job.busy:
            why = "A propagation is running."
        elif self.session.model is None:
            why = "Load a model first."
        elif source is None:
            why = "Choose an image first."
        elif not source.is_stack:
            why = "Propagation needs a stack: a 3-D (Z or T) or 4-D image with a stack axis chosen."
        else:
            why = ""
        self.button.setEnabled(not why)
        self.button.setToolTip(why or "Track through the stack; frames appear as they are done.")

    def set_source_choice(self, value: str) -> None:
        """Choose what to track: FROM_ALL, FROM_PROMPTS or FROM_LABELS."""
        self.source_combo.setCurrentIndex(self.source_combo.findData(value))

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
        for plane, prompts in sorted(self.segment.pending(strict=True).items()):
            if not source.same_line(plane, index) or prompts.empty:
                continue
            check_inside(prompts, source.plane_shape)
            for obj in prompts.objects():
                if obj.obj_id is None:
                    new.setdefault(plane, []).append(obj)
                else:
                    plan[(obj.obj_id, plane)] = obj
        first = self.segment.next_id(layer)
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
        try:
            model = self.session.require_model()
            source = self.session.require_source()
            if not source.is_stack:
                raise UserProblem(
                    "Propagation needs a stack: this image has no stack axis. Choose one under "
                    "'Image' "
                    "(3-D or 4-D images), or segment this plane with Commit."
                )
            index = self.session.current_plane()
            choice = self.source_combo.currentData()
            layer = self.output.layer()
            if layer is not None and not matching_labels(source, layer):
                raise UserProblem(
                    f"The labels layer '{layer.name}' does not match the image's shape."
                )
            if choice == FROM_LABELS:
                if layer is None:
                    raise UserProblem(
                        "No output labels layer yet: commit objects on this plane first."
                    )
                plan = self._mask_plan(source, index, layer)
            else:
                plan = self._prompt_plan(source, index, layer, committed=choice == FROM_ALL)
        except (UserProblem, PromptProblem) as problem:
            _notify.error(str(problem))
            return
        layer = self.output.target()
        self.writes = StagedWrites(layer, source, overwrite=self.output.overwrite.isChecked())
        self._plan, self._index, self._source = plan, index, source
        self._from_prompts = choice != FROM_LABELS
        ids = sorted({i for _, i, _ in plan})
        self.status.setText(f"Tracking object(s) {', '.join(map(str, ids))}…")
        self.job.start(
            "Propagating",
            propagate_job,
            model,
            self.session.precision,
            source,
            index,
            [(source.frame_of(plane), obj_id, obj) for plane, obj_id, obj in plan],
            self.direction.currentText(),
            on_yield=self._write,
            on_finish=self._finished,
        )
        self._enable()

    def _write(self, result: Any) -> None:
        if self.writes is None:
            return
        index = self._source.with_frame(self._index, int(result.frame))
        self.writes.write(
            index, [int(i) for i in result.obj_ids], np.asarray(result.masks, dtype=bool)
        )

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
            self.status.setText(f"Propagated through {done} frame(s). Ctrl-Z undoes the whole run.")
            if done:
                record = self.session.record
                record.put(self._plan)
                record.propagated, record.direction = True, self.direction.currentText()
                segment = self.segment
                if self._from_prompts:  # the prompts are used up; after Cancel they stay
                    remove_on_line(
                        self._source, self._index, segment.points, segment.boxes,
                        segment.masks_layer(),
                    )
                    if any(obj.mask is not None for _, _, obj in self._plan):
                        segment.picker.enabled.setChecked(False)
        self._enable()
