"""Prompts read from napari layers, grouped by plane and by object (pure numpy, no napari).

Rules on one plane: clicks and boxes tagged with an object id (their `object` feature, > 0)
belong to that object, with at most one box each; untagged rectangles are one new object each
and take the untagged clicks that fall inside them; without untagged rectangles, all untagged
clicks are one new object. A mask prompt joins its object's clicks and box (id 0: the new
object). Coordinates go from napari's (row, col) to the engine's (x, y) through
`napari_sam2.images.coordinates` only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..images.coordinates import napari_box_to_xyxy, napari_to_xy
from ._image_source import ImageSource, PlaneIndex

NEW = 0  # the object tag of prompts that make a new object


class PromptProblem(ValueError):
    """Prompts that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class ObjectPrompt:
    """Clicks, at most one box and a mask for one object on one plane, in (x, y) pixels."""

    points: np.ndarray  # (N, 2) x, y
    labels: np.ndarray  # (N,) 1 positive, 0 negative
    box: np.ndarray | None  # (4,) x0, y0, x1, y1
    obj_id: int | None = None  # None: a new object
    mask: np.ndarray | None = field(default=None, repr=False)  # (H, W) bool

    @property
    def multimask(self) -> bool:
        """A single click is ambiguous: ask for three candidates and keep the best."""
        return self.box is None and self.mask is None and len(self.points) == 1


@dataclass(frozen=True)
class PlanePrompts:
    """Everything prompted on one plane."""

    points: np.ndarray  # (N, 2) x, y
    labels: np.ndarray  # (N,)
    boxes: np.ndarray  # (B, 4)
    point_objects: np.ndarray | None = None  # (N,) object tag of each click (0 = new)
    box_objects: np.ndarray | None = None  # (B,) object tag of each box
    masks: Mapping[int, np.ndarray] = field(default_factory=dict)  # object tag -> mask

    @property
    def empty(self) -> bool:
        return len(self.points) == 0 and len(self.boxes) == 0 and not self.masks

    def with_masks(self, masks: Mapping[int, np.ndarray]) -> PlanePrompts:
        """These prompts with mask prompts added (a later mask of the same object wins)."""
        return replace(self, masks={**self.masks, **masks}) if masks else self

    def _object_tags(self) -> tuple[np.ndarray, np.ndarray]:
        return _tags(self.point_objects, len(self.points)), _tags(self.box_objects, len(self.boxes))

    def objects(self) -> list[ObjectPrompt]:
        """One entry per object (see the module rules); raises PromptProblem when ambiguous."""
        point_tags, box_tags = self._object_tags()
        result = []
        tagged = sorted(
            {int(t) for t in point_tags if t > 0}
            | {int(t) for t in box_tags if t > 0}
            | {int(t) for t in self.masks if t > 0}
        )
        for obj_id in tagged:
            boxes = self.boxes[box_tags == obj_id]
            if len(boxes) > 1:
                raise PromptProblem(
                    f"Object {obj_id} has {len(boxes)} boxes on this plane: keep one box per "
                    "object and plane."
                )
            mine = point_tags == obj_id
            result.append(
                ObjectPrompt(
                    self.points[mine],
                    self.labels[mine],
                    boxes[0] if len(boxes) else None,
                    obj_id,
                    self.masks.get(obj_id),
                )
            )
        return result + self._new_objects(point_tags == NEW, self.boxes[box_tags == NEW])

    def _new_objects(self, untagged: np.ndarray, boxes: np.ndarray) -> list[ObjectPrompt]:
        points, labels, mask = self.points[untagged], self.labels[untagged], self.masks.get(NEW)
        if len(boxes) == 0:
            if len(points) == 0 and mask is None:
                return []
            return [ObjectPrompt(points, labels, None, None, mask)]
        if mask is not None and len(boxes) > 1:
            raise PromptProblem(
                f"A mask prompt for a new object, and {len(boxes)} boxes for new objects on this "
                "plane: the mask would fit any of them. Keep one box, or give the mask to an "
                "object id."
            )
        result = []
        for box in boxes:
            x, y = points[:, 0], points[:, 1]
            inside = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
            result.append(ObjectPrompt(points[inside], labels[inside], box, None, mask))
        return result

    def signature(self) -> bytes:
        """Changes whenever the prompts change (to drop stale previews)."""
        point_tags, box_tags = self._object_tags()
        parts = [a.astype(np.float64).tobytes() for a in (self.points, self.labels, self.boxes)]
        parts += [point_tags.tobytes(), box_tags.tobytes()]
        for tag in sorted(self.masks):
            mask = np.ascontiguousarray(self.masks[tag], dtype=bool)
            parts.append(f"{tag}:".encode() + hashlib.sha1(mask.tobytes()).digest())
        return b"|".join(parts)


