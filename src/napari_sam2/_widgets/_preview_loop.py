"""The preview's state machine (no layout): embed the plane shown, decode the prompts on it,
drop results that went stale, and hold a Commit until its preview is there.

The embedding of the current plane is computed in a worker whenever the plane changes and kept in
the session's cache; decoding a preview also runs in a worker (the worker functions and the
preview layer are in `_preview`). A result that arrives after the plane, the image, the model or
the prompts changed is dropped, and the preview recomputed. States: idle, embedding, decoding
(with at most one more decode asked for meanwhile), and a commit waiting for its preview.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, QTimer, Signal

from ..engine.predictor import ImageEmbedding, ImagePredictor
from . import _notify, _preview
from ._image_source import PlaneIndex
from ._jobs import run_short
from ._plane_prompts import ObjectPrompt, PlanePrompts, PromptProblem, check_inside
from ._preview import Preview, clear_preview, embed_plane, show_masks
from ._prompt_layers import PromptLayers
from ._session import Session

READY = "Ready: click on an object (SAM2 points) or draw a box (SAM2 boxes)."


class PreviewLoop(QObject):
    """Keeps the preview of the prompts on the current plane up to date; `status` says what it
    is doing, `shown` fires with each new preview (or None)."""

    status = Signal(str)
    shown = Signal(object)

    def __init__(self, session: Session, prompts: PromptLayers, parent: QObject | None = None):
        super().__init__(parent)
        self.session, self.prompts, self.viewer = session, prompts, session.viewer
        self.preview: Preview | None = None
        self.embedder: ImagePredictor | None = None
        self.decoder: ImagePredictor | None = None
        self._embedding_key: tuple | None = None
        self._failed: set[tuple] = set()
        self._decoding = False
        self._decode_again = False
        self._decode_for: tuple | None = None  # (embedding key, prompts signature) being decoded
        self._decode_returned = False
        self._waiting: Callable[[Preview], None] | None = None  # a commit waiting for its preview
        self._waiting_on: PlaneIndex | None = None  # the plane shown when that commit was asked
        self._last_problem = ""
        self._soon = QTimer(self)
        self._soon.setSingleShot(True)
        self._soon.setInterval(0)
        self._soon.timeout.connect(self.update)
        session.source_changed.connect(self._on_source)
        session.model_changed.connect(self._on_model)
        session.choices.events.zoom.connect(self._on_zoom)
        prompts.changed.connect(self.schedule)
        self.viewer.dims.events.current_step.connect(self.schedule)
        self._on_model()

    def _on_model(self) -> None:
        model = self.session.model
        self._failed.clear()
        precision = self.session.precision
        store = self.session.embedding_store
        turns = self.session.orientations
        self.embedder = self.decoder = None
        if model is not None:
            self.embedder = ImagePredictor(model, precision, embedding_store=store, orientations=turns)
            self.decoder = ImagePredictor(model, precision, orientations=turns)
        self.schedule()

    def _on_source(self) -> None:
        self._failed.clear()
        self.show(None)
        self.schedule()

    def _on_zoom(self, *_: Any) -> None:
        self.preview = None  # same prompts, other masks: decode again
        self.schedule()

    def schedule(self, *_: Any) -> None:
        """Bring the preview up to date once the current event is handled. Events that come
        together (a drag) are served at the decoder's pace: while a decode runs, the newest
        prompts wait for it (one more decode at most), so nothing queues up."""
        self._soon.start()

    def when_ready(self, write: Callable[[Preview], None]) -> None:
        """Call `write(preview)` with the preview of the current prompts, now or once decoded."""
        index = self.session.current_plane()
        current = self.preview
        if current is not None and current.index == index and current.signature == (
            self.prompts.on_plane(index).signature()
        ):
            write(current)
            return
        self._waiting, self._waiting_on = write, index
        self.status.emit("Commit waits for the preview…")
        self.update()

    # ------------------------------------------------------------------ the loop

    def update(self) -> None:
        """Bring the preview up to date: embed the plane if needed, then decode the prompts."""
        source, model = self.session.source, self.session.model
        if source is None or model is None:
            self.show(None)
            self._waiting = None
            self.status.emit("Waiting for the model…" if model is None else "Choose an image.")
            return
        index = self.session.current_plane()
        key = self.session.embedding_key(index)
        if self.preview is not None and self.preview.index != index:
            self.show(None)
        embedding = self.session.cache.get(key)
        if embedding is None:
            if key in self._failed:
                self.status.emit("This plane could not be embedded (see the notification).")
            else:
                self._request_embedding(key, index)
            return
        try:
            prompts = self.prompts.on_plane(index, strict=True)
            if prompts.empty:
                self.show(None)
                self._waiting = None
                self.status.emit(READY)
                return
            check_inside(prompts, source.plane_shape)
            objects = prompts.objects()
        except PromptProblem as problem:
            self.show(None)
            self._waiting = None
            self._problem(str(problem))
            return
        self._last_problem = ""
        current = self.preview
        if current is not None and current.index == index and current.signature == (
            prompts.signature()
        ):
            self._deliver()
            return
        self._request_decode(embedding, index, prompts, objects)

    def _problem(self, message: str) -> None:
        self.status.emit(message)
        if message != self._last_problem:
            _notify.error(message)
            self._last_problem = message

    def _deliver(self) -> None:
        write, self._waiting = self._waiting, None
        if write is None or self.preview is None:
            return
        if self.preview.index != self._waiting_on:
            self.status.emit("The commit was dropped: the slice changed before its preview came.")
            return
        write(self.preview)

    def _request_embedding(self, key: tuple, index: PlaneIndex) -> None:
        if self._embedding_key is not None:
            return  # when it finishes, update() asks for the plane shown then
        self._embedding_key = key
        self.session.interactive.set()  # background precompute waits
        where = f"plane {', '.join(map(str, index))}" if index else "the image"
        self.status.emit(f"Computing the image embedding of {where}…")
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
        self._idle()
        if key is not None and key not in self.session.cache:
            self._failed.add(key)
        self.update()

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
        self.session.interactive.set()  # background precompute waits
        signature = prompts.signature()
        key = self.session.embedding_key(index)
        self._decode_for, self._decode_returned = (key, signature), False
        zoom = (self.session.source, index) if self.session.choices.zoom else None
        run_short(
            "Segmenting",
            _preview.decode_objects,
            self.decoder,
            embedding,
            objects,
            zoom,
            on_return=lambda result: self._decoded(key, signature, objects, *result),
            on_finish=self._decode_finished,
        )

    def _decoded(
        self, key: tuple, signature: bytes, objects: list[ObjectPrompt], masks: list, scores: list
    ) -> None:
        self._decode_returned = True
        index = key[-1]
        if (
            self.session.source is None
            or key != self.session.embedding_key(self.session.current_plane())
            or signature != self.prompts.on_plane(index).signature()
        ):
            self._decode_again = True  # stale: the plane, image, model or prompts changed meanwhile
            return
        self.show(Preview(index, signature, masks, scores, objects))
        self._deliver()

    def _decode_finished(self) -> None:
        """A decode ended (after its result, if any). A commit waiting on the prompts that just
        failed to decode is dropped (the error was shown); any other waiting commit is kept."""
        self._decoding = False
        self._idle()
        failed = not self._decode_returned
        if self._decode_again:
            self._decode_again = False
            self.update()
        elif failed and self._waiting is not None:
            if self._decode_for == self._current_request():
                self._waiting = None
            else:
                self.update()

    def _current_request(self) -> tuple | None:
        if self.session.source is None:
            return None
        index = self.session.current_plane()
        return self.session.embedding_key(index), self.prompts.on_plane(index).signature()

    def _idle(self) -> None:
        if self._embedding_key is None and not self._decoding:
            self.session.interactive.clear()

    def show(self, preview: Preview | None) -> None:
        """Show `preview` in the preview layer (None clears it)."""
        self.preview = preview
        if preview is None:
            clear_preview(self.viewer)
        else:
            show_masks(
                self.viewer, self.session.image_layer, self.session.source, preview.shown_masks()
            )
        self.shown.emit(preview)
