"""Prompts read from napari layers, grouped by plane and by object (pure numpy, no napari).

Rules: on one plane, every rectangle is one object and takes the clicks that fall inside it;
without rectangles, all clicks on the plane are one object. Coordinates go from napari's
(row, col) to the engine's (x, y) through `napari_sam2.image_input` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..image_input import napari_box_to_xyxy, napari_to_xy
from ._image_source import ImageSource, PlaneIndex


class PromptProblem(ValueError):
    """Prompts that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class ObjectPrompt:
    """Clicks and at most one box for one object on one plane, in (x, y) pixels."""

    points: np.ndarray  # (N, 2) x, y
    labels: np.ndarray  # (N,) 1 positive, 0 negative
    box: np.ndarray | None  # (4,) x0, y0, x1, y1

    @property
    def multimask(self) -> bool:
        """A single click is ambiguous: ask for three candidates and keep the best."""
        return self.box is None and len(self.points) == 1


@dataclass(frozen=True)
class PlanePrompts:
    """Everything prompted on one plane."""

    points: np.ndarray  # (N, 2) x, y
    labels: np.ndarray  # (N,)
    boxes: np.ndarray  # (B, 4)

    @property
    def empty(self) -> bool:
        return len(self.points) == 0 and len(self.boxes) == 0

    def objects(self) -> list[ObjectPrompt]:
        """One entry per object (see the module rules)."""
        if len(self.boxes) == 0:
            return [ObjectPrompt(self.points, self.labels, None)] if len(self.points) else []
        result = []
        for box in self.boxes:
            x, y = self.points[:, 0], self.points[:, 1]
            inside = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
            result.append(ObjectPrompt(self.points[inside], self.labels[inside], box))
        return result

    def signature(self) -> bytes:
        """Changes whenever the prompts change (to drop stale previews)."""
        return b"|".join(
            a.astype(np.float64).tobytes() for a in (self.points, self.labels, self.boxes)
        )


EMPTY = PlanePrompts(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros((0, 4)))


def group_prompts(
    source: ImageSource,
    points: np.ndarray,
    positive: np.ndarray,
    rectangles: Sequence[np.ndarray],
) -> dict[PlaneIndex, PlanePrompts]:
    """Prompts per plane.

    points: (N, ndim) napari data coordinates; positive: (N,) bool; rectangles: corner arrays
    (n, ndim) of every rectangle, in the same coordinates as the image layer.
    """
    points = np.asarray(points, dtype=float).reshape(-1, source.ndim)
    positive = np.asarray(positive, dtype=bool).reshape(-1)
    planes: dict[PlaneIndex, tuple[list, list, list]] = {}
    for index, coords, sign in zip(source.plane_indices(points), points, positive, strict=True):
        entry = planes.setdefault(index, ([], [], []))
        entry[0].append(napari_to_xy(coords))
        entry[1].append(int(sign))
    for corners in rectangles:
        corners = np.asarray(corners, dtype=float)
        if corners.shape[-1] != source.ndim:
            raise PromptProblem(
                f"A rectangle has {corners.shape[-1]} coordinates but the image is "
                f"{source.ndim}-D: "
                "draw boxes in the 'SAM2 boxes' layer made for this image."
            )
        index = source.plane_index(corners.mean(axis=0))
        planes.setdefault(index, ([], [], []))[2].append(napari_box_to_xyxy(corners))
    return {
        index: PlanePrompts(
            np.asarray(pts, dtype=float).reshape(-1, 2),
            np.asarray(labs, dtype=np.int64),
            np.asarray(boxes, dtype=float).reshape(-1, 4),
        )
        for index, (pts, labs, boxes) in planes.items()
    }


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
