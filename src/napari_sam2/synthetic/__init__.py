"""Synthetic fluorescence microscopy with exact ground truth, deterministic from a seed."""

from ._optics import Acquisition, random_acquisition
from .images import cells_image, nuclei_image
from .movie import Motion, Tracks, timelapse, tracks_table
from .training import STYLES, sample, sample_batch, training_samples
from .volume import zstack

__all__ = [
    "STYLES",
    "Acquisition",
    "Motion",
    "Tracks",
    "cells_image",
    "nuclei_image",
    "random_acquisition",
    "sample",
    "sample_batch",
    "timelapse",
    "tracks_table",
    "training_samples",
    "zstack",
]
