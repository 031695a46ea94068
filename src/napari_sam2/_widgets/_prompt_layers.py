"""The prompt layers: a Points layer of clicks (features `positive` and `object`), a Shapes layer
of boxes (feature `object`), and, when a prompts file brings masks, a Labels layer of mask prompts
whose values are object ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from psygnal import Signal

from ._image_source import ImageSource, PlaneIndex
from ._labels import next_label
from ._plane_prompts import EMPTY, PlanePrompts, PromptProblem, group_prompts
from ._session import Session

POINTS_NAME = "SAM2 points"
BOXES_NAME = "SAM2 boxes"
MASKS_NAME = "SAM2 mask prompts"
POSITIVE_COLOR = "#30e030"
NEGATIVE_COLOR = "#ff3030"
ROLE = "napari_sam2_role"


def _aligned(layer: Any, image: Image) -> bool:
    return (
        layer.ndim == image.ndim
        and np.allclose(layer.scale, image.scale)
        and np.allclose(layer.translate, image.translate)
    )


def find_layer(viewer: Any, role: str, image: Image) -> Any:
    """Our prompt layer of this role that is aligned with `image`, if any."""
    for layer in viewer.layers:
        if layer.metadata.get(ROLE) == role and _aligned(layer, image):
            return layer
    return None


def _marker_size(image: Image) -> float:
    h, w = image.data.shape[image.ndim - 2 : image.ndim] if not image.multiscale else (512, 512)
    return float(max(6.0, 0.02 * max(h, w)))


def ensure_points(viewer: Any, image: Image) -> Points:
    """The clicks layer for `image`, created (empty, in 'add' mode) when missing."""
    layer = find_layer(viewer, "points", image)
    if layer is not None:
        return layer
    layer = Points(
        ndim=image.ndim,
        name=POINTS_NAME,
        features={"positive": np.zeros(0, dtype=bool), "object": np.zeros(0, dtype=np.int64)},
        feature_defaults={"positive": True, "object": 0},
        face_color="positive",
        face_color_cycle={True: POSITIVE_COLOR, False: NEGATIVE_COLOR},
        border_color="white",
        border_width=0.15,
        size=_marker_size(image),
        scale=image.scale,
        translate=image.translate,
        metadata={ROLE: "points"},
    )
    viewer.add_layer(layer)
    layer.mode = "add"
    return layer


def ensure_boxes(viewer: Any, image: Image) -> Shapes:
    """The boxes layer for `image`, created when missing; its rectangles are box prompts."""
    layer = find_layer(viewer, "boxes", image)
    if layer is not None:
        return layer
    layer = Shapes(
        ndim=image.ndim,
        name=BOXES_NAME,
        face_color="transparent",
        edge_color="#ffd000",
        edge_width=max(1.0, _marker_size(image) / 4),
        features={"object": np.zeros(0, dtype=np.int64)},
        feature_defaults={"object": 0},
        scale=image.scale,
        translate=image.translate,
        metadata={ROLE: "boxes"},
    )
    viewer.add_layer(layer)
    return layer


def positive_flags(points: Points) -> np.ndarray:
    if "positive" in points.features:
        return points.features["positive"].to_numpy(dtype=bool)
    return np.ones(len(points.data), dtype=bool)


def object_tags(layer: Points | Shapes | None, n: int) -> np.ndarray:
    """The object id each click or shape is tagged with (0: a new object)."""
    if layer is not None and "object" in layer.features:
        return layer.features["object"].to_numpy(dtype=np.int64)
    return np.zeros(n, dtype=np.int64)


def rectangles(shapes: Shapes | None) -> tuple[list[np.ndarray], np.ndarray]:
    """Corner arrays of the rectangles (other shapes are ignored) and their object tags."""
    if shapes is None:
        return [], np.zeros(0, dtype=np.int64)
    tags = object_tags(shapes, len(shapes.data))
    keep = [i for i, kind in enumerate(shapes.shape_type) if kind == "rectangle"]
    return [np.asarray(shapes.data[i]) for i in keep], tags[keep]


def read_prompts(
    source: ImageSource, points: Points | None, shapes: Shapes | None, masks: Labels | None = None
) -> dict[PlaneIndex, PlanePrompts]:
    """Every prompt, grouped by plane (with the mask prompts of the masks layer, if any)."""
    coords = (
        np.asarray(points.data, dtype=float) if points is not None else np.zeros((0, source.ndim))
    )
    flags = positive_flags(points) if points is not None else np.zeros(0, dtype=bool)
    rects, box_tags = rectangles(shapes)
    planes = group_prompts(source, coords, flags, rects, object_tags(points, len(coords)), box_tags)
    for index, by_object in mask_prompts(source, masks).items():
        planes[index] = planes.get(index, EMPTY).with_masks(by_object)
    return planes


def set_object(points: Points | None, shapes: Shapes | None, obj_id: int) -> None:
    """The object that the next clicks and boxes belong to (0: a new object); either layer may
    be None."""
    for layer in (points, shapes):
        if layer is not None and "object" in layer.features:
            layer.feature_defaults = {**layer.feature_defaults.iloc[0].to_dict(), "object": obj_id}


def find_masks(viewer: Any, image: Image) -> Labels | None:
    """The mask prompts layer of `image`, if one was made (by loading a prompts file)."""
    return find_layer(viewer, "masks", image)


def ensure_masks(viewer: Any, source: ImageSource, image: Image) -> Labels:
    """The mask prompts layer of `image` (label k on a plane = the mask of object k there)."""
    layer = find_masks(viewer, image)
    if layer is not None:
        return layer
    dims = source.labels_dims()
    layer = Labels(
        np.zeros(source.labels_shape, dtype=np.uint32),
        name=MASKS_NAME,
        opacity=0.4,
        scale=[image.scale[d] for d in dims],
        translate=[image.translate[d] for d in dims],
        metadata={ROLE: "masks"},
    )
    active = viewer.layers.selection.active
    viewer.add_layer(layer)
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    return layer


def mask_prompts(
    source: ImageSource, masks: Labels | None
) -> dict[PlaneIndex, dict[int, np.ndarray]]:
    """{plane: {object id: mask}} of the mask prompts layer."""
    if masks is None or tuple(masks.data.shape) != source.labels_shape:
        return {}
    data = np.asarray(masks.data)
    lead = data.shape[: data.ndim - 2]
    found: dict[PlaneIndex, dict[int, np.ndarray]] = {}
    for index in zip(*np.nonzero(data.reshape(*lead, -1).any(axis=-1))) if lead else [()]:
        plane = data[tuple(int(i) for i in index)]
        ids = [int(i) for i in np.unique(plane) if i != 0]
        if ids:
            found[tuple(int(i) for i in index)] = {i: plane == i for i in ids}
    return found


def toggle_positive(points: Points) -> str:
    """Flip the selected clicks (in select mode) positive <-> negative, else the next click's."""
    selected = sorted(points.selected_data) if str(points.mode) == "select" else []
    if selected:
        flags = positive_flags(points).copy()
        flags[selected] = ~flags[selected]
        points.features = points.features.assign(positive=flags)
        points.refresh_colors()
        return f"{len(selected)} selected click(s) flipped"
    now = not bool(points.feature_defaults["positive"].iloc[0])
    points.feature_defaults = {**points.feature_defaults.iloc[0].to_dict(), "positive": now}
    return "next click: " + ("positive" if now else "negative")


