"""Image features of a stack's frames for the tracker: the last few kept in memory, each
encoded once (through the embedding store on disk, when there is one)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from ..images.frames import FrameSource
from ..images.model_input import to_model_input, upscale_smoothing
from ..modeling.sam2 import ImageFeatures, SAM2Model
from .embedding_store import EmbeddingStore, encode_cached, precision_name
from .precision import compute_precision
from .quantize import source_model


GRAYS_KEPT = 256  # frames whose low-res intensities are kept (64 KB each at 512 px input)


class FrameFeatures:
    """`get(frame)` encodes a frame, or returns it from the `size` most recently used. With
    `keep_grays`, each frame read also leaves its intensities on the low-res mask grid (`gray`)."""

    def __init__(
        self, model: SAM2Model, frames: FrameSource, dtype: torch.dtype, size: int, store: EmbeddingStore | None,
        keep_grays: bool = False,
    ) -> None:
        self.model, self.frames, self.dtype, self.store = model, frames, dtype, store
        self.size = max(1, size)
        self._cache: OrderedDict[int, ImageFeatures] = OrderedDict()
        self.keep_grays = keep_grays
        self._grays: OrderedDict[int, torch.Tensor] = OrderedDict()

    def __contains__(self, frame: int) -> bool:
        return frame in self._cache

    def clear(self) -> None:
        self._cache.clear()

    def get(self, frame: int, rgb: np.ndarray | None = None) -> ImageFeatures:
        """rgb: the frame as `frames.get(frame)` gives it, when the caller has read it."""
        cached = self._cache.get(frame)
        if cached is not None:
            self._cache.move_to_end(frame)
            return cached
        if rgb is None:
            rgb = self.frames.get(frame)
        if self.keep_grays and frame not in self._grays:
            self._keep_gray(frame, rgb)
        with torch.inference_mode():
            features = encode_cached(self.store, self.model, precision_name(self.dtype), [rgb], self._encode)
        self._cache[frame] = features
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return features

    def gray(self, frame: int, rgb: np.ndarray | None = None) -> torch.Tensor:
        """The frame's intensities (channels averaged) on the low-res mask grid (side image_size
        / 4), for the tracker's contrast sign; the frame is read again only when not kept."""
        kept = self._grays.get(frame)
        if kept is not None:
            return kept
        return self._keep_gray(frame, self.frames.get(frame) if rgb is None else rgb)

    def _keep_gray(self, frame: int, rgb: np.ndarray) -> torch.Tensor:
        side = self.model.image_size // 4
        gray = torch.from_numpy(np.ascontiguousarray(rgb.mean(axis=-1), dtype=np.float32))
        gray = F.adaptive_avg_pool2d(gray[None, None], (side, side))[0, 0].to(self.model.device)
        self._grays[frame] = gray
        while len(self._grays) > GRAYS_KEPT:
            self._grays.popitem(last=False)
        return gray

    def _encode(self, rgbs: list[np.ndarray]) -> ImageFeatures:
        model, smoothing = self.model, upscale_smoothing(source_model(self.model))
        x = to_model_input(rgbs[0], model.image_size, model.device, model.dtype, smoothing)
        with compute_precision(self.model.device, self.dtype):
            return self.model.encode_image(x)
