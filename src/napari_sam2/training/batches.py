"""Images and label images turned into model-input tensors and per-object target masks."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..images.model_input import to_model_input


def augment(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random flip / quarter turn of image and labels (leading axes kept), and a random gamma."""
    k = int(rng.integers(4))
    axes = (-2, -1) if image.ndim == labels.ndim else (-3, -2)
    image = np.rot90(image, k, axes=axes)
    labels = np.rot90(labels, k, axes=(-2, -1))
    if rng.random() < 0.5:
        image, labels = np.flip(image, axis=axes[1]), np.flip(labels, axis=-1)
    gamma = float(np.exp(rng.uniform(-0.4, 0.4)))
    return np.ascontiguousarray(image) ** gamma, np.ascontiguousarray(labels)


def image_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """(H, W) or (H, W, 3) float [0, 1] -> (3, S, S) normalised model input (as inference does)."""
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
    return to_model_input(rgb.astype(np.float32), size)[0]


def labels_at(labels: np.ndarray, size: int) -> np.ndarray:
    """Label image resized to S x S by nearest neighbour (as SAM 2 stretches images to S x S)."""
    if labels.shape[-2:] == (size, size):
        return labels
    t = torch.from_numpy(labels.astype(np.int64))[None, None].float()
    return F.interpolate(t, size=(size, size), mode="nearest")[0, 0].numpy().astype(labels.dtype)


def object_ids(labels: np.ndarray, min_area: int = 12) -> np.ndarray:
    """Ids of the objects with at least `min_area` pixels."""
    ids, counts = np.unique(labels, return_counts=True)
    keep = (ids > 0) & (counts >= min_area)
    return ids[keep]


def pick_objects(labels: np.ndarray, rng: np.random.Generator, n: int, min_area: int = 12) -> np.ndarray:
    """Up to n random objects of a label image."""
    ids = object_ids(labels, min_area)
    if len(ids) > n:
        ids = rng.choice(ids, n, replace=False)
    return ids
