"""State shared by the sections of the SAM 2 dock of one viewer (no Qt): the user's choices, the
model, the image, the embeddings and the record of the objects written so far.

Panels show `Choices` in their controls and write changes back to it; they never read or write
another panel's controls. A prompts file, a script or a test sets a choice here and every panel
follows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal, evented

from ._embedding_cache import EmbeddingCache
from ._image_source import ImageSource, PlaneIndex
from ._record import ObjectRecord

if TYPE_CHECKING:
    from napari.layers import Image

    from ..modeling.sam2 import SAM2Model

NEW_OBJECT = 0  # the object choice that means "the next free id"


@evented
@dataclass
class Choices:
    """What the user chose in the dock; `choices.events.<name>` fires when one changes."""

    model: str = ""  # a preset, "test" or "file"
    checkpoint: str = ""  # the .pt file when model == "file"
    device: str = "auto"
    precision: str = "auto"
    orientations: int = 0  # prompts averaged over 1, 4 or 8 orientations (0: the model's default)
    channel_axis: int | None = None  # image axes, as dims of the chosen Image layer
    channels: str = ""  # "2,0,1": the channels used as R, G, B ('' = default)
    stack_axis: int | None = None
    normalization: str = "percentiles"
    overwrite: bool = False  # results replace labels under them
    object_id: int = NEW_OBJECT  # the object new clicks and boxes belong to
    zoom: bool = False  # segment small objects on an enlarged crop
    track: str = "all"  # what Propagate tracks: "all", "prompts" or "labels"
    direction: str = "both"
    first_frame: int | None = None  # the frame range Propagate may reach (None: the stack's end)
    last_frame: int | None = None


def _embedding_store():
    """The user's on-disk embedding cache ($NAPARI_SAM2_EMBEDDINGS: a folder, or 'none')."""
    import os

    from ..api import embedding_store

    if os.environ.get("NAPARI_SAM2_EMBEDDINGS", "").lower() == "none":
        return None
    return embedding_store(True)


class UserProblem(Exception):
    """Something the user must do before an action can run; the message says what."""


class Session:
    """The choices, the loaded model, the chosen image (as an ImageSource), the embedding cache,
    and the record of the objects written so far (for prompts files)."""

    model_changed = Signal()
    source_changed = Signal()

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.choices = Choices()
        self.model: SAM2Model | None = None
        self.model_name = ""
        self.model_spec: dict[str, Any] = {}  # how to load the model again: name, checkpoint
        self.image_layer: Image | None = None
        self.source: ImageSource | None = None
        self.cache = EmbeddingCache()
        self.embedding_store = _embedding_store()  # on disk, shared with other sessions and the CLI
        self.interactive = threading.Event()  # set while the user's own requests run
        self.record = ObjectRecord()
        self._model_token = 0
        self.choices.events.precision.connect(self._on_precision)
        self.choices.events.orientations.connect(self._on_precision)

    # ------------------------------------------------------------------ model

    def set_model(
        self, model: SAM2Model | None, name: str = "", spec: dict[str, Any] | None = None
    ) -> None:
        """The model to use; `spec` says how to load it again ({"name", "checkpoint"})."""
        self.model, self.model_name = model, name
        if spec is None and model is not None:
            spec = {"name": model.config.name, "checkpoint": None}
        self.model_spec = dict(spec or {})
        self._model_changed()

    @property
    def precision(self) -> str:
        return self.choices.precision

    @property
    def orientations(self) -> int | None:
        """The orientations prompts are averaged over (None: the model's default)."""
        return self.choices.orientations or None

    def _on_precision(self, *_: Any) -> None:  # embeddings of another precision or orientations
        self._model_changed()

    def _model_changed(self) -> None:
        self._model_token += 1
        self.cache.clear()
        self.model_changed.emit()

    def require_model(self) -> SAM2Model:
        if self.model is None:
            raise UserProblem(
                "No model is loaded yet: it loads when the dock opens (see 'Model'); wait for "
                "it, or choose another model and press 'Load model'."
            )
        return self.model

    # ------------------------------------------------------------------ image

    def set_source(self, layer: Image | None, source: ImageSource | None) -> None:
        old = self.source
        same_planes = (
            old is not None and source is not None and old.leading == source.leading
            and old.labels_shape == source.labels_shape
        )
        if layer is not self.image_layer or not same_planes:
            self.record.clear()  # objects belong to the image and axes they were made on
        self.image_layer, self.source = layer, source
        self.source_changed.emit()

    def require_source(self) -> ImageSource:
        if self.source is None or self.image_layer is None:
            raise UserProblem("No image is chosen: open an image and pick it under 'Image'.")
        return self.source

    def stack_job_blocker(self, busy: bool, running: str, no_stack: str) -> str:
        """Why a job that runs through the stack cannot start now ('' when it can)."""
        if busy:
            return running
        if self.model is None:
            return "Wait for the model to load (see 'Model')."
        if self.source is None:
            return "Choose an image first."
        return "" if self.source.is_stack else no_stack

    def current_plane(self) -> PlaneIndex | None:
        """The plane of the chosen image at the viewer's current slice position."""
        if self.source is None or self.image_layer is None:
            return None
        layer = self.image_layer
        world = np.asarray(self.viewer.dims.point, dtype=float)[-layer.ndim :]
        return self.source.plane_index(np.asarray(layer.world_to_data(world), dtype=float))

    def embedding_key(self, index: PlaneIndex) -> tuple:
        source = self.require_source()
        return (self._model_token, source.token, index)
