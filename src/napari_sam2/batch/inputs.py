"""Finding the inputs of a batch (files, folders, globs) and the prompts beside them."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from ..images.io import is_image_file
from .spec import OUTPUT_SUFFIXES, BatchError

PROMPTS_SUFFIXES = (".prompts.json", ".prompts.csv")


class InputError(ValueError):
    """An input that cannot be read or used; recorded as failed, the batch goes on."""


def find_inputs(inputs: str | Path | Sequence[str | Path], exclude: str | Path | None = None) -> list[Path]:
    """Image files from paths, folders (their images, not recursive) and glob patterns, in order
    and without duplicates. Label outputs (`*_labels.tif`) in the output folder `exclude` that a
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
        found += [p for p in candidates if is_image_file(p) and not is_output(p, outputs)]
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


def is_output(path: Path, folder: Path | None) -> bool:
    """Whether `path` is named as a label output (`*_labels.tif`, `*_labels.zarr`) and lies in
    the output folder `folder` (resolved): such files are never inputs."""
    return (
        folder is not None
        and path.name.endswith(tuple(OUTPUT_SUFFIXES.values()))
        and path.resolve().parent == folder
    )
