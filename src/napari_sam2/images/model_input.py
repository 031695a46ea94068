"""Turn microscopy images (any bit depth; gray, RGB(A) or many channels) into SAM 2 input.

Pipeline: choose channels -> scale intensities to [0, 1] with a `Normalization` -> map to RGB ->
resize to S x S (aspect ratio not kept, as SAM 2 does; a model may ask for a blur before a large
enlargement, `upscale_sigmas`) -> ImageNet mean/std. Coordinates
(napari's (row, col) to the engine's (x, y)) are converted in `coordinates`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .checks import (
    MIN_SIDE,
    ChannelChoice,
    ImageInputError,
    channel_axis_of,
    check_dtype,
    check_finite,
    check_fits_in_memory,
    resolve_channels,
)
from .normalization import Normalization, auto_normalization

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layout_image(
    image: Any, channels: ChannelChoice, channel_axis: int | None
) -> tuple[np.ndarray, int]:
    """Validated (H, W, k) array of the chosen channels, and the channel count before choosing."""
    arr = np.asarray(image)
    check_dtype(arr.dtype)
    if arr.size == 0:
        raise ImageInputError(f"image is empty (shape {arr.shape}).")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    axis = channel_axis_of(arr.shape, channels, channel_axis)
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
    check_fits_in_memory(h, w)  # before any float copy of a huge frame
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ImageInputError(
            f"image is {h}x{w} pixels; SAM 2 needs at least {MIN_SIDE}x{MIN_SIDE}: "
            "pad it (np.pad) or upsample it first."
        )
    chosen = resolve_channels(n_in, channels)
    if chosen != tuple(range(n_in)):
        arr = arr[..., list(chosen)]
    check_finite(arr)
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
        source = image if channels is not None or np.asarray(image).dtype == np.bool_ else x
        normalization = auto_normalization(source, channels, channel_axis)
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


def upscale_smoothing(model: Any) -> float:
    """The model's blur per enlargement (`upscale_sigmas`), from its metadata; 0 when unset.
    (Pass an int8 copy's `engine.quantize.source_model`, which holds the current setting.)"""
    return float(getattr(model, "upscale_smoothing", 0.0))


def upscale_sigmas(hw: tuple[int, int], image_size: int, per_upscale: float) -> tuple[float, float]:
    """The Gaussian blur (rows, cols; in image pixels) before an image of `hw` is enlarged to
    `image_size`: `per_upscale` x (enlargement - 1) per axis, none when not enlarged.

    Enlarged 4x, a noisy image's pixel noise becomes blotches of 4 model pixels that a model
    trained at scales 0.5-2x takes for texture and edges; the blur keeps its scale."""
    return tuple(per_upscale * max(0.0, image_size / max(side, 1) - 1.0) for side in hw)  # type: ignore[return-value]


def to_model_input(
    rgb01: np.ndarray,
    image_size: int,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    upscale_smoothing: float = 0.0,
) -> torch.Tensor:
    """(H, W, 3) [0, 1] RGB -> (1, 3, S, S): antialiased bilinear resize, ImageNet norm.

    upscale_smoothing: blur an enlarged image first (`upscale_sigmas`); 0, the official input,
    for the official models. Runs in float32 on the CPU, as in the official predictor, then
    moves to `device` and `dtype`.
    """
    rgb01 = np.asarray(rgb01)
    if rgb01.ndim != 3 or rgb01.shape[-1] != 3:
        raise ImageInputError(
            "to_model_input expects an (H, W, 3) RGB array from prepare_image; "
            f"got shape {rgb01.shape}."
        )
    if image_size < 1:
        raise ImageInputError(f"image_size={image_size} must be a positive number of pixels.")
    rgb01 = np.ascontiguousarray(rgb01, dtype=np.float32)
    sigmas = upscale_sigmas(rgb01.shape[:2], image_size, upscale_smoothing)
    if any(sigmas):
        rgb01 = ndimage.gaussian_filter(rgb01, (*sigmas, 0.0), mode="reflect")
    x = torch.from_numpy(rgb01)
    x = x.permute(2, 0, 1).contiguous().unsqueeze(0)
    if tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(
            x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.to(device=device, dtype=dtype)
