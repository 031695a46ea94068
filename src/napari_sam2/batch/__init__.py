"""Batch processing: many images and stacks on one machine, or spread over a dask cluster.

`run_batch` segments a list, folder or glob of images and stacks into label TIFFs beside a
summary table, skipping inputs already done. Names are imported on first use, so that
`import napari_sam2.batch` loads neither torch nor dask.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "run_batch": "run",
    "BatchError": "spec",
    "BatchSpec": "spec",
    "BatchSummary": "summary",
    "ItemResult": "summary",
    "find_inputs": "inputs",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .inputs import find_inputs
    from .run import run_batch
    from .spec import BatchError, BatchSpec
    from .summary import BatchSummary, ItemResult


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
