"""Turn microscopy images (any bit depth; gray, RGB(A) or many channels) into SAM 2 input.

Pipeline: choose channels -> scale intensities to [0, 1] with a `Normalization` -> map to RGB ->
resize to S x S (aspect ratio not kept, as SAM 2 does) -> ImageNet mean/std.

Coordinates: the engine takes points as (x, y) and boxes as (x0, y0, x1, y1) in image pixels;
napari gives (row, col) = (y, x). `napari_to_xy` / `xy_to_napari` are the one place that converts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

MIN_SIDE = 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MAX_SAMPLES = 2_000_000
_MIN_FRAMES_SAMPLED = 16
_METHODS = ("percentiles", "limits", "uint8")

ChannelChoice = int | Sequence[int] | None


class ImageInputError(ValueError):
    """An image, or an option describing it, that cannot become model input; says the fix."""


# --------------------------------------------------------------------------------------------
# Checks and channel layout
# --------------------------------------------------------------------------------------------


def _check_dtype(dtype: np.dtype) -> None:
    """Reject dtypes that have no meaningful intensity (complex, text, objects)."""
    if np.issubdtype(dtype, np.complexfloating):
        raise ImageInputError(
            f"image has complex dtype {dtype}; pass a real image, e.g. np.abs(image) or image.real."
        )
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise ImageInputError(
            f"image has dtype {dtype}, which is not numeric; "
            "convert it to an integer or float array."
        )


def _channel_axis_of(
    shape: tuple[int, ...], channels: ChannelChoice, channel_axis: int | None
) -> int | None:
    """The (non-negative) axis holding channels, or None for single-channel data.

    Without `channel_axis`, the last axis holds channels when `channels=` is given or when it is
    shorter than MIN_SIDE (too short to be an image axis); a 2-D array never has channels.
    """
    ndim = len(shape)
    if channel_axis is not None:
        if ndim < 3:
            raise ImageInputError(
                f"channel_axis={channel_axis} was given but the image is {ndim}-D {shape}; "
                "drop channel_axis for a single-channel image."
            )
        if not -ndim <= channel_axis < ndim:
            raise ImageInputError(
                f"channel_axis={channel_axis} is out of range for an array of shape {shape}."
            )
        return channel_axis % ndim
    if ndim >= 3 and (channels is not None or shape[-1] < MIN_SIDE):
        return ndim - 1
    return None


def _resolve_channels(n_channels: int, channels: ChannelChoice) -> tuple[int, ...]:
    """Input channel indices mapped to R, G, B (1-3 of them); validates the user's `channels=`."""
    if channels is None:
        if n_channels <= 3:
            return tuple(range(n_channels))
        if n_channels == 4:
            return (0, 1, 2)  # RGBA: alpha dropped
        raise ImageInputError(
            f"image has {n_channels} channels; choose up to three with channels=, e.g. "
            "channels=(0,) for one channel shown as gray or channels=(2, 0, 1) for R, G, B."
        )
    chosen = (channels,) if isinstance(channels, (int, np.integer)) else tuple(channels)
    if not 1 <= len(chosen) <= 3:
        raise ImageInputError(
            f"channels={channels!r} selects {len(chosen)} channels; give 1, 2 or 3 channel indices."
        )
    resolved = []
    for c in chosen:
        if not isinstance(c, (int, np.integer)) or isinstance(c, bool):
            raise ImageInputError(f"channels={channels!r} must contain integer channel indices.")
        if not -n_channels <= c < n_channels:
            raise ImageInputError(
                f"channels={channels!r} asks for channel {c} but the image has {n_channels} "
                f"channels (0..{n_channels - 1})."
            )
        resolved.append(int(c) % n_channels)
    return tuple(resolved)


