"""Segment Anything 2 for microscopy: headless engine and napari plugin.

Public names are imported on first use, so that `import napari_sam2` (and the command line's
`--help`) stays fast and torch loads only when a model is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "loading",
    "build_model": "loading",
    "CheckpointError": "checkpoint",
    "PRESETS": "modeling.config",
    "SAM2Config": "modeling.config",
    "SAM2Model": "modeling.sam2",
    "ImagePredictor": "predictor",
    "Prediction": "predictor",
    "PromptError": "prompt_checks",
    "AutomaticMaskGenerator": "automatic",
    "Normalization": "normalization",
    "ImageInputError": "image_checks",
    "Cancelled": "progress",
    "StackTracker": "tracker",
    "TrackResult": "tracker",
    "FrameSource": "frames",
    "LabelWriter": "label_writer",
    "PromptSession": "prompts",
    "run_batch": "batch.run",
    "BatchSummary": "batch.summary",
    "ensure_checkpoint": "download",
    "DownloadError": "download",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .automatic import AutomaticMaskGenerator
    from .checkpoint import CheckpointError
    from .image_checks import ImageInputError
    from .normalization import Normalization
    from .loading import build_model, load_model
    from .modeling.config import PRESETS, SAM2Config
    from .modeling.sam2 import SAM2Model
    from .predictor import ImagePredictor, Prediction
    from .prompt_checks import PromptError
    from .download import DownloadError, ensure_checkpoint
    from .frames import FrameSource
    from .label_writer import LabelWriter
    from .progress import Cancelled
    from .batch.run import run_batch
    from .batch.summary import BatchSummary
    from .prompts import PromptSession
    from .tracker import StackTracker, TrackResult


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
