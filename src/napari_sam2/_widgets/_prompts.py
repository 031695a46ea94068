"""The prompt layers: a Points layer of clicks (feature `positive`) and a Shapes layer of boxes."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Points, Shapes

from ._image_source import ImageSource, PlaneIndex
from ._prompt_model import PlanePrompts, group_prompts

POINTS_NAME = "SAM2 points"
BOXES_NAME = "SAM2 boxes"
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
        features={"positive": np.zeros(0, dtype=bool)},
        feature_defaults={"positive": True},
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


def rectangles(shapes: Shapes | None) -> tuple[list[np.ndarray], int]:
    """Corner arrays of the rectangles, and how many other shapes were ignored."""
    if shapes is None:
        return [], 0
    rects = [
        np.asarray(d)
        for d, kind in zip(shapes.data, shapes.shape_type, strict=True)
        if kind == "rectangle"
    ]
    return rects, len(shapes.data) - len(rects)


def read_prompts(
    source: ImageSource, points: Points | None, shapes: Shapes | None
) -> dict[PlaneIndex, PlanePrompts]:
    """Every prompt, grouped by plane."""
    coords = (
        np.asarray(points.data, dtype=float) if points is not None else np.zeros((0, source.ndim))
    )
    flags = positive_flags(points) if points is not None else np.zeros(0, dtype=bool)
    rects, _ = rectangles(shapes)
    return group_prompts(source, coords, flags, rects)


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
    points.feature_defaults = {"positive": now}
    return "next click: " + ("positive" if now else "negative")


def next_click_positive(points: Points | None) -> bool:
    return points is None or bool(points.feature_defaults["positive"].iloc[0])


def remove_on_plane(
    source: ImageSource, index: PlaneIndex, points: Points | None, shapes: Shapes | None
) -> None:
    """Delete the prompts that lie on one plane (e.g. after they were committed)."""
    if points is not None and len(points.data):
        drop = {i for i, p in enumerate(source.plane_indices(points.data)) if p == index}
        if drop:
            points.selected_data = drop
            points.remove_selected()
    if shapes is not None and len(shapes.data):
        drop = {
            i for i, d in enumerate(shapes.data) if source.plane_index(np.mean(d, axis=0)) == index
        }
        if drop:
            shapes.selected_data = drop
            shapes.remove_selected()


def remove_on_line(
    source: ImageSource, index: PlaneIndex, points: Points | None, shapes: Shapes | None
) -> None:
    """Delete the prompts on every plane of the stack through `index`."""
    if points is not None and len(points.data):
        drop = {
            i for i, p in enumerate(source.plane_indices(points.data)) if source.same_line(p, index)
        }
        if drop:
            points.selected_data = drop
            points.remove_selected()
    if shapes is not None and len(shapes.data):
        drop = {
            i
            for i, d in enumerate(shapes.data)
            if source.same_line(source.plane_index(np.mean(d, axis=0)), index)
        }
        if drop:
            shapes.selected_data = drop
            shapes.remove_selected()
