"""The SAM 2 network, written from its description; attribute names match the official checkpoints."""

from .config import PRESETS, HieraConfig, SAM2Config, get_config
from .mask_decoder import DecoderOutput
from .sam2 import NO_OBJECT_SCORE, FrameOutput, ImageFeatures, SAM2Model, SpatialMemory

__all__ = [
    "PRESETS",
    "HieraConfig",
    "SAM2Config",
    "get_config",
    "DecoderOutput",
    "NO_OBJECT_SCORE",
    "FrameOutput",
    "ImageFeatures",
    "SAM2Model",
    "SpatialMemory",
]
