"""Label TIFFs written under a temporary name and renamed when whole (os.replace), so a file
with the final name is always complete, even if the process writing it is killed."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

PART = ".part"


def part_name(path: Path) -> Path:
    """A unique hidden temporary name beside `path` (workers may write the same output twice)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{PART}")


def remove_parts(path: Path) -> None:
    """Delete temporary files left beside `path` by writers that were killed."""
    for stale in path.parent.glob(f".{path.name}.*{PART}"):
        stale.unlink(missing_ok=True)


class LabelFile:
    """A uint32 label image (H, W) or volume (N, H, W) to fill, then `commit` under `path`.

    Volumes are memory-mapped on disk while they are filled (long stacks never sit in memory);
    single images are kept in memory and written zlib-compressed.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.part = part_name(self.path)
        self.streamed = len(shape) == 3
        if self.streamed:
            import tifffile

            self.array: Any = tifffile.memmap(self.part, shape=shape, dtype=np.uint32, photometric="minisblack")
        else:
            self.array = np.zeros(shape, dtype=np.uint32)

    def commit(self) -> None:
        if self.streamed:
            self.array.flush()
        else:
            import tifffile

            tifffile.imwrite(self.part, self.array, compression="zlib")
        self.array = None
        os.replace(self.part, self.path)

    def discard(self) -> None:
        self.array = None
        self.part.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """JSON written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = part_name(path)
    part.write_text(json.dumps(data, indent=2))
    os.replace(part, path)
