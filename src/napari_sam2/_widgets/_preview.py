"""The preview of the current object: the worker functions that compute it and its 2-D layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from napari.layers import Image, Labels

from ..engine.apply_prompts import segment_object
from ..engine.predictor import ImageEmbedding, ImagePredictor
from ..engine.zoom import DIM_LEVEL, prompt_level
from ..images.model_input import prepare_image
from ._image_source import ImageSource, PlaneIndex
from ._labels import keep_active
from ._plane_prompts import ObjectPrompt
from ._prompt_layers import ROLE

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
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Worker: the candidate masks (K, H, W) and the model's predicted IoU of each (K,) for each
    object's prompts. A single click is ambiguous: its three candidates are kept so that the user
    can cycle them; other prompts give one mask (by the rules of `segment_object`, which the API
    and the command line follow too). With `zoom_plane`, small objects are segmented on enlarged
    crops of that plane."""
    image = None
    if zoom_plane is not None:
        source, index = zoom_plane
        image = prepare_image(source.plane(index), source.normalization())
    predictor.set_embedding(embedding, image)
    masks, scores = [], []
    for obj in objects:
        if obj.multimask and image is None:
            result = predictor.predict(obj.points, obj.labels, multimask_output=True)
            masks.append(np.asarray(result.masks, dtype=bool))
            scores.append(np.asarray(result.scores, dtype=float))
            continue
        mask, score = segment_object(
            predictor, obj.points, obj.labels, obj.box, obj.mask, zoom=image is not None
        )
        masks.append(mask[None])
        scores.append(np.array([score]))
    return masks, scores


def dim_level(source: ImageSource, index: PlaneIndex, objects: list[ObjectPrompt]) -> float | None:
    """The lowest level (0-1, after the image's normalisation) under the positive clicks of an
    object darker than `DIM_LEVEL` there, or None: a dim object, which the model takes for
    background unless zoomed (brightened) or shown with a lower gamma. Only for images held in
    memory (reading a lazy plane for a hint is not worth it)."""
    if not isinstance(source.data, np.ndarray):
        return None
    clicked = [obj for obj in objects if obj.points is not None and len(obj.points)]
    if not clicked:
        return None
    plane, norm = source.plane(index), source.normalization()
    levels = [prompt_level(plane, obj.points, obj.labels, None, norm.apply) for obj in clicked]
    dim = [level for level in levels if level is not None and level < DIM_LEVEL]
    return min(dim) if dim else None


@dataclass
class Preview:
    """The candidate masks decoded for the objects prompted on one plane and the one shown of
    each (`signature` identifies the prompts). masks[i]: (K, H, W) or one (H, W) mask of object
    i; scores[i]: the model's predicted IoU of each candidate (its confidence, not a measured
    IoU)."""

    index: PlaneIndex
    signature: bytes
    masks: list[np.ndarray]
    scores: list[Any]
    objects: list[ObjectPrompt]
    chosen: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.masks = [m if m.ndim == 3 else m[None] for m in map(np.asarray, self.masks)]
        self.scores = [np.atleast_1d(np.asarray(s, dtype=float)) for s in self.scores]
        if not self.chosen:
            self.chosen = [int(np.argmax(s)) for s in self.scores]

    def shown_masks(self) -> list[np.ndarray]:
        return [m[c] for m, c in zip(self.masks, self.chosen, strict=True)]

    def candidates(self) -> int:
        """The most candidates any object has (1: nothing to cycle)."""
        return max((len(m) for m in self.masks), default=0)

    def cycle(self) -> bool:
        """Show each object's next candidate; False when there is only one each."""
        if self.candidates() < 2:
            return False
        self.chosen = [(c + 1) % len(m) for c, m in zip(self.chosen, self.masks, strict=True)]
        return True

    def describe(self) -> str:
        """'candidate 2/3, model confidence 0.91' (per object)."""
        parts = []
        for m, c, s in zip(self.masks, self.chosen, self.scores, strict=True):
            which = f"candidate {c + 1}/{len(m)}, " if len(m) > 1 else ""
            parts.append(f"{which}model confidence {s[c]:.2f}")
        return "; ".join(parts)


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
