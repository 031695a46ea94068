"""Segment Anything 2 for microscopy: headless engine and napari plugin.

Public names are imported on first use, so that `import napari_sam2` (and the command line's
`--help`) stays fast and torch loads only when a model is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "checkpoints.loading",
    "build_model": "checkpoints.loading",
    "CheckpointError": "checkpoints.files",
    "PRESETS": "modeling.config",
    "SAM2Config": "modeling.config",
    "SAM2Model": "modeling.sam2",
    "ImagePredictor": "engine.predictor",
    "Prediction": "engine.predictor",
    "PromptError": "engine.prompt_checks",
    "AutomaticMaskGenerator": "engine.automatic",
    "Normalization": "images.normalization",
    "ImageInputError": "images.checks",
    "Cancelled": "progress",
    "StackTracker": "engine.tracker",
    "TrackResult": "engine.tracker",
    "FrameSource": "images.frames",
    "LabelWriter": "images.label_writer",
    "PromptSession": "prompt_file",
    "run_batch": "batch.run",
    "BatchSummary": "batch.summary",
    "ensure_checkpoint": "checkpoints.download",
    "DownloadError": "checkpoints.download",
    "track_everything": "tracking.everything",
    "TrackingResult": "tracking.everything",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .batch.run import run_batch
    from .batch.summary import BatchSummary
    from .checkpoints.download import DownloadError, ensure_checkpoint
    from .checkpoints.files import CheckpointError
    from .checkpoints.loading import build_model, load_model
    from .engine.automatic import AutomaticMaskGenerator
    from .engine.predictor import ImagePredictor, Prediction
    from .engine.prompt_checks import PromptError
    from .engine.tracker import StackTracker, TrackResult
    from .images.checks import ImageInputError
    from .images.frames import FrameSource
    from .images.label_writer import LabelWriter
    from .images.normalization import Normalization
    from .modeling.config import PRESETS, SAM2Config
    from .modeling.sam2 import SAM2Model
    from .progress import Cancelled
    from .prompt_file import PromptSession
    from .tracking.everything import TrackingResult, track_everything


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
