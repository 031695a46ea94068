"""Intensity normalisation: microscopy values of any dtype mapped to [0, 1] per channel.

Limits come from percentiles sampled over a whole image or stack (lazily, deterministically),
or are given (e.g. napari's contrast limits); one `Normalization` serves every slice of a stack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .checks import (
    ChannelChoice,
    ImageInputError,
    channel_axis_of,
    check_dtype,
    check_finite,
    resolve_channels,
)

DEFAULT_MAX_SAMPLES = 2_000_000
_MIN_FRAMES_SAMPLED = 16
_METHODS = ("percentiles", "limits", "uint8")


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
    samples: np.ndarray, low: float, high: float, sparse_objects: bool = True
) -> tuple[list[float], list[float]]:
    """Per-column percentiles; where they coincide (e.g. sparse bright spots), min/max instead.

    With `sparse_objects`, the high limit is at least the bright objects' own level.
    """
    lows, highs = [], []
    for c in range(samples.shape[1]):
        column = samples[:, c]
        lo, hi = np.percentile(column, [low, high])
        if hi <= lo:
            lo, hi = column.min(), column.max()
        elif sparse_objects:
            hi = max(hi, _bright_object_level(column))
        lows.append(float(lo))
        highs.append(float(hi))
    return lows, highs


def _bright_object_level(column: np.ndarray) -> float:
    """The 90th percentile of the pixels above the triangle threshold (the bright tail).

    Where bright objects cover under ~2% of the image (a few nuclei in a large field), the high
    percentile falls in the background: the objects saturate and their blur halo turns bright
    enough to be taken for object. Elsewhere this level is below the high percentile.
    """
    from skimage.filters import threshold_triangle

    bright = column[column > threshold_triangle(column, nbins=256)]
    return float(np.percentile(bright, 90)) if bright.size >= 16 else -math.inf


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
        sparse_objects: bool = True,
    ) -> Normalization:
        """Percentile limits of an image or a whole stack (leading axes = frames), per channel.

        At most ~`max_samples` pixels are read (evenly spaced frames, regular grid; deterministic).
        sparse_objects: where bright objects cover too little of the image for the high
        percentile to reach them, the high limit is their own level instead (the 90th
        percentile of the pixels above the triangle threshold), so that they do not saturate.
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
        check_dtype(dtype)
        shape = tuple(int(s) for s in data.shape)
        if len(shape) < 2:
            raise ImageInputError(f"data must be at least 2-D (H, W); got shape {shape}.")
        axis = channel_axis_of(shape, channels, channel_axis)
        samples, note = _sample_pixels(data, axis, max_samples)
        if axis is not None:
            samples = samples[:, list(resolve_channels(samples.shape[1], channels))]
        elif channels is not None:
            raise ImageInputError("channels= was given but the data has no channel axis.")
        if dtype == np.bool_:
            samples = samples.astype(np.uint8)
        check_finite(samples[:, None, :])
        lows, highs = _percentile_limits(samples, low, high, sparse_objects)
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


def auto_normalization(
    data: Any, channels: ChannelChoice = None, channel_axis: int | None = None
) -> Normalization:
    """The one 'auto' rule, used by every path (widget, API, CLI, batch, tracker, training).

    8-bit RGB(A) pictures with no channel choice are divided by 255, as the official predictor
    does; everything else (8/16-bit gray, float, chosen channels) gets one set of limits from the
    whole image or stack (leading axes = frames), so every slice of a stack is scaled alike.
    """
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    shape = tuple(int(s) for s in data.shape)
    if np.dtype(data.dtype) == np.uint8 and channels is None and len(shape) >= 3:
        axis = channel_axis_of(shape, None, channel_axis)
        if axis is not None and axis % len(shape) == len(shape) - 1 and shape[-1] in (3, 4):
            return Normalization.identity_uint8()
    return Normalization.from_percentiles(data, channels=channels, channel_axis=channel_axis)
