"""Label TIFFs (or OME-Zarr folders) written under a temporary name and renamed when whole, so
an output with the final name is always complete, even if the process writing it is killed."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ..images.zarr_io import create_label_zarr, is_zarr_folder, is_zarr_path, replace_label_zarr

PART = ".part"


def part_name(path: Path) -> Path:
    """A unique hidden temporary name beside `path` (workers may write the same output twice)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{PART}")


def remove_parts(path: Path) -> None:
    """Delete temporary files (and zarr folders) left beside `path` by writers that were killed."""
    for stale in path.parent.glob(f".{path.name}.*{PART}"):
        _remove_part(stale)


def _remove_part(part: Path) -> None:
    """A temporary file, or a temporary zarr folder; no other folder is ever deleted (an empty one,
    left by a writer killed before zarr wrote into it, is removed)."""
    if part.is_symlink() or not part.is_dir():
        part.unlink(missing_ok=True)
    elif is_zarr_folder(part):
        shutil.rmtree(part, ignore_errors=True)
    elif not any(part.iterdir()):
        part.rmdir()


class LabelFile:
    """A uint32 label image (H, W) or volume (N, H, W) to fill, then `commit` under `path`: a
    TIFF, or OME-Zarr when `path` ends in .zarr.

    Volumes are on disk while they are filled (long stacks never sit in memory): a memory-mapped
    TIFF, or a zarr array chunked one frame per chunk (each frame written as it is set). Single
    images are kept in memory and written whole (zlib-compressed TIFF, or zarr).
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.part = part_name(self.path)
        self.zarr = is_zarr_path(self.path)
        self.streamed = len(shape) == 3
        if self.streamed and self.zarr:
            self.array: Any = create_label_zarr(self.part, shape, np.uint32, name=self.path.stem)
        elif self.streamed:
            import tifffile

            self.array = tifffile.memmap(self.part, shape=shape, dtype=np.uint32, photometric="minisblack")
        else:
            self.array = np.zeros(shape, dtype=np.uint32)

    def commit(self) -> None:
        """Put the output in place under its final name, replacing an existing one (the plan
        allowed that: `plan.plan_items`)."""
        if self.zarr:
            if not self.streamed:
                create_label_zarr(self.part, self.array.shape, np.uint32, name=self.path.stem)[...] = self.array
            self.array = None
            replace_label_zarr(self.part, self.path)
            return
        if self.streamed:
            self.array.flush()
        else:
            import tifffile

            tifffile.imwrite(self.part, self.array, compression="zlib")
        self.array = None
        os.replace(self.part, self.path)

    def discard(self) -> None:
        self.array = None
        _remove_part(self.part)


def write_json(path: Path, data: Any) -> None:
    """JSON written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = part_name(path)
    part.write_text(json.dumps(data, indent=2))
    os.replace(part, path)
