"""Image files in and label files out: the one reader, writer, suffix list and stack rule.

TIFFs are read as read-only memmaps where possible (stacks stay on disk); PNG, JPEG and BMP
through scikit-image. Labels are written atomically (a half-written file never has its name).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .zarr_io import is_zarr_path, write_label_zarr

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
    """(N, H, W) and (N, H, W, C) are stacks; (H, W) and (H, W, C) with C channels (3 or 4, or
    any last axis too short to be an image side, as `checks.channel_axis_of` decides) are single
    images, so a 2-channel (H, W, 2) image is not taken for H frames of W x 2 pixels."""
    from .checks import MIN_SIDE

    return len(shape) == 4 or (len(shape) == 3 and shape[-1] not in (3, 4) and shape[-1] >= MIN_SIDE)


def frame_shape(shape: Sequence[int]) -> tuple[int, int]:
    """(H, W) of the image, or of each frame of a stack."""
    return (int(shape[1]), int(shape[2])) if is_stack(shape) else (int(shape[0]), int(shape[1]))


def write_labels(path: str | Path, labels: np.ndarray, first_axis: str = "z") -> None:
    """A label image or movie as a zlib-compressed TIFF, written atomically; as OME-Zarr when
    `path` ends in .zarr (first_axis: 'z' or 't', the name of a volume's first axis there)."""
    import tifffile

    path = Path(path)
    if is_zarr_path(path):  # OME-Zarr, for outputs named *.zarr
        return write_label_zarr(path, labels, first_axis)
    partial = path.with_name(path.name + ".part")
    try:
        tifffile.imwrite(partial, labels, compression="zlib", photometric="minisblack")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def source_file(data: Any) -> Path | None:
    """The file a (memory-mapped) array reads from, following views to their base, or None."""
    seen = 0
    while data is not None and seen < 32:
        name = getattr(data, "filename", None)
        if isinstance(name, (str, Path)) and name:
            return Path(name)
        data, seen = getattr(data, "base", None), seen + 1
    return None


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths are one file (the same path, or through links / another spelling)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output_file(
    path: str | Path, inputs: Sequence[str | Path | None] = (), overwrite: bool = False
) -> Path:
    """Refuse, before any work, an output that would destroy data or fail at the end: one that is
    (or links to) an input, even with `overwrite`; an existing file without `overwrite`; a
    folder; a folder that cannot be written to. Creates the parent folder."""
    path = Path(path)
    for source in inputs:
        if source is not None and same_file(path, source):
            raise FileExistsError(
                f"the output {path} is the input image {source}; writing it would destroy the input: "
                "choose another output file."
            )
    if path.is_dir() and not is_zarr_path(path):
        raise IsADirectoryError(f"the output {path} is a folder; name a .tif file to write, e.g. {path / 'labels.tif'}.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it.")
    check_writable_folder(path.parent)
    return path


def check_writable_folder(folder: str | Path) -> Path:
    """Create `folder` if needed and check that files can be created in it (before any work)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".napari-sam2-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"cannot write to the folder {folder} ({err.strerror or type(err).__name__}); "
            "choose an output folder you can write to."
        ) from None
    return folder


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
