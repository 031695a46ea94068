"""Checks of image arrays and their channel layout, shared by normalisation and preparation.

Every problem is an `ImageInputError` whose message says how to fix the input.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

MIN_SIDE = 32

ChannelChoice = int | Sequence[int] | None


class ImageInputError(ValueError):
    """An image, or an option describing it, that cannot become model input; says the fix."""


def check_dtype(dtype: np.dtype) -> None:
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


def channel_axis_of(
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
    if ndim >= 3 and channels is None and shape[-1] < MIN_SIDE and shape[-2] < MIN_SIDE:
        raise ImageInputError(  # (N, 16, 16): frames too small, not 16 channels
            f"array of shape {shape} is too small: its frames are {shape[-2]}x{shape[-1]} pixels "
            f"(or {shape[-3]}x{shape[-2]} with {shape[-1]} channels); SAM 2 needs at least "
            f"{MIN_SIDE}x{MIN_SIDE}: pad it (np.pad) or upsample it first."
        )
    if ndim >= 3 and (channels is not None or shape[-1] < MIN_SIDE):
        return ndim - 1
    return None


def resolve_channels(n_channels: int, channels: ChannelChoice) -> tuple[int, ...]:
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


# Peak bytes per pixel of segmenting one frame at full resolution: the float32 RGB copy, its
# normalised and resized versions, and the full-size mask logits (measured 37-39 B/px for a
# uint16 image, 3000-5000 px square, built-in model, CPU).
PEAK_BYTES_PER_PIXEL = 40


def available_ram() -> int | None:
    """The machine's available memory in bytes (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except (ImportError, AttributeError, OSError):
        return None


def check_fits_in_memory(h: int, w: int, available: int | None = None) -> None:
    """Refuse, before allocating, a frame whose preparation and masks would not fit in memory
    (a 20000 x 20000 image needs ~16 GB), with the figures and the fix."""
    available = available_ram() if available is None else available
    need = PEAK_BYTES_PER_PIXEL * int(h) * int(w)
    if available is not None and need > available:
        raise ImageInputError(
            f"image is {h}x{w} pixels: segmenting it at full resolution needs about "
            f"{need / 1e9:.1f} GB of memory but {available / 1e9:.1f} GB is available; crop it or "
            "downscale it first (e.g. skimage.transform.rescale or image[::2, ::2])."
        )


def check_finite(x: np.ndarray) -> None:
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
