"""The widget's objects and prompts as a prompts file (`napari_sam2.prompt_file.PromptSession`) and
back (no Qt here).

A file holds the objects of one stack: the one through the current plane. Frames count along
the stack axis; for 4-D images the other axis is fixed at its current position (`position`).
Intensities are saved as the exact limits the widget used, so that a replay sees the same
model input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..engine.mask_tools import mask_to_rle_pytorch
from ..prompt_file import ObjectPrompts, Prompt, PromptSession
from ._image_source import ImageSource, PlaneIndex
from ._plane_prompts import ObjectPrompt, PromptProblem

Objects = dict[int, dict[PlaneIndex, ObjectPrompt]]  # object id -> plane -> its prompts


def line_axis(source: ImageSource) -> int | None:
    """The axis that frames count along: the stack axis, else the last plane-indexing axis."""
    if source.stack_dim is not None:
        return source.stack_dim
    return source.leading[-1] if source.leading else None


def on_line(source: ImageSource, a: PlaneIndex, b: PlaneIndex) -> bool:
    """True when two planes differ at most along the line axis."""
    axis = line_axis(source)
    return all(x == y for d, x, y in zip(source.leading, a, b, strict=True) if d != axis)


def frame_of(source: ImageSource, plane: PlaneIndex) -> int:
    axis = line_axis(source)
    return 0 if axis is None else plane[source.leading.index(axis)]


def plane_at(source: ImageSource, index: PlaneIndex, frame: int, position: dict) -> PlaneIndex:
    """The plane of `frame` on the line through `index`, moved to the file's `position` of the
    other axes when it names them."""
    axis = line_axis(source)
    shape = source.dims_shape
    plane = []
    for d, value in zip(source.leading, index, strict=True):
        if d == axis:
            value = frame
        elif str(d) in position:
            value = int(position[str(d)])
        if not 0 <= value < shape[d]:
            raise PromptProblem(
                f"The prompts file asks for position {value} of axis {d}, but the image has "
                f"{shape[d]} there: is it the image the file was made for?"
            )
        plane.append(value)
    return tuple(plane)


# ------------------------------------------------------------------ widget -> file


@dataclass
class ImageInfo:
    """What the file says about the image besides its axes."""

    path: str | None  # the layer's file, if it came from one
    layer: str
    shape: tuple[int, ...]


def to_prompt(obj: ObjectPrompt, frame: int) -> Prompt:
    prompt = Prompt(frame=int(frame))
    if len(obj.points):
        prompt.points = [[float(x), float(y)] for x, y in obj.points]
        prompt.labels = [int(v) for v in obj.labels]
    if obj.box is not None:
        prompt.box = [float(v) for v in obj.box]
    if obj.mask is not None:
        mask = torch.from_numpy(np.asarray(obj.mask, dtype=bool))[None]
        prompt.mask = mask_to_rle_pytorch(mask)[0]
    return prompt


def build_session(
    source: ImageSource,
    index: PlaneIndex,
    objects: Objects,
    image: ImageInfo,
    model: dict[str, Any],
    mode: str,
    direction: str,
    folder: Path,
) -> tuple[PromptSession, int]:
    """The prompts file of the objects on the stack through `index`, and how many objects on
    other stacks were left out. `folder` is where the file goes (the image path is relative)."""
    axis = line_axis(source)
    session = PromptSession()
    left_out = 0
    for obj_id in sorted(objects):
        planes = sorted((p, o) for p, o in objects[obj_id].items() if on_line(source, p, index))
        if not planes:
            left_out += 1
            continue
        session.objects.append(
            ObjectPrompts(obj_id, [to_prompt(obj, frame_of(source, p)) for p, obj in planes])
        )
    norm = source.normalization()
    session.image = {
        "path": _relative(image.path, folder),
        "layer": image.layer,
        "shape": list(image.shape),
        "stack_axis": axis,
        "channel_axis": source.channel_dim,
        "channels": list(source.channels) if source.channels is not None else None,
    }
    position = {str(d): v for d, v in zip(source.leading, index, strict=True) if d != axis}
    if position:
        session.image["position"] = position
    session.model = dict(model)
    session.normalization = {
        "method": "limits",
        "low": list(norm.low),
        "high": list(norm.high),
        **({"gamma": norm.gamma} if norm.gamma != 1.0 else {}),
        "from": source.normalization_mode,
    }
    session.mode = mode
    session.propagation = {"direction": direction}
    return session, left_out


def _relative(path: str | None, folder: Path) -> str | None:
    if not path:
        return None
    try:
        return os.path.relpath(Path(path).resolve(), folder.resolve())
    except ValueError:  # another drive (Windows): keep it absolute
        return str(Path(path).resolve())


# ------------------------------------------------------------------ file -> widget


@dataclass
class LoadedPrompts:
    """A prompts file's objects laid out for the widget's layers, in napari data coordinates."""

    points: np.ndarray  # (N, ndim)
    positive: np.ndarray  # (N,) bool
    point_objects: np.ndarray  # (N,) object ids
    boxes: list[np.ndarray]  # rectangles' corners (4, ndim)
    box_objects: np.ndarray  # (B,)
    masks: list[tuple[PlaneIndex, int, np.ndarray]]  # (plane, object id, mask)
    ids: list[int]


def layout_session(
    session: PromptSession, source: ImageSource, index: PlaneIndex, channel_position: int = 0
) -> LoadedPrompts:
    """Where each prompt of `session` goes in the prompt layers of `source`'s image."""
    h, w = source.plane_shape
    position = session.image.get("position") or {}
    if line_axis(source) is None:
        if any(p.frame != 0 for o in session.objects for p in o.prompts):
            raise PromptProblem(
                "The prompts file has prompts on several frames, but the image is a single "
                "plane: choose its stack axis under 'Image', or open the stack the file was made "
                "for."
            )
    points, positive, point_ids, boxes, box_ids, masks = [], [], [], [], [], []
    for obj in session.objects:
        for prompt in obj.prompts:
            plane = plane_at(source, index, int(prompt.frame), position)
            base = _base(source, plane, channel_position)
            if prompt.points:
                labels = prompt.labels or [1] * len(prompt.points)
                for (x, y), label in zip(prompt.points, labels, strict=True):
                    points.append(_at(base, y, x))
                    positive.append(bool(label))
                    point_ids.append(obj.id)
            if prompt.box is not None:
                x0, y0, x1, y1 = (float(v) for v in prompt.box)
                corners = [(y0, x0), (y0, x1), (y1, x1), (y1, x0)]
                boxes.append(np.array([_at(base, y, x) for y, x in corners]))
                box_ids.append(obj.id)
            if prompt.mask is not None:
                masks.append((plane, obj.id, session.mask_array(prompt, (h, w))))
    return LoadedPrompts(
        np.asarray(points, dtype=float).reshape(-1, source.ndim),
        np.asarray(positive, dtype=bool),
        np.asarray(point_ids, dtype=np.int64),
        boxes,
        np.asarray(box_ids, dtype=np.int64),
        masks,
        [o.id for o in session.objects],
    )


def _base(source: ImageSource, plane: PlaneIndex, channel_position: int) -> np.ndarray:
    base = np.zeros(source.ndim)
    for d, value in zip(source.leading, plane, strict=True):
        base[d] = value
    if source.channel_dim is not None:
        base[source.channel_dim] = channel_position
    return base


def _at(base: np.ndarray, row: float, col: float) -> np.ndarray:
    coords = base.copy()
    coords[-2], coords[-1] = row, col
    return coords