EMPTY = PlanePrompts(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros((0, 4)))


def group_prompts(
    source: ImageSource,
    points: np.ndarray,
    positive: np.ndarray,
    rectangles: Sequence[np.ndarray],
    point_objects: np.ndarray | None = None,
    box_objects: np.ndarray | None = None,
) -> dict[PlaneIndex, PlanePrompts]:
    """Prompts per plane.

    points: (N, ndim) napari data coordinates; positive: (N,) bool; rectangles: corner arrays
    (n, ndim) of every rectangle, in the same coordinates as the image layer; point_objects,
    box_objects: the object tag of each click and rectangle (default: all new).
    """
    points = np.asarray(points, dtype=float).reshape(-1, source.ndim)
    positive = np.asarray(positive, dtype=bool).reshape(-1)
    point_objects = _tags(point_objects, len(points))
    box_objects = _tags(box_objects, len(rectangles))
    planes: dict[PlaneIndex, tuple[list, list, list, list, list]] = {}
    for index, coords, sign, tag in zip(
        source.plane_indices(points), points, positive, point_objects, strict=True
    ):
        entry = planes.setdefault(index, ([], [], [], [], []))
        entry[0].append(napari_to_xy(coords))
        entry[1].append(int(sign))
        entry[3].append(int(tag))
    for corners, tag in zip(rectangles, box_objects, strict=True):
        corners = np.asarray(corners, dtype=float)
        if corners.shape[-1] != source.ndim:
            raise PromptProblem(
                f"A rectangle has {corners.shape[-1]} coordinates but the image is "
                f"{source.ndim}-D: "
                "draw boxes in the 'SAM2 boxes' layer made for this image."
            )
        index = source.plane_index(corners.mean(axis=0))
        entry = planes.setdefault(index, ([], [], [], [], []))
        entry[2].append(napari_box_to_xyxy(corners))
        entry[4].append(int(tag))
    return {
        index: PlanePrompts(
            np.asarray(pts, dtype=float).reshape(-1, 2),
            np.asarray(labs, dtype=np.int64),
            np.asarray(boxes, dtype=float).reshape(-1, 4),
            np.asarray(ptags, dtype=np.int64),
            np.asarray(btags, dtype=np.int64),
        )
        for index, (pts, labs, boxes, ptags, btags) in planes.items()
    }


def _tags(tags: np.ndarray | None, n: int) -> np.ndarray:
    if tags is None:
        return np.zeros(n, dtype=np.int64)
    tags = np.asarray(tags, dtype=np.int64).reshape(-1)
    if len(tags) != n:
        raise ValueError(f"{len(tags)} object tags for {n} prompts")
    return tags


def check_inside(prompts: PlanePrompts, plane_hw: tuple[int, int]) -> None:
    """Raise PromptProblem for a click or box outside the plane."""
    h, w = plane_hw
    for x, y in prompts.points:
        if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
            raise PromptProblem(
                f"A click at row {y:.0f}, column {x:.0f} is outside the {h} x {w} image: "
                "move it onto the image or delete it."
            )
    for x0, y0, x1, y1 in prompts.boxes:
        if x1 < -0.5 or y1 < -0.5 or x0 > w - 0.5 or y0 > h - 0.5:
            raise PromptProblem(
                f"A box (rows {y0:.0f}-{y1:.0f}, columns {x0:.0f}-{x1:.0f}) lies outside the "
                f"{h} x {w} image: redraw it on the image."
            )


def assign_new_ids(
    new: Mapping[PlaneIndex, list[ObjectPrompt]], first_id: int, across_planes: bool
) -> list[tuple[PlaneIndex, int, ObjectPrompt]]:
    """Ids for the new (untagged) objects of several planes, from `first_id` on.

    across_planes (propagation): the new prompts of all planes are one object, unless a single
    plane holds them all, where each is its own object. Otherwise (commits) every new object of
    every plane gets its own id, plane by plane.
    """
    planes = sorted(p for p, objs in new.items() if objs)
    if not across_planes or len(planes) == 1:
        ids = iter(range(first_id, first_id + sum(len(new[p]) for p in planes)))
        return [(p, next(ids), obj) for p in planes for obj in new[p]]
    crowded = [p for p in planes if len(new[p]) > 1]
    if crowded:
        raise PromptProblem(
            f"New prompts on {len(planes)} planes, and {len(new[crowded[0]])} new objects on one "
            "of them: prompts on several planes follow one new object. Commit the objects one "
            "by one (then propagate them all), or give the prompts object ids (Object)."
        )
    return [(p, first_id, new[p][0]) for p in planes]