def _count_bad_pixels(x: np.ndarray) -> None:
    """Raise if a float image (H, W, k) holds NaN or infinite values, counting the pixels."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    n_nan = int(np.isnan(x).any(axis=-1).sum())
    if n_nan:
        raise ImageInputError(
            f"image contains NaN at {n_nan} pixels; replace them first, e.g. np.nan_to_num(image)."
        )
    n_inf = int(np.isinf(x).any(axis=-1).sum())
    if n_inf:
        raise ImageInputError(
            f"image contains infinite values at {n_inf} pixels; replace them first, "
            "e.g. np.nan_to_num(image, posinf=..., neginf=...)."
        )


# --------------------------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------------------------


def _as_limits(value: Any, name: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel())
    if not values:
        raise ImageInputError(f"Normalization {name} is empty; give a number or one per channel.")
    if not all(math.isfinite(v) for v in values):
        raise ImageInputError(f"Normalization {name}={values} must be finite numbers.")
    return values


def _sample_pixels(data: Any, channel_axis: int | None, max_samples: int) -> tuple[np.ndarray, str]:
    """At most ~`max_samples` pixels as (n, C), read from evenly spaced frames on a regular grid.

    Only the sampled slices are converted with np.asarray, so dask/zarr-like arrays stay lazy.
    """
    shape = tuple(int(s) for s in data.shape)
    axes = [a for a in range(len(shape)) if a != channel_axis]
    if len(axes) < 2:
        raise ImageInputError(f"data of shape {shape} has fewer than two spatial axes.")
    row_axis, col_axis = axes[-2:]
    frame_axes = axes[:-2]
    frame_shape = tuple(shape[a] for a in frame_axes)
    n_frames = math.prod(frame_shape)
    plane = shape[row_axis] * shape[col_axis]
    if n_frames == 0 or plane == 0:
        raise ImageInputError(f"image is empty (shape {shape}).")

    n_take = min(n_frames, max(1, max_samples // plane))
    if n_take < _MIN_FRAMES_SAMPLED:  # large planes: more frames, sparser grid in each
        n_take = min(n_frames, _MIN_FRAMES_SAMPLED)
    stride = max(1, math.ceil(math.sqrt(n_take * plane / max_samples)))
    offset = min(stride // 2, shape[row_axis] - 1, shape[col_axis] - 1)  # centred grid, never empty
    frames = np.unique(np.linspace(0, n_frames - 1, n_take).round().astype(np.int64))

    blocks = []
    for flat in frames:
        key: list[Any] = [slice(None)] * len(shape)
        for axis, index in zip(frame_axes, np.unravel_index(int(flat), frame_shape)):
            key[axis] = int(index)
        key[row_axis] = slice(offset, None, stride)
        key[col_axis] = slice(offset, None, stride)
        block = np.asarray(data[tuple(key)])
        if channel_axis is not None:
            remaining = [a for a in range(len(shape)) if not isinstance(key[a], int)]
            block = np.moveaxis(block, remaining.index(channel_axis), -1)
            blocks.append(block.reshape(-1, block.shape[-1]))
        else:
            blocks.append(block.reshape(-1, 1))
    samples = np.concatenate(blocks, axis=0)
    note = (
        f"{samples.shape[0]} pixels from {len(frames)} of {n_frames} frame(s), grid step {stride}"
    )
    return samples, note


def _percentile_limits(
    samples: np.ndarray, low: float, high: float
) -> tuple[list[float], list[float]]:
    """Per-column percentiles; where they coincide (e.g. sparse bright spots), min/max instead."""
    lows, highs = [], []
    for c in range(samples.shape[1]):
        column = samples[:, c]
        lo, hi = np.percentile(column, [low, high])
        if hi <= lo:
            lo, hi = column.min(), column.max()
        lows.append(float(lo))
        highs.append(float(hi))
    return lows, highs


@dataclass(frozen=True)
class Normalization:
    """Intensities mapped to 0 (`low`) and 1 (`high`), per output channel or one value for all.

    Reuse one object for every slice of a stack so the same object gets the same input values.
    Values are clipped to [0, 1]; a channel with low == high becomes a step (x > low -> 1).
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    method: str = "limits"
    detail: str = ""

    def __post_init__(self) -> None:
        low, high = _as_limits(self.low, "low"), _as_limits(self.high, "high")
        if len(low) != len(high):
            if len(low) == 1:
                low = low * len(high)
            elif len(high) == 1:
                high = high * len(low)
            else:
                raise ImageInputError(
                    f"Normalization has {len(low)} low and {len(high)} high limits; give the same "
                    "number (one per channel) or a single value."
                )
        for c, (lo, hi) in enumerate(zip(low, high)):
            if hi < lo:
                raise ImageInputError(
                    f"Normalization channel {c}: high={hi} is below low={lo}; swap them."
                )
        if self.method not in _METHODS:
            raise ImageInputError(f"Normalization method {self.method!r} is not one of {_METHODS}.")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def n_channels(self) -> int:
        return len(self.low)

    @classmethod
    def from_limits(
        cls, low: float | Sequence[float], high: float | Sequence[float]
    ) -> Normalization:
        """Fixed limits, e.g. napari's: `Normalization.from_limits(*layer.contrast_limits)`."""
        return cls(low=low, high=high, method="limits", detail="given limits")

    @classmethod
    def identity_uint8(cls) -> Normalization:
        """8-bit values divided by 255, exactly as the official predictor (uint8 images only)."""
        return cls(low=0.0, high=255.0, method="uint8", detail="uint8 / 255")

    @classmethod
    def from_percentiles(
        cls,
        data: Any,
        low: float = 1.0,
        high: float = 99.8,
        *,
        channels: ChannelChoice = None,
        channel_axis: int | None = None,
        max_samples: int = DEFAULT_MAX_SAMPLES,
    ) -> Normalization:
        """Percentile limits of an image or a whole stack (leading axes = frames), per channel.

        At most ~`max_samples` pixels are read (evenly spaced frames, regular grid; deterministic).
        """
        if not 0.0 <= low < high <= 100.0:
            raise ImageInputError(
                f"percentiles low={low}, high={high} must satisfy 0 <= low < high <= 100."
            )
        if max_samples < 1:
            raise ImageInputError(f"max_samples={max_samples} must be at least 1.")
        if not hasattr(data, "shape") or not hasattr(data, "dtype"):
            data = np.asarray(data)
        dtype = np.dtype(data.dtype)
        _check_dtype(dtype)
        shape = tuple(int(s) for s in data.shape)
        if len(shape) < 2:
            raise ImageInputError(f"data must be at least 2-D (H, W); got shape {shape}.")
        axis = _channel_axis_of(shape, channels, channel_axis)
        samples, note = _sample_pixels(data, axis, max_samples)
        if axis is not None:
            samples = samples[:, list(_resolve_channels(samples.shape[1], channels))]
        elif channels is not None:
            raise ImageInputError("channels= was given but the data has no channel axis.")
        if dtype == np.bool_:
            samples = samples.astype(np.uint8)
        _count_bad_pixels(samples[:, None, :])
        lows, highs = _percentile_limits(samples, low, high)
        return cls(low=lows, high=highs, method="percentiles", detail=f"p{low}-p{high} of {note}")

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Scale a channels-last image (H, W, k) to float32 in [0, 1] with these limits."""
        k = image.shape[-1]
        if self.n_channels not in (1, k):
            raise ImageInputError(
                f"Normalization has limits for {self.n_channels} channels but the image has {k} "
                "after channel selection; compute it with the same channels= choice."
            )
        wide = image.dtype.itemsize > 2 and image.dtype != np.float32
        work = np.float64 if wide else np.float32
        lows = np.broadcast_to(np.asarray(self.low, dtype=work), (k,))
        highs = np.broadcast_to(np.asarray(self.high, dtype=work), (k,))
        out = np.empty(image.shape, dtype=np.float32)
        for c in range(k):
            channel = image[..., c].astype(work, copy=False)
            span = highs[c] - lows[c]
            if span > 0:
                out[..., c] = np.clip((channel - lows[c]) / span, 0.0, 1.0)
            else:
                out[..., c] = channel > lows[c]
        return out


# --------------------------------------------------------------------------------------------
# Image -> [0, 1] RGB -> model tensor
# --------------------------------------------------------------------------------------------


def _layout_image(
    image: Any, channels: ChannelChoice, channel_axis: int | None
) -> tuple[np.ndarray, int]:
    """Validated (H, W, k) array of the chosen channels, and the channel count before choosing."""
    arr = np.asarray(image)
    _check_dtype(arr.dtype)
    if arr.size == 0:
        raise ImageInputError(f"image is empty (shape {arr.shape}).")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    axis = _channel_axis_of(arr.shape, channels, channel_axis)
    spatial_ndim = arr.ndim - (axis is not None)
    if spatial_ndim < 2:
        raise ImageInputError(
            "image must be 2-D (H, W) or channels-last (H, W, C); "
            f"got {arr.ndim}-D shape {arr.shape}."
        )
    if spatial_ndim > 2:
        raise ImageInputError(
            f"a {arr.ndim}-D array {arr.shape} is a stack (e.g. (Z, Y, X)): segment one slice "
            "(image[z]) or use the stack tracker. If an axis holds channels, pass channel_axis= "
            "(e.g. channel_axis=0 for (C, Y, X)) or channels= for channels-last data."
        )
    if axis is None:
        if channels is not None:
            raise ImageInputError(
                f"channels={channels!r} was given but the image {arr.shape} has no channel axis."
            )
        arr = arr[..., None]
    else:
        arr = np.moveaxis(arr, axis, -1)
    h, w, n_in = arr.shape
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ImageInputError(
            f"image is {h}x{w} pixels; SAM 2 needs at least {MIN_SIDE}x{MIN_SIDE}: "
            "pad it (np.pad) or upsample it first."
        )
    chosen = _resolve_channels(n_in, channels)
    if chosen != tuple(range(n_in)):
        arr = arr[..., list(chosen)]
    _count_bad_pixels(arr)
    return arr, n_in


def _to_rgb(x01: np.ndarray) -> np.ndarray:
    """(H, W, k) -> (H, W, 3): one channel is gray, two are R and G with B zero."""
    k = x01.shape[-1]
    if k == 3:
        return np.ascontiguousarray(x01)
    if k == 1:
        return np.repeat(x01, 3, axis=-1)
    out = np.zeros(x01.shape[:2] + (3,), dtype=np.float32)
    out[..., :2] = x01
    return out


def prepare_image(
    image: Any,
    normalization: str | Normalization | None = "auto",
    channels: ChannelChoice = None,
    channel_axis: int | None = None,
) -> np.ndarray:
    """An image of any supported kind as float32 RGB (H, W, 3) in [0, 1].

    Layouts: (H, W) gray; (H, W, 3) RGB; (H, W, 4) RGBA (alpha dropped); (H, W, C) with
    `channels=` choosing up to three channels for R, G, B (one channel -> gray, two -> R and G with
    B = 0); `channel_axis=` moves a channel axis to the end first. Without it, a last axis shorter
    than 32 (or any last axis when `channels=` is given) holds channels. Booleans count as 0/1.

    normalization:
      "auto": uint8 RGB/RGBA pictures (no `channels=`) are divided by 255 as the official
          predictor does; everything else (16-bit, float, gray, chosen channels) is stretched
          between its 1st and 99.8th percentiles per channel.
      Normalization: these limits (e.g. computed once for a whole stack, or contrast limits).
      None: exactly the official predictor's input; only for 8-bit RGB images.
    """
    x, n_in = _layout_image(image, channels, channel_axis)
    if normalization is None:
        if x.dtype != np.uint8 or x.shape[-1] != 3:
            raise ImageInputError(
                f"normalization=None feeds an 8-bit RGB image exactly as the official predictor; "
                f"this image is {x.dtype} with {x.shape[-1]} channel(s). Use normalization='auto'."
            )
        return x.astype(np.float32) / np.float32(255.0)
    if isinstance(normalization, str):
        if normalization != "auto":
            raise ImageInputError(
                f"normalization={normalization!r} is not understood; "
                "use 'auto', None or a Normalization."
            )
        if x.dtype == np.uint8 and channels is None and n_in in (3, 4):
            normalization = Normalization.identity_uint8()
        else:
            normalization = Normalization.from_percentiles(x)
    if not isinstance(normalization, Normalization):
        raise ImageInputError(
            "normalization must be 'auto', None or a Normalization, "
            f"not {type(normalization).__name__}."
        )
    if normalization.method == "uint8" and x.dtype != np.uint8:
        raise ImageInputError(
            f"Normalization.identity_uint8() is for uint8 images but this image is {x.dtype}; "
            "use Normalization.from_percentiles(...) or from_limits(...)."
        )
    return _to_rgb(normalization.apply(x))


def to_model_input(
    rgb01: np.ndarray,
    image_size: int,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(H, W, 3) [0, 1] RGB -> (1, 3, S, S): antialiased bilinear resize, ImageNet norm.

    Runs in float32 on the CPU, as in the official predictor, then moves to `device` and `dtype`.
    """
    rgb01 = np.asarray(rgb01)
    if rgb01.ndim != 3 or rgb01.shape[-1] != 3:
        raise ImageInputError(
            "to_model_input expects an (H, W, 3) RGB array from prepare_image; "
            f"got shape {rgb01.shape}."
        )
    if image_size < 1:
        raise ImageInputError(f"image_size={image_size} must be a positive number of pixels.")
    x = torch.from_numpy(np.ascontiguousarray(rgb01, dtype=np.float32))
    x = x.permute(2, 0, 1).contiguous().unsqueeze(0)
    if tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(
            x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.to(device=device, dtype=dtype)


# --------------------------------------------------------------------------------------------
# Coordinates
# --------------------------------------------------------------------------------------------


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
