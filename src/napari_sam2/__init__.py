"""Segment Anything 2 for microscopy: headless engine and napari plugin."""

from .checkpoint import CheckpointError
from .loading import build_model, load_model
from .modeling import PRESETS, SAM2Config, SAM2Model

__version__ = "0.1.0"

__all__ = ["CheckpointError", "PRESETS", "SAM2Config", "SAM2Model", "build_model", "load_model"]
