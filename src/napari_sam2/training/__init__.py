"""Training and fine-tuning of SAM 2 models on microscopy (synthetic or a user's labelled images)."""

from .data import FolderData, SyntheticData
from .trainer import TrainConfig, Trainer, save_official, set_trainable

__all__ = ["FolderData", "SyntheticData", "TrainConfig", "Trainer", "save_official", "set_trainable"]