def next_click_positive(points: Points | None) -> bool:
    return points is None or bool(points.feature_defaults["positive"].iloc[0])


def remove_on_plane(
    source: ImageSource,
    index: PlaneIndex,
    points: Points | None,
    shapes: Shapes | None,
    masks: Labels | None = None,
) -> None:
    """Delete the prompts that lie on one plane (e.g. after they were committed)."""
    _remove(source, lambda plane: plane == index, points, shapes, masks)


def remove_on_line(
    source: ImageSource,
    index: PlaneIndex,
    points: Points | None,
    shapes: Shapes | None,
    masks: Labels | None = None,
) -> None:
    """Delete the prompts on every plane of the stack through `index`."""
    _remove(source, lambda plane: source.same_line(plane, index), points, shapes, masks)


def _remove(source: ImageSource, where: Any, points: Any, shapes: Any, masks: Any) -> None:
    if points is not None and len(points.data):
        drop = {i for i, p in enumerate(source.plane_indices(points.data)) if where(p)}
        if drop:
            points.selected_data = drop
            points.remove_selected()
    if shapes is not None and len(shapes.data):
        drop = {
            i for i, d in enumerate(shapes.data) if where(source.plane_index(np.mean(d, axis=0)))
        }
        if drop:
            shapes.selected_data = drop
            shapes.remove_selected()
    for index in mask_prompts(source, masks):
        if where(index):
            masks.data[source.labels_plane_key(index)] = 0
            masks.refresh()


