"""What the image predictor hands out: an image's embedding, and the masks of a prompt set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .zoom import Window


@dataclass
class ImageEmbedding:
    """Everything the decoder needs from one image; keep it to skip re-encoding (e.g. per slice)."""

    embedding: torch.Tensor  # (V, C, h, w), one per orientation (engine.orientations), conditioned on 'no memory'
    high_res: list[torch.Tensor]  # decoder skip features
    image_hw: tuple[int, int]  # size of the original image

    def to(self, device: torch.device | str) -> ImageEmbedding:
        return ImageEmbedding(
            self.embedding.to(device), [f.to(device) for f in self.high_res], self.image_hw
        )

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [self.embedding, *self.high_res])


@dataclass
class Prediction:
    """Masks for one prompt set (M candidates) or a batch of them (leading batch axis)."""

    masks: np.ndarray  # bool (..., M, H, W) at the image's size
    scores: np.ndarray  # (..., M) predicted IoU
    stability: np.ndarray  # (..., M) IoU of the mask thresholded at +/- 1 logit
    logits: np.ndarray  # (..., M, 4h, 4w) low-res logits, to feed back as mask_input
    boxes: np.ndarray  # (..., M, 4) bounding box of each mask, XYXY pixels (all 0 if empty)
    window: Window | None = None  # the zoomed region the logits cover; None: the whole image

    @property
    def best(self) -> int:
        """Index of the highest-scoring mask of a single prompt set."""
        return int(np.argmax(self.scores))



def first_of_batch(p: Prediction) -> Prediction:
    """The first prompt set of a batched prediction."""
    return Prediction(p.masks[0], p.scores[0], p.stability[0], p.logits[0], p.boxes[0])


def concat_predictions(parts: list[Prediction]) -> Prediction:
    """Batched predictions one after the other."""
    return Prediction(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("masks", "scores", "stability", "logits", "boxes"))
    )
