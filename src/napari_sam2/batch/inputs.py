"""Finding the inputs of a batch (files, folders, globs) and reading them."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .spec import BatchError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
PROMPTS_SUFFIXES = (".prompts.json", ".prompts.csv")
OUTPUT_SUFFIX = "_labels.tif"  # outputs are <stem>_labels.tif


class InputError(ValueError):
    """An input that cannot be read or used; recorded as failed, the batch goes on."""


def find_inputs(inputs: str | Path | Sequence[str | Path], exclude: str | Path | None = None) -> list[Path]:
    """Image files from paths, folders (their images, not recursive) and glob patterns, in order
    and without duplicates. Label images (`*_labels.tif`) in the output folder `exclude` that a
    folder or glob finds are left out, so outputs are never taken as inputs."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    outputs = Path(exclude).resolve() if exclude is not None else None
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            candidates = sorted(path.iterdir())
        elif path.is_file():
            found.append(path)
            continue
        elif any(c in str(item) for c in "*?["):
            candidates = [Path(p) for p in sorted(glob.glob(str(item), recursive=True))]
        else:
            raise BatchError(f"No such file or folder: {path}")
        found += [p for p in candidates if _is_image(p) and not _is_output(p, outputs)]
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise BatchError(f"No images found in {', '.join(map(str, items))}.")
    return unique


def prompts_beside(path: Path) -> Path | None:
    """The input's own prompts file, `<stem>.prompts.json` (or .csv) next to it, if any."""
    for suffix in PROMPTS_SUFFIXES:
        candidate = path.with_name(path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def read_image(path: str | Path) -> Any:
    """The whole image or stack: a read-only memmap for uncompressed TIFFs (stacks stay on
    disk), else an array. Unreadable, truncated or empty files raise InputError."""
    path = Path(path)
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
        raise InputError(f"cannot read {path.name}: {_reason(err)}") from None
    if data.size == 0 or data.ndim < 2:
        raise InputError(f"{path.name} holds no image (shape {data.shape}).")
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
        raise InputError(f"cannot read {path.name}: {_reason(err)}") from None


def is_stack(shape: Sequence[int]) -> bool:
    """(N, H, W) and (N, H, W, C) are stacks; (H, W) and (H, W, 3 or 4) are single images."""
    return len(shape) == 4 or (len(shape) == 3 and shape[-1] not in (3, 4))


def frame_shape(shape: Sequence[int]) -> tuple[int, int]:
    """(H, W) of the image, or of each frame of a stack."""
    return (int(shape[1]), int(shape[2])) if is_stack(shape) else (int(shape[0]), int(shape[1]))


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _is_output(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.name.endswith(OUTPUT_SUFFIX) and path.resolve().parent == folder


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
