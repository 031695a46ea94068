"""Background precompute of a stack's embeddings in the dock: the plane shown first, then its
neighbours outward (following the user as they move), one plane per step on a worker thread.

It pauses while the user's own requests run (`Session.interactive` is set by the preview loop),
stops when the image, the model or the precision changes (and starts again for the new one), and
puts each embedding into the session's in-memory cache and the on-disk store, so that switching
to a ready plane costs only a decoder pass. `status` says how many planes are ready.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal

from ..engine.predictor import ImageEmbedding, ImagePredictor
from ..images.model_input import prepare_image
from ._image_source import ImageSource, PlaneIndex
from ._session import Session

PAUSE_POLL_S = 0.02
PRECOMPUTE_ENV = "NAPARI_SAM2_PRECOMPUTE"


def enabled() -> bool:
    """Off with $NAPARI_SAM2_PRECOMPUTE=0 (e.g. on a machine shared with other work)."""
    return os.environ.get(PRECOMPUTE_ENV, "1") != "0"


class PlanePlan:
    """Which planes are left, nearest to the one shown first (thread-safe, no Qt)."""

    def __init__(self, indices: list[PlaneIndex], current: PlaneIndex | None) -> None:
        self.left = list(indices)
        self.total = len(indices)
        self.current = current
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def take(self) -> PlaneIndex | None:
        """The plane nearest to the current one (ties: the next one forward), removed."""
        with self._lock:
            if not self.left:
                return None
            here = np.asarray(self.current if self.current is not None else self.left[0])
            distance = [(int(np.abs(np.asarray(i) - here).sum()), tuple(np.asarray(i) < here)) for i in self.left]
            best = min(range(len(self.left)), key=distance.__getitem__)
            return self.left.pop(best)

    def drop(self, index: PlaneIndex) -> None:
        with self._lock:
            if index in self.left:
                self.left.remove(index)


def embed_planes(
    predictor: ImagePredictor, source: ImageSource, plan: PlanePlan, paused: threading.Event
) -> Iterator[tuple[PlaneIndex, ImageEmbedding] | None]:
    """Worker: (plane, embedding) for each plane of `plan`, waiting while `paused` is set (and
    yielding None meanwhile, so that quitting the worker, e.g. when napari closes, is seen)."""
    normalization = source.normalization()
    while not plan.stop.is_set():
        if paused.is_set():
            time.sleep(PAUSE_POLL_S)
            yield None
            continue
        index = plan.take()
        if index is None:
            return
        rgb = prepare_image(source.plane(index), normalization)
        yield index, predictor.embed_prepared([rgb])[0]


class BackgroundEmbedder(QObject):
    """Keeps a worker embedding the chosen stack's planes; `status` reports the planes ready."""

    status = Signal(str)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.plan: PlanePlan | None = None
        self.ready = 0
        self._worker: Any = None
        self._key: tuple | None = None  # (model token, source token) the worker embeds for
        session.source_changed.connect(self.restart)
        session.model_changed.connect(self.restart)
        session.viewer.dims.events.current_step.connect(self._follow)
        stops: list[threading.Event] = []
        self._stops = stops
        self.destroyed.connect(lambda *_: [stop.set() for stop in stops])  # the dock closed
        self.restart()

    @property
    def running(self) -> bool:
        return self._worker is not None

    def restart(self, *_: Any) -> None:
        """Stop the current worker; start one for the chosen stack and model, if any."""
        self.cancel()
        session, source = self.session, self.session.source
        self.ready = 0
        if session.model is None or source is None or not source.leading or not enabled():
            self.status.emit("")
            return
        indices = [tuple(int(v) for v in i) for i in np.ndindex(*(source.dims_shape[d] for d in source.leading))]
        plan = self.plan = PlanePlan(indices, session.current_plane())
        self._stops[:] = [plan.stop]
        for index in indices:  # planes the dock already has in memory
            if session.embedding_key(index) in session.cache:
                plan.drop(index)
                self.ready += 1
        self._key = session.embedding_key(())[:2]
        predictor = ImagePredictor(
            session.model, precision=session.precision, embedding_store=session.embedding_store,
            orientations=session.orientations,
        )
        worker = create_worker(
            embed_planes, predictor, source, plan, session.interactive, _start_thread=False, _ignore_errors=True
        )
        worker.yielded.connect(self._on_ready)
        worker.finished.connect(lambda w=worker: self._finished(w))
        self._worker = worker
        self._report()
        worker.start()

    def cancel(self) -> None:
        """Stop the worker after the plane it is embedding (never waits for it)."""
        if self.plan is not None:
            self.plan.stop.set()
        if self._worker is not None:
            self._worker.quit()
        self._worker = None

    def _follow(self, *_: Any) -> None:
        if self.plan is not None and self.session.source is not None:
            self.plan.current = self.session.current_plane()

    def _on_ready(self, item: tuple[PlaneIndex, ImageEmbedding] | None) -> None:
        if item is None:  # paused
            return
        index, embedding = item
        if self.session.source is None or self.session.embedding_key(index)[:2] != self._key:
            return  # the image or the model changed meanwhile
        self.session.cache.put(self.session.embedding_key(index), embedding)
        self.ready += 1
        self._report()

    def _finished(self, worker: Any) -> None:
        if worker is self._worker:
            self._worker = None
            self._report()

    def _report(self) -> None:
        total = self.plan.total if self.plan is not None else 0
        more = "" if self.ready >= total or self.running else " (stopped)"
        self.status.emit(f"Embeddings ready: {self.ready} of {total} planes{more}")
