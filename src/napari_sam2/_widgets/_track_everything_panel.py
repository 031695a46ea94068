"""Track everything: every cell of the movie followed without clicks, into a Labels layer (one
label per track) and a Tracks layer whose graph shows the divisions, frame by frame."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from qtpy.QtWidgets import QCheckBox, QFormLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from ..tracking import everything  # imported here, not in the worker: imports hold the GIL
from ..tracking.lineage import Lineage
from . import _notify
from ._choice_box import choice_box
from ._image_source import ImageSource, PlaneIndex
from ._jobs import JobControl, JobPanel
from ._labels import new_labels
from ._session import Session, UserProblem

LABELS_NAME = "SAM2 tracked cells"
TRACKS_NAME = "SAM2 tracks"
DIRECTIONS = (("Forward (first frame first)", "forward"), ("Backward (last frame first)", "backward"))


def track_everything_job(
    control: JobControl,
    model: Any,
    precision: str,
    source: ImageSource,
    index: PlaneIndex,
    settings: everything.Settings,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, dict[int, int]]]:
    """Worker: yield (frame, labels, track table so far, child -> parent) after each frame."""
    tracker = everything.new_tracker(model, source.stack(index), settings, precision, source.normalization())
    lineage = Lineage()
    total = tracker.num_frames
    control.report(0, total)
    for done, (frame, labels) in enumerate(everything.iterate(tracker, settings, lineage), start=1):
        yield frame, labels, lineage.table(), lineage.children()
        control.report(done, total)
        if control.stop_requested:
            break
    tracker.frames.discard_pending()


class TrackEverythingPanel(QWidget):
    """Settings and a Run button; labels and tracks appear as frames are done; Cancel keeps them."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.direction = choice_box(DIRECTIONS, "Backward starts from the last frame and finds no divisions.")
        self.detect_every = QSpinBox()
        self.detect_every.setRange(1, 1000)
        self.detect_every.setValue(1)
        self.detect_every.setToolTip("Look for new cells every this many frames (1: every frame; more is faster).")
        self.divisions = QCheckBox("Find divisions")
        self.divisions.setChecked(True)
        self.divisions.setToolTip("A cell that splits in two ends; two daughter tracks begin with it as parent.")
        self.blob_fit = QCheckBox("Hold masks to bright blobs")
        self.blob_fit.setChecked(True)
        self.blob_fit.setToolTip(
            "A mask that leaks onto a neighbour gives it back, and a dim nucleus's mask takes its whole blob."
        )
        self.fast = QCheckBox("Fast: follow cells without memory")
        self.fast.setToolTip(
            "Each cell is found by a click where it was on the frame before: a hundred cells cost about "
            "three times one. Finds fewer divisions; cells that jump or touch are followed less well."
        )
        self.button = QPushButton("Track everything")
        self.button.clicked.connect(self.run)
        self.job = JobPanel(unit="frames")
        self.status = QLabel()
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Direction", self.direction)
        form.addRow("Detect new cells every", self.detect_every)
        form.addRow("", self.divisions)
        form.addRow("", self.blob_fit)
        form.addRow("", self.fast)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.button)
        layout.addWidget(self.job)
        layout.addWidget(self.status)
        self.labels: Any = None
        self.tracks: Any = None
        session.source_changed.connect(self._enable)
        session.model_changed.connect(self._enable)
        self._enable()

    def settings(self) -> everything.Settings:
        return everything.Settings(
            direction=self.direction.currentData(),
            detect_every=self.detect_every.value(),
            divisions=self.divisions.isChecked(),
            fit_to_blobs=self.blob_fit.isChecked(),
            memory=not self.fast.isChecked(),
        )

    def _enable(self) -> None:
        why = self.session.stack_job_blocker(self.job.busy, "Tracking is running.", "Tracking needs a movie or a z-stack: this image has no stack axis.")
        self.button.setEnabled(not why)
        self.button.setToolTip(why or "Track every cell automatically: new Labels and Tracks layers.")

    def run(self) -> None:
        if self.job.busy:
            _notify.info("Tracking is already running: cancel it or wait for it to finish.")
            return
        try:
            model = self.session.require_model()
            source = self.session.require_source()
            if not source.is_stack:
                raise UserProblem("Tracking needs a movie or a z-stack: this image has no stack axis.")
            index = self.session.current_plane()
        except UserProblem as problem:
            _notify.error(str(problem))
            return
        viewer = self.session.viewer
        self.labels = new_labels(viewer, source, self.session.image_layer, LABELS_NAME)
        self.tracks = None
        self._source, self._index, self._frames = source, index, 0
        self._parents: dict[int, int] = {}
        self.job.start(
            "Tracking everything", track_everything_job, model, self.session.precision, source, index,
            self.settings(), on_yield=self._write, on_finish=self._finished,
        )
        self._enable()

    def _write(self, item: tuple[int, np.ndarray, np.ndarray, dict[int, int]]) -> None:
        frame, labels, table, parents = item
        key = self._source.labels_plane_key(self._source.with_frame(self._index, frame))
        self.labels.data[key] = labels
        self.labels.refresh()
        self._frames += 1
        self._parents = parents
        if len(table) and len(self.labels.data.shape) == 3:  # (T, Y, X): tracks in the same space
            self._show_tracks(table, parents)

    def _show_tracks(self, table: np.ndarray, parents: dict[int, int]) -> None:
        data, graph = everything.napari_tracks(table, parents)
        if self.tracks is None or self.tracks not in self.session.viewer.layers:
            active = self.session.viewer.layers.selection.active
            self.tracks = self.session.viewer.add_tracks(
                data, graph=graph, name=TRACKS_NAME, scale=self.labels.scale, translate=self.labels.translate,
                tail_length=10,
            )
            if active is not None and active in self.session.viewer.layers:
                self.session.viewer.layers.selection.active = active
        else:
            self.tracks.data = data
            self.tracks.graph = graph

    def _finished(self, outcome: str) -> None:
        tracks = len(np.unique(self.tracks.data[:, 0])) if self.tracks is not None else 0
        found = f"{tracks} track(s), {len(set(self._parents.values()))} division(s) on {self._frames} frame(s)"
        if outcome == "done":
            text = f"Done: {found} in '{LABELS_NAME}' and '{TRACKS_NAME}'."
        elif outcome == "cancelled":
            text = f"Cancelled; {found} are kept."
        else:
            text = f"Failed after {self._frames} frame(s) (see the notification)."
        self.status.setText(text)
        self.session.viewer.status = f"SAM 2: {text}"
        self._enable()
