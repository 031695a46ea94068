"""The preview of the current object: the worker functions that compute it and its 2-D layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Labels

from ..engine.apply_prompts import segment_object
from ..engine.predictor import ImageEmbedding, ImagePredictor
from ..images.model_input import prepare_image
from ._image_source import ImageSource, PlaneIndex
from ._labels import keep_active
from ._prompt_model import ObjectPrompt
from ._prompts import ROLE

PREVIEW_NAME = "SAM2 preview"


def embed_plane(
    predictor: ImagePredictor, source: ImageSource, index: PlaneIndex
) -> ImageEmbedding:
    """Worker: the embedding of one plane, normalised like every other plane of the image."""
    rgb = prepare_image(source.plane(index), source.normalization())
    return predictor.embed_prepared([rgb])[0]


def decode_objects(
    predictor: ImagePredictor,
    embedding: ImageEmbedding,
    objects: list[ObjectPrompt],
    zoom_plane: tuple[ImageSource, PlaneIndex] | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """Worker: the best mask and its predicted IoU for each object's prompts (by the rules of
    `object_prompts`, which the API and the command line follow too); with `zoom_plane`, small
    objects are segmented on enlarged crops of that plane."""
    image = None
    if zoom_plane is not None:
        source, index = zoom_plane
        image = prepare_image(source.plane(index), source.normalization())
    predictor.set_embedding(embedding, image)
    masks, scores = [], []
    for obj in objects:
        mask, score = segment_object(predictor, obj.points, obj.labels, obj.box, obj.mask, zoom=image is not None)
        masks.append(mask)
        scores.append(score)
    return masks, scores


@dataclass
class Preview:
    """The masks decoded for the objects prompted on one plane (`signature` identifies the
    prompts)."""

    index: PlaneIndex
    signature: bytes
    masks: list[np.ndarray]
    scores: list[float]
    objects: list[ObjectPrompt]


def find_preview(viewer: Any) -> Labels | None:
    for layer in viewer.layers:
        if layer.metadata.get(ROLE) == "preview":
            return layer
    return None


def ensure_preview(viewer: Any, image: Image, source: ImageSource) -> Labels:
    """The 2-D preview layer over the current plane, aligned with the image; made once, up
    front, because adding a layer to the canvas is slow and previews should be instant."""
    scale, translate = image.scale[-2:], image.translate[-2:]
    layer = find_preview(viewer)
    if layer is not None:
        if (
            layer.data.shape == source.plane_shape
            and np.allclose(layer.scale, scale)
            and np.allclose(layer.translate, translate)
        ):
            return layer
        viewer.layers.remove(layer)
    active = viewer.layers.selection.active
    layer = viewer.add_labels(
        np.zeros(source.plane_shape, dtype=np.uint8),
        name=PREVIEW_NAME,
        opacity=0.6,
        scale=scale,
        translate=translate,
        metadata={ROLE: "preview"},
    )
    keep_active(viewer, active)
    return layer


def show_masks(viewer: Any, image: Image, source: ImageSource, masks: list[np.ndarray]) -> None:
    """Show one mask per object (values 1, 2, ...) in the preview layer."""
    data = np.zeros(masks[0].shape, dtype=np.uint8)
    for k, mask in enumerate(masks):
        data[mask & (data == 0)] = k + 1
    layer = find_preview(viewer)
    if layer is None or layer.data.shape != data.shape:
        layer = ensure_preview(viewer, image, source)
    layer.data = data


def clear_preview(viewer: Any) -> None:
    layer = find_preview(viewer)
    if layer is not None and layer.data.any():
        layer.data = np.zeros_like(layer.data)
