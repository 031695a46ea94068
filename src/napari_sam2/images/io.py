"""Image files in and label files out: the one reader, writer, suffix list and stack rule.

TIFFs are read as read-only memmaps where possible (stacks stay on disk); PNG, JPEG and BMP
through scikit-image. Labels are written atomically (a half-written file never has its name).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


class ImageReadError(ValueError):
    """A file that is not a readable image (missing, a folder, truncated, empty)."""


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path) -> Any:
    """The whole image or stack of a file: a read-only memmap for uncompressed TIFFs, else an
    array. Missing, unreadable, truncated or empty files raise ImageReadError naming the file."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"no image at {path}.")
    if path.is_dir():
        raise ImageReadError(f"{path} is a folder, not an image file.")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            try:
                data = tifffile.memmap(path, mode="r")
            except ValueError:  # compressed, tiled or not contiguous: read it
                data = tifffile.imread(path)
        else:
            from skimage import io

            data = io.imread(path)
    except Exception as err:  # any reader error means this file is unusable
        raise ImageReadError(f"cannot read {path.name}: {_reason(err)}") from None
    if data.size == 0 or data.ndim < 2:
        raise ImageReadError(f"{path.name} holds no image (shape {data.shape}).")
    return data


def probe_shape(path: str | Path) -> tuple[int, ...]:
    """The array shape of an image file from its header, without reading the pixels."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return tuple(int(s) for s in tif.series[0].shape)
        from PIL import Image

        with Image.open(path) as im:
            bands = len(im.getbands())
            return (im.height, im.width) if bands == 1 else (im.height, im.width, bands)
    except Exception as err:
        raise ImageReadError(f"cannot read {path.name}: {_reason(err)}") from None


def is_stack(shape: Sequence[int]) -> bool:
    """(N, H, W) and (N, H, W, C) are stacks; (H, W) and (H, W, 3 or 4) are single images."""
    return len(shape) == 4 or (len(shape) == 3 and shape[-1] not in (3, 4))


def frame_shape(shape: Sequence[int]) -> tuple[int, int]:
    """(H, W) of the image, or of each frame of a stack."""
    return (int(shape[1]), int(shape[2])) if is_stack(shape) else (int(shape[0]), int(shape[1]))


def write_labels(path: str | Path, labels: np.ndarray) -> None:
    """A label image or movie as a zlib-compressed TIFF, written atomically."""
    import tifffile

    path = Path(path)
    partial = path.with_name(path.name + ".part")
    try:
        tifffile.imwrite(partial, labels, compression="zlib", photometric="minisblack")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
