"""Intensity normalisation: microscopy values of any dtype mapped to [0, 1] per channel.

Limits come from percentiles sampled over a whole image or stack (lazily, deterministically),
or are given (e.g. napari's contrast limits); one `Normalization` serves every slice of a stack.
"""

from __future__ import annotations

import dataclasses
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
    samples: np.ndarray, low: float, high: float, object_level: bool = True
) -> tuple[list[float], list[float]]:
    """Per-column limits: the low percentile, and the high percentile or, with `object_level`,
    the one that maps the objects' typical value to 0.5; where they coincide (sparse bright
    spots), min/max instead."""
    lows, highs = [], []
    for c in range(samples.shape[1]):
        column = samples[:, c]
        lo, hi = _percentiles(column, [low, high])
        if object_level:
            hi = _object_level(column, float(lo), default=float(hi))
        if hi <= lo:
            lo, hi = column.min(), column.max()
        lows.append(float(lo))
        highs.append(float(hi))
    return lows, highs


def _object_level(column: np.ndarray, low: float, default: float) -> float:
    """The high limit that maps the objects' median value to 0.5: low + 2 (median - low), and at
    least the objects' 90th percentile, so that at most a tenth of them saturates.

    Objects are the pixels above the lower of two three-class Otsu thresholds (background,
    objects, a few much brighter objects), or above the two-class Otsu threshold where that
    split fell inside the background (more than half the image above it: sparse objects).
    A high percentile of the whole image instead depends on how much of it the objects cover:
    with a few nuclei in a large field it falls in the background (every nucleus saturates and
    its blur halo looks like object), and a few saturated mitotic nuclei push it so high that
    the others turn dim. DSB 2018 fluorescence (180 training images): median nucleus 0.53 of
    the range either way, but 0.47 instead of 0.33 in the dimmest tenth of images. The 90th
    percentile bound is for z-stacks: out-of-focus glow counts as object and pulls the median
    down (BBBC050's 16-cell stack: a limit of 289 saturated 23% of the objects and merged
    touching nuclei; with the bound, 422).
    """
    threshold = _threshold(column, "multiotsu")
    if np.count_nonzero(column > threshold) > column.size // 2:
        threshold = _threshold(column, "otsu")
    objects = column[column > threshold]
    if objects.size < 16:
        return default
    median, top = (float(v) for v in _percentiles(objects, [50, 90]))
    return max(low + 2.0 * (median - low), top) if median > low else default


_MAX_INTEGER_BINS = 1 << 16  # integer ranges up to this get one histogram bin per value


def _threshold(column: np.ndarray, method: str = "otsu") -> float:
    """scikit-image's Otsu, three-class Otsu (its lower threshold) or triangle threshold, at
    bounded cost for every dtype and value range.

    skimage gives integer data one bin per value (4 GiB of bins for a uint32 image holding 0 and
    2^32-1) and float data near +/-1e308 overflows its bin width and Otsu's sums; those get 256 bins
    (of the values scaled by a power of two where they are huge). Narrow integer ranges keep skimage's
    one-bin-per-value result, except for three-class Otsu, whose cost grows with the square of
    the bins."""
    from skimage.filters import threshold_multiotsu, threshold_otsu, threshold_triangle

    def threshold(values: np.ndarray) -> float:
        if values.min() == values.max():
            return float(values.min())
        if method == "otsu":
            return float(threshold_otsu(values, nbins=256))
        if method == "multiotsu":
            try:
                return float(threshold_multiotsu(values, classes=3, nbins=256)[0])
            except ValueError:  # two distinct values: no three classes
                return float(threshold_otsu(values, nbins=256))
        return float(threshold_triangle(values, nbins=256))

    if column.dtype.kind in "iub":
        if method != "multiotsu" and int(column.max()) - int(column.min()) < _MAX_INTEGER_BINS:
            return threshold(column)
        column = column.astype(np.float64)
    big = max(abs(float(column.max())), abs(float(column.min())))
    if big > 1e100:  # near the float64 limits the bin width and Otsu's sums overflow: scale
        exponent = math.frexp(big)[1]  # by a power of two, which keeps every value's order
        return math.ldexp(threshold(np.ldexp(column, -exponent)), exponent)
    return threshold(column)


def _percentiles(column: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """np.percentile, also where interpolating between values near +/-1e308 would overflow."""
    values = np.percentile(column, q)
    if not np.isfinite(values).all():
        values = 2.0 * np.percentile(column * 0.5, q)
    return values


@dataclass(frozen=True)
class Normalization:
    """Intensities mapped to 0 (`low`) and 1 (`high`), per output channel or one value for all.

    Reuse one object for every slice of a stack so the same object gets the same input values.
    Values are clipped to [0, 1]; a channel with low == high becomes a step (x > low -> 1).
    gamma: the scaled values are raised to this power, as napari's layer gamma shows them
    (below 1 brightens dim objects without saturating bright ones).
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    method: str = "limits"
    detail: str = ""
    gamma: float = 1.0

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
        gamma = float(self.gamma)
        if not (math.isfinite(gamma) and gamma > 0):
            raise ImageInputError(f"Normalization gamma={self.gamma} must be a positive number (1: linear).")
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def n_channels(self) -> int:
        return len(self.low)

    @classmethod
    def from_limits(
        cls, low: float | Sequence[float], high: float | Sequence[float], gamma: float = 1.0
    ) -> Normalization:
        """Fixed limits, e.g. napari's: `Normalization.from_limits(*layer.contrast_limits, layer.gamma)`."""
        return cls(low=low, high=high, method="limits", detail="given limits", gamma=gamma)

    def with_gamma(self, gamma: float) -> Normalization:
        """The same limits with another gamma."""
        return dataclasses.replace(self, gamma=gamma)

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
        object_level: bool = False,
    ) -> Normalization:
        """Percentile limits of an image or a whole stack (leading axes = frames), per channel.

        At most ~`max_samples` pixels are read (evenly spaced frames, regular grid; deterministic).
        object_level: the high limit maps the objects' median value to 0.5 (see `_object_level`)
        instead of being the `high` percentile, so that neither sparse objects nor a few
        saturated ones set it (what `auto_normalization` uses).
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
        lows, highs = _percentile_limits(samples, low, high, object_level)
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
        if self.gamma != 1.0:
            np.power(out, np.float32(self.gamma), out=out)
        return out


def auto_normalization(
    data: Any, channels: ChannelChoice = None, channel_axis: int | None = None
) -> Normalization:
    """The one 'auto' rule, used by every path (widget, API, CLI, batch, tracker, training).

    8-bit RGB(A) pictures with no channel choice are divided by 255, as the official predictor
    does; everything else (8/16-bit gray, float, chosen channels) is mapped from its 1st
    percentile (0) to twice the objects' median value above it (1), so that the typical object
    sits at 0.5 (`_object_level`), with one set of limits from the whole image or stack (leading
    axes = frames), so every slice of a stack is scaled alike.
    """
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    shape = tuple(int(s) for s in data.shape)
    if np.dtype(data.dtype) == np.bool_:
        return Normalization.from_limits(0.0, 1.0)  # a mask is 0 / 1 already
    if np.dtype(data.dtype) == np.uint8 and channels is None and len(shape) >= 3:
        axis = channel_axis_of(shape, None, channel_axis)
        if axis is not None and axis % len(shape) == len(shape) - 1 and shape[-1] in (3, 4):
            return Normalization.identity_uint8()
    return Normalization.from_percentiles(data, channels=channels, channel_axis=channel_axis, object_level=True)
