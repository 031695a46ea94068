"""Propagation through the stack with SAM 2's memory: frames are written as they are tracked.

Either the prompts on the stack through the current plane (one new object), or every object
already labelled on the current plane (each keeps its id). Cancel stops within one frame and
keeps what was written; the whole run is one undo step of the labels layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .. import tracker as tracking  # imported here, not in the worker: imports hold the GIL
from . import _notify
from ._image_source import ImageSource, PlaneIndex
from ._jobs import JobControl, JobPanel
from ._labels import StagedWrites, matching_labels, next_label
from ._output_panel import OutputPanel
from ._prompt_model import ObjectPrompt, PromptProblem, check_inside
from ._prompts import read_prompts, remove_on_line
from ._segment_panel import SegmentPanel
from ._session import Session, UserProblem

FROM_PROMPTS = "prompts"
FROM_LABELS = "labels"
SOURCES = (
    ("Prompts on this stack (one new object)", FROM_PROMPTS),
    ("Objects labelled on this plane (keep their ids)", FROM_LABELS),
)
DIRECTIONS = ("both", "forward", "backward")

PromptPlan = list[tuple[int, int, ObjectPrompt]]  # (frame, object id, prompts)
MaskPlan = list[tuple[int, int, np.ndarray]]  # (frame, object id, mask)


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
    prompts: PromptPlan,
    masks: MaskPlan,
    direction: str,
) -> Iterator[Any]:
    """Worker: prompt the tracker, then yield each frame's result as soon as it is tracked."""
    tracker = tracking.StackTracker(
        model, source.stack(index), precision=precision, normalization=source.normalization()
    )
    frames = [f for f, _, _ in prompts] + [f for f, _, _ in masks]
    total = frames_to_track(source.n_frames, min(frames), direction)
    control.report(0, total)
    for frame, obj_id, obj in prompts:
        has_points = len(obj.points) > 0
        if obj.box is not None:
            tracker.add_box(
                frame,
                obj_id,
                obj.box,
                obj.points if has_points else None,
                obj.labels if has_points else None,
            )
        else:
            tracker.add_points(frame, obj_id, obj.points, obj.labels)
    for frame, obj_id, mask in masks:
        tracker.add_mask(frame, obj_id, mask)
    if control.stop_requested:
        return
    results = tracker.propagate(direction=direction)
    try:
        for done, result in enumerate(results, 1):
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
    """Track the current object (or the labelled objects of this plane) through the stack."""

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
        self.source_combo = QComboBox()
        for label, value in SOURCES:
            self.source_combo.addItem(label, value)
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
        self._from_prompts = False
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

    # ------------------------------------------------------------------ planning

    def _prompt_plan(self, source: ImageSource, index: PlaneIndex, obj_id: int) -> PromptPlan:
        plan = []
        for plane, prompts in sorted(
            read_prompts(source, self.segment.points, self.segment.boxes).items()
        ):
            if not source.same_line(plane, index) or prompts.empty:
                continue
            check_inside(prompts, source.plane_shape)
            objects = prompts.objects()
            if len(objects) > 1:
                raise UserProblem(
                    f"Plane {source.frame_of(plane)} has {len(objects)} boxes, but propagating "
                    "prompts follows one object. Keep one box per plane, or commit each object "
                    "on one plane "
                    "and track 'Objects labelled on this plane'."
                )
            plan.append((source.frame_of(plane), obj_id, objects[0]))
        if not plan:
            raise UserProblem(
                "No prompts on this stack: click on the object (or draw a box) on at least one "
                "plane, "
                "or track the objects labelled on this plane instead."
            )
        return plan

    def _mask_plan(self, source: ImageSource, index: PlaneIndex, layer: Any) -> MaskPlan:
        plane = np.asarray(layer.data[source.labels_plane_key(index)])
        ids = [int(i) for i in np.unique(plane) if i != 0]
        if not ids:
            raise UserProblem(
                f"No objects are labelled on this plane of '{layer.name}': commit some first, "
                "or track the prompts instead."
            )
        frame = source.frame_of(index)
        return [(frame, obj_id, plane == obj_id) for obj_id in ids]

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
            from_prompts = self.source_combo.currentData() == FROM_PROMPTS
            layer = self.output.layer()
            if layer is not None and not matching_labels(source, layer):
                raise UserProblem(
                    f"The labels layer '{layer.name}' does not match the image's shape."
                )
            if from_prompts:
                obj_id = next_label(layer) if layer is not None else 1
                prompts, masks = self._prompt_plan(source, index, obj_id), []
            else:
                if layer is None:
                    raise UserProblem(
                        "No output labels layer yet: commit objects on this plane first."
                    )
                prompts, masks = [], self._mask_plan(source, index, layer)
        except (UserProblem, PromptProblem) as problem:
            _notify.error(str(problem))
            return
        layer = self.output.target()
        self.writes = StagedWrites(layer, source, overwrite=self.output.overwrite.isChecked())
        self._skip = {
            f for f, _, _ in masks
        }  # planes the objects came from stay as the user made them
        self._from_prompts, self._index, self._source = from_prompts, index, source
        ids = sorted({i for _, i, _ in prompts} | {i for _, i, _ in masks})
        self.status.setText(f"Tracking object(s) {', '.join(map(str, ids))}…")
        self.job.start(
            "Propagating",
            propagate_job,
            model,
            self.session.precision,
            source,
            index,
            prompts,
            masks,
            self.direction.currentText(),
            on_yield=self._write,
            on_finish=self._finished,
        )
        self._enable()

    def _write(self, result: Any) -> None:
        if self.writes is None or result.frame in self._skip:
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
            if self._from_prompts and done:
                remove_on_line(self._source, self._index, self.segment.points, self.segment.boxes)
        self._enable()
