"""State shared by the sections of the SAM 2 widget of one viewer: model, image, embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal

from ._embedding_cache import EmbeddingCache
from ._image_source import ImageSource, PlaneIndex
from ._record import ObjectRecord

if TYPE_CHECKING:
    from napari.layers import Image

    from ..modeling.sam2 import SAM2Model


class UserProblem(Exception):
    """Something the user must do before an action can run; the message says what."""


class Session:
    """The loaded model, the chosen image (as an ImageSource), the embedding cache, and the
    record of the objects written so far (for prompts files)."""

    model_changed = Signal()
    source_changed = Signal()

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.model: SAM2Model | None = None
        self.model_name = ""
        self.model_spec: dict[str, Any] = {}  # how to load the model again: name, checkpoint
        self.precision = "auto"
        self.image_layer: Image | None = None
        self.source: ImageSource | None = None
        self.cache = EmbeddingCache()
        self.record = ObjectRecord()
        self._model_token = 0

    # ------------------------------------------------------------------ model

    def set_model(
        self, model: SAM2Model | None, name: str = "", spec: dict[str, Any] | None = None
    ) -> None:
        """The model to use; `spec` says how to load it again ({"name", "checkpoint"})."""
        self.model, self.model_name = model, name
        if spec is None and model is not None:
            spec = {"name": model.config.name, "checkpoint": None}
        self.model_spec = dict(spec or {})
        self._model_token += 1
        self.cache.clear()
        self.model_changed.emit()

    def set_precision(self, precision: str) -> None:
        if precision != self.precision:
            self.precision = precision
            self._model_token += 1
            self.cache.clear()
            self.model_changed.emit()

    def require_model(self) -> SAM2Model:
        if self.model is None:
            raise UserProblem(
                "No model is loaded: choose one under 'Model' and press 'Load model'."
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
