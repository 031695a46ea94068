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
