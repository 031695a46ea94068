"""Coordinates: napari's (row, col) and the engine's (x, y), and image to model pixels.

The engine takes points as (x, y) and boxes as (x0, y0, x1, y1) in image pixels; napari gives
(row, col) = (y, x). `napari_to_xy` / `xy_to_napari` are the one place that converts.
"""

from __future__ import annotations

import numpy as np
import torch

from .checks import ImageInputError


def napari_to_xy(coords_rc: np.ndarray) -> np.ndarray:
    """napari coordinates (..., [z, t,] row, col) -> engine points (..., 2) as (x, y) = (col, row).

    Only the last two axes are used; leading axes (z, t) are dropped. This is the one (row, col)
    to (x, y) conversion in the package.
    """
    coords = np.asarray(coords_rc, dtype=np.float64)
    if coords.ndim == 0 or coords.shape[-1] < 2:
        raise ImageInputError(
            "napari coordinates need at least (row, col) on the last axis; "
            f"got shape {coords.shape}."
        )
    return coords[..., [-1, -2]]


def xy_to_napari(points_xy: np.ndarray) -> np.ndarray:
    """Engine points (..., 2) as (x, y) -> napari (..., 2) as (row, col) = (y, x)."""
    points = np.asarray(points_xy, dtype=np.float64)
    if points.ndim == 0 or points.shape[-1] != 2:
        raise ImageInputError(
            f"points must have (x, y) on the last axis; got shape {points.shape}."
        )
    return points[..., ::-1].copy()


def napari_box_to_xyxy(corners_rc: np.ndarray) -> np.ndarray:
    """napari rectangle corners (..., n, D), (row, col) last -> box (..., 4) as (x0, y0, x1, y1)."""
    xy = napari_to_xy(corners_rc)
    if xy.ndim < 2:
        raise ImageInputError(
            f"a rectangle needs several corners (n, D); got shape {np.shape(corners_rc)}."
        )
    return np.concatenate([xy.min(axis=-2), xy.max(axis=-2)], axis=-1)


def _scale_xy(values: np.ndarray | torch.Tensor, image_hw: tuple[int, int], image_size: int):
    """Scale (..., 2k) interleaved x, y values to model pixels in float32: x / W * S, y / H * S."""
    h, w = image_hw
    if isinstance(values, torch.Tensor):
        out = values.to(torch.float32).clone()
    else:
        out = np.array(values, dtype=np.float32)
    out[..., 0::2] = out[..., 0::2] / w * image_size
    out[..., 1::2] = out[..., 1::2] / h * image_size
    return out


def scale_points(points_xy: np.ndarray | torch.Tensor, image_hw: tuple[int, int], image_size: int):
    """Points (..., 2) in image pixels (x, y) -> model-input pixels (x / W * S, y / H * S), float32.

    Same arithmetic and order as the official predictor (divide, then multiply); returns the input's
    kind (numpy array or tensor).
    """
    if points_xy.shape[-1] != 2:
        raise ImageInputError(
            f"points must have (x, y) on the last axis; got shape {tuple(points_xy.shape)}."
        )
    return _scale_xy(points_xy, image_hw, image_size)


def scale_boxes(boxes_xyxy: np.ndarray | torch.Tensor, image_hw: tuple[int, int], image_size: int):
    """Boxes (..., 4) in image pixels (x0, y0, x1, y1) -> model-input pixels (see scale_points)."""
    if boxes_xyxy.shape[-1] != 4:
        raise ImageInputError(
            "boxes must have (x0, y0, x1, y1) on the last axis; "
            f"got shape {tuple(boxes_xyxy.shape)}."
        )
    return _scale_xy(boxes_xyxy, image_hw, image_size)