class PromptLayers:
    """The clicks, boxes and mask-prompt layers of the chosen image and the prompts in them not
    yet used: what the preview, Commit, Propagate and Save read (napari layers, no Qt)."""

    changed = Signal()  # prompts were added, moved or deleted
    made = Signal(object)  # a new prompt layer (the dock binds its keys on it)
    used = Signal()  # prompts were used up by a commit or a propagation

    def __init__(self, session: Session) -> None:
        self.session = session
        self.viewer = session.viewer
        self.points: Points | None = None
        self.boxes: Shapes | None = None
        # The mask prompt of the current object on a plane (the segment panel's label picker).
        self.mask_source: Callable[[PlaneIndex], np.ndarray | None] | None = None
        session.choices.events.object_id.connect(self._on_object)
        self.viewer.layers.events.removed.connect(self._on_removed)

    def ensure(self) -> None:
        """Make (or find) the clicks and boxes layers of the chosen image."""
        image = self.session.image_layer
        if image is None:
            return
        for name, make in (("points", ensure_points), ("boxes", ensure_boxes)):
            old, new = getattr(self, name), make(self.viewer, image)
            if new is old:
                continue
            if old is not None:
                old.events.data.disconnect(self._emit_changed)
            new.events.data.connect(self._emit_changed)
            setattr(self, name, new)
            set_object(new, None, self.session.choices.object_id)
            self.made.emit(new)

    def _emit_changed(self, *_: Any) -> None:
        self.changed.emit()

    def _on_object(self, value: int) -> None:
        set_object(self.points, self.boxes, value)
        self.changed.emit()

    def _on_removed(self, event: Any) -> None:
        if event.value is self.points:
            self.points = None
        elif event.value is self.boxes:
            self.boxes = None
        else:
            return
        self.changed.emit()

    def masks_layer(self) -> Labels | None:
        """The mask prompts layer of the image (made when a prompts file brings masks)."""
        image = self.session.image_layer
        return find_masks(self.viewer, image) if image is not None else None

    def layers(self) -> list[Any]:
        return [x for x in (self.points, self.boxes, self.masks_layer()) if x is not None]

    def pending(self, strict: bool = False) -> dict[PlaneIndex, PlanePrompts]:
        """Every prompt not yet used, by plane, with the mask prompt on the current plane.

        strict: a mask prompt that cannot be used raises PromptProblem (else it is left out).
        """
        source = self.session.source
        if source is None:
            return {}
        planes = read_prompts(source, self.points, self.boxes, self.masks_layer())
        index = self.session.current_plane()
        mask = None
        if self.mask_source is not None:
            try:
                mask = self.mask_source(index)
            except PromptProblem:
                if strict:
                    raise
        if mask is not None:
            planes[index] = planes.get(index, EMPTY).with_masks({self.session.choices.object_id: mask})
        return planes

    def on_plane(self, index: PlaneIndex, strict: bool = False) -> PlanePrompts:
        return self.pending(strict).get(index, EMPTY)

    def next_id(self, labels: Labels | None) -> int:
        """A new object id: above every label of the output and every id the prompts name."""
        used = [self.session.choices.object_id]
        for layer in (self.points, self.boxes):
            if layer is not None and len(layer.data):
                used.append(int(object_tags(layer, len(layer.data)).max()))
        masks = self.masks_layer()
        if masks is not None and masks.data.size:
            used.append(int(np.max(masks.data)))
        first = next_label(labels) if labels is not None else 1
        return max(first, max(used) + 1)

    def clear_plane(self, index: PlaneIndex) -> None:
        """Delete the prompts on one plane (the mask prompt is used up too)."""
        source = self.session.source
        if source is not None:
            remove_on_plane(source, index, self.points, self.boxes, self.masks_layer())
            self.used.emit()

    def clear_line(self, index: PlaneIndex) -> None:
        """Delete the prompts on every plane of the stack through `index`."""
        source = self.session.source
        if source is not None:
            remove_on_line(source, index, self.points, self.boxes, self.masks_layer())
            self.used.emit()


def tag_new_prompts(
    source: ImageSource, index: PlaneIndex, points: Points | None, shapes: Shapes | None,
    obj_id: int,
) -> None:
    """Give the untagged (new-object) clicks and boxes on one plane the object id `obj_id`."""
    for layer, planes in (
        (points, lambda lay: source.plane_indices(np.asarray(lay.data))),
        (shapes, lambda lay: [source.plane_index(np.mean(d, axis=0)) for d in lay.data]),
    ):
        if layer is None or not len(layer.data) or "object" not in layer.features:
            continue
        tags = object_tags(layer, len(layer.data)).copy()
        mine = np.array([p == index for p in planes(layer)]) & (tags == 0)
        if mine.any():
            tags[mine] = obj_id
            layer.features = layer.features.assign(object=tags)
