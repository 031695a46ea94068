"""Interactive segmentation of one image: embed once, then decode point, box and mask prompts.

Coordinates: points are (x, y) and boxes (x0, y0, x1, y1), in pixels of the image given to
`set_image` (x = column, y = row), as in SAM. napari's (row, col) is converted in `image_input`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..images.model_input import prepare_image, to_model_input, upscale_smoothing
from ..images.normalization import Normalization
from ..modeling.prompt_encoder import LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT
from ..modeling.sam2 import ImageFeatures, SAM2Model
from ..modeling.two_way_transformer import ImageProjections
from .embedding_store import EmbeddingStore, encode_cached, precision_name
from .mask_tools import masks_to_boxes
from .orientations import check_orientations, default_orientations, oriented_image, oriented_prompts, upright_mean
from .postprocess import LOGIT_CLAMP, fill_holes_and_remove_sprinkles
from .precision import compute_precision, resolve_precision
from .prediction import ImageEmbedding, Prediction, concat_predictions, first_of_batch
from .prompt_checks import PromptError, check_labels, check_one_box, check_points, clip_boxes, outside
from .quantize import model_for_precision
from .upscale import upscaled_masks
from .zoom import Window, brightening, check_window, in_window, paste_masks, prompt_extent, zoom_window

STABILITY_OFFSET = 1.0


class ImagePredictor:
    """SAM 2 image segmentation with prompts.

    precision of the image encoder: 'auto' (the fast path where the hardware has it), 'fp32'
    (exact), 'bf16', 'fp16'; prompts are always decoded in fp32.
    max_hole_area / max_sprinkle_area: fill holes and remove specks up to this many low-res
    (4h x 4w) pixels, on every device.
    orientations: embed the image as it is (1), in its 4 flips or in its 8 flips and transposes,
    decode every prompt in each and average the logits (module `orientations`); None: the
    model's own default (`default_orientations`).
    """

    def __init__(
        self,
        model: SAM2Model,
        precision: str = "auto",
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        embedding_store: EmbeddingStore | None = None,
        orientations: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.orientations = check_orientations(default_orientations(model) if orientations is None else orientations)
        self.device = model.device
        self.dtype = resolve_precision(precision, self.device, model)
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area
        self.embedding_store = embedding_store  # embeddings on disk, reused across sessions
        self._embedding: ImageEmbedding | None = None
        self._image: np.ndarray | None = None  # prepared RGB (float16), for zooming
        self._zoomed: tuple[tuple[Window, float], ImageEmbedding] | None = None
        self._restored: ImageEmbedding | None = None  # the embedding last given to set_embedding
        # The decoder's inputs in the model's dtype for the last embedding decoded, and the grid's
        # position encoding: made once per image, not on every click.
        self._decoder_inputs: tuple[ImageEmbedding, torch.Tensor, list[torch.Tensor]] | None = None
        self._dense_pe: torch.Tensor | None = None
        self._projections: tuple[torch.Tensor, ImageProjections] | None = None

    # ------------------------------------------------------------------ embedding

    @torch.inference_mode()
    def set_image(
        self,
        image: np.ndarray,
        normalization: str | Normalization | None = "auto",
        channels: Sequence[int] | None = None,
        channel_axis: int | None = None,
    ) -> ImageEmbedding:
        """Embed `image` (2-D gray, RGB(A) or multichannel) and make it the current image.

        normalization: 'auto' (percentiles of this image), a `Normalization` (e.g. shared by a
        stack), or None to feed an 8-bit RGB image exactly as the official predictor does.
        """
        rgb = prepare_image(image, normalization, channels=channels, channel_axis=channel_axis)
        self._embedding, self._restored = self.embed_prepared([rgb])[0], None
        self._keep_image(rgb)
        return self._embedding

    @torch.inference_mode()
    def set_images(
        self,
        images: Sequence[np.ndarray],
        normalization: str | Normalization | None = "auto",
        batch_size: int = 4,
        channels: Sequence[int] | None = None,
    ) -> list[ImageEmbedding]:
        """Embed many images, `batch_size` at a time; the last becomes the current image."""
        rgbs = [prepare_image(im, normalization, channels=channels) for im in images]
        embeddings = []
        for start in range(0, len(rgbs), batch_size):
            embeddings += self.embed_prepared(rgbs[start : start + batch_size])
        if embeddings:
            self._embedding, self._restored = embeddings[-1], None
            self._keep_image(rgbs[-1])
        return embeddings

    @torch.inference_mode()
    def embed_prepared(self, rgbs: list[np.ndarray]) -> list[ImageEmbedding]:
        """Embed images already made into (H, W, 3) [0, 1] RGB by `prepare_image` (read from
        the embedding store where it has them); with several orientations, each embedding holds
        one batch entry per orientation."""
        n, precision = self.orientations, precision_name(self.dtype)
        views = [oriented_image(rgb, v) if v else rgb for rgb in rgbs for v in range(n)]
        parts = [  # at most 4 views per encoder call: bounded memory for large models and images
            encode_cached(self.embedding_store, self.model, precision, views[i : i + 4], self._encode)
            for i in range(0, len(views), 4)
        ]
        embedding = self.model.add_no_memory(torch.cat([p.embedding for p in parts]))
        high_res = [torch.cat(level) for level in zip(*(p.high_res for p in parts))]
        return [
            ImageEmbedding(embedding[i * n : (i + 1) * n], [f[i * n : (i + 1) * n] for f in high_res], rgb.shape[:2])
            for i, rgb in enumerate(rgbs)
        ]

    def _encode(self, rgbs: list[np.ndarray]) -> ImageFeatures:
        size = self.model.image_size
        model = model_for_precision(self.model, self.dtype)  # int8: a quantised copy
        smoothing = upscale_smoothing(self.model)
        batch = torch.cat([to_model_input(rgb, size, self.device, torch.float32, smoothing) for rgb in rgbs])
        with compute_precision(self.device, self.dtype):
            return model.encode_image(batch.to(self.model.dtype))

    def get_embedding(self) -> ImageEmbedding:
        if self._embedding is None:
            raise RuntimeError("No image is set: call set_image(image) first.")
        return self._embedding

    def set_embedding(self, embedding: ImageEmbedding, image: np.ndarray | None = None) -> None:
        """Make a previously computed embedding current (no re-encoding); `image`, the RGB it
        was computed from (`prepare_image`), is only needed to zoom."""
        zoomed = self._zoomed if embedding is self._restored and image is not None else None
        self._embedding, self._restored = embedding.to(self.device), embedding
        self._keep_image(image)
        self._zoomed = zoomed  # the same plane again (e.g. a widget's next preview): keep its crop

    def reset(self) -> None:
        self._embedding = self._restored = None
        self._decoder_inputs = self._projections = None
        self._keep_image(None)

    def _keep_image(self, rgb: np.ndarray | None) -> None:
        self._image = None if rgb is None else np.asarray(rgb, dtype=np.float16)
        self._zoomed = None

    # ------------------------------------------------------------------ prompts

    @torch.inference_mode()
    def predict(
        self,
        points: np.ndarray | Sequence | None = None,
        labels: np.ndarray | Sequence | None = None,
        box: np.ndarray | Sequence | None = None,
        mask_input: np.ndarray | torch.Tensor | None = None,
        multimask_output: bool = True,
        zoom: bool | Window | None = None,
    ) -> Prediction:
        """Segment one object.

        points: (N, 2) (x, y) pixels; labels: (N,) 1 = foreground, 0 = background (default
        all 1); box: (x0, y0, x1, y1) pixels; mask_input: (1, 4h, 4w) or (4h, 4w) low-res
        logits from an earlier prediction, for refinement. Returns 3 candidates with
        multimask_output, else 1.
        zoom: True segments a small object on an enlarged crop around it (module `zoom`; the
        crop is chosen from the box, or from a first mask of the clicks, and skipped when it
        would not enlarge the object); a window (x0, y0, x1, y1), such as an earlier
        prediction's `window`, decodes in that crop (refine with its logits this way).
        """
        emb = self.get_embedding()
        box = None if box is None else check_one_box(box)
        if zoom is not None and zoom is not False:
            return self._predict_zoomed(emb, points, labels, box, mask_input, multimask_output, zoom)
        coords, point_labels = self._prompt_points(emb, points, labels, box)
        mask = self._mask_prompt(mask_input)
        result = self._decode(emb, coords, point_labels, mask, multimask_output)
        return first_of_batch(result)

    @torch.inference_mode()
    def predict_boxes(
        self, boxes: np.ndarray | Sequence, multimask_output: bool = False, batch_size: int = 64
    ) -> Prediction:
        """Segment one object per box (B, 4) XYXY pixels, batched through the decoder."""
        emb = self.get_embedding()
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
            raise PromptError(f"boxes must be a non-empty (B, 4) array of x0, y0, x1, y1; got shape {boxes.shape}.")
        parts = []
        for start in range(0, len(boxes), batch_size):
            chunk = boxes[start : start + batch_size]
            coords, labels = self._prompt_points(emb, None, None, chunk)
            parts.append(self._decode(emb, coords, labels, None, multimask_output))
        return concat_predictions(parts)

    def _predict_zoomed(self, emb, points, labels, box, mask_input, multimask_output, zoom) -> Prediction:
        if self._image is None:
            raise RuntimeError(
                "Zooming needs the image, not only its embedding: call set_image(image), or "
                "set_embedding(embedding, image=prepare_image(image))."
            )
        h, w = emb.image_hw
        gain = brightening(self._image, points, labels, box)
        if zoom is True:
            if mask_input is not None:
                raise PromptError(
                    "mask_input logits belong to the region of the prediction that made them: "
                    "pass zoom=that_prediction.window instead of zoom=True."
                )
            window = self._auto_window(emb, points, labels, box, multimask_output)
            if window is None and gain > 1.0:  # not enlarged, but dim: the whole image brightened
                window = (0, 0, w, h)
            if window is None:  # zooming would not enlarge the object
                return self.predict(points, labels, box, None, multimask_output)
        else:
            window = check_window(zoom, (h, w))
        if points is not None:
            pts = check_points(points, h, w)
            away = outside(pts, window)
            if away.any():
                raise PromptError(
                    f"Point {pts[away][0].tolist()} is outside the zoom window {window}; "
                    "use zoom=True to choose a window around every prompt."
                )
            points = in_window(pts, window)
        if box is not None:
            box = in_window(np.asarray(box, dtype=np.float64).reshape(-1), window)
        crop = self._window_embedding(window, gain)
        coords, point_labels = self._prompt_points(crop, points, labels, box)
        result = first_of_batch(self._decode(crop, coords, point_labels, self._mask_prompt(mask_input), multimask_output))
        found = result.masks.any(axis=(-2, -1))[:, None]
        boxes = np.where(found, result.boxes + np.tile(window[:2], 2), result.boxes)
        return Prediction(
            paste_masks(result.masks, window, (h, w)), result.scores, result.stability, result.logits, boxes, window
        )

    def _auto_window(self, emb, points, labels, box, multimask_output) -> Window | None:
        """A window around the box, or around the clicks and their whole-image mask."""
        h, w = emb.image_hw
        pts = None if points is None else check_points(points, h, w)
        boxes = None if box is None else clip_boxes(np.asarray(box, dtype=np.float64).reshape(-1, 4), h, w)
        mask_box = None
        if boxes is None:
            first = self.predict(points, labels, None, None, multimask_output)
            if first.masks[first.best].any():
                mask_box = first.boxes[first.best]
        return zoom_window(prompt_extent(pts, None if boxes is None else boxes[0], mask_box), (h, w), self.model.image_size)

    def _window_embedding(self, window: Window, gain: float = 1.0) -> ImageEmbedding:
        """The embedding of a crop of the current image, brightened by `gain` (the last one is
        kept)."""
        if self._zoomed is None or self._zoomed[0] != (window, gain):
            x0, y0, x1, y1 = window
            crop = np.ascontiguousarray(self._image[y0:y1, x0:x1], dtype=np.float32)
            if gain != 1.0:
                crop = np.clip(crop * np.float32(gain), 0.0, 1.0)
            self._zoomed = ((window, gain), self.embed_prepared([crop])[0])
        return self._zoomed[1]

    def _prompt_points(self, emb: ImageEmbedding, points, labels, box):
        """Validated prompts as (B, N, 2) model-input coordinates and (B, N) labels."""
        h, w = emb.image_hw
        coord_list, label_list = [], []
        if box is not None:
            boxes = clip_boxes(np.asarray(box, dtype=np.float64).reshape(-1, 4), h, w)
            coord_list.append(boxes.reshape(-1, 2, 2))
            label_list.append(np.tile([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT], (len(boxes), 1)))
        if points is not None:
            pts = check_points(points, h, w)
            lab = check_labels(labels, len(pts))
            batch = len(coord_list[0]) if coord_list else 1
            coord_list.append(np.broadcast_to(pts, (batch, *pts.shape)))
            label_list.append(np.broadcast_to(lab, (batch, len(lab))))
        elif labels is not None:
            raise PromptError("labels were given without points.")
        if not coord_list:
            return None, None
        coords = np.concatenate(coord_list, axis=1)
        scale = np.array([self.model.image_size / w, self.model.image_size / h])
        coords_t = torch.as_tensor(coords * scale, dtype=torch.float32, device=self.device)
        labels_t = torch.as_tensor(np.concatenate(label_list, axis=1), dtype=torch.int32, device=self.device)
        return coords_t, labels_t

    def _mask_prompt(self, mask_input) -> torch.Tensor | None:
        if mask_input is None:
            return None
        mask = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32, device=self.device)
        expected = self.model.sam_prompt_encoder.mask_input_size
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3 or mask.shape[0] != 1 or tuple(mask.shape[-2:]) != expected:
            raise PromptError(
                f"mask_input must be low-res logits of shape (1, {expected[0]}, {expected[1]}) "
                f"(the `logits` of an earlier prediction); got {tuple(mask.shape)}."
            )
        if not torch.isfinite(mask).all():
            raise PromptError("mask_input contains NaN or infinite values.")
        return mask[None]

    def _decode(self, emb, coords, labels, mask, multimask_output) -> Prediction:
        if coords is None and mask is None:
            raise PromptError("Nothing to segment: give points, a box or a mask_input.")
        # Prompts are decoded in fp32 whatever the encoder's precision: it costs little and keeps
        # the masks of the fast path within IoU 0.98 of fp32 ones.
        embedding, high_res = self._decoder_features(emb)
        views = len(embedding)
        if views > 1:
            coords, labels, mask = oriented_prompts(views, coords, labels, mask, self.model.image_size)
        with torch.autocast(self.device.type, enabled=False):
            projected = self._projected(embedding) if mask is None and views == 1 else None
            out = self.model.decode(
                embedding,
                high_res,
                points=coords,
                labels=labels,
                mask_input=mask,
                multimask_output=multimask_output,
                pad_empty_prompt=False,
                image_pe=self._dense_pe,
                projected=projected,
            )
        low_res, iou = out.masks.float(), out.iou.float()
        if views > 1:
            low_res, iou = upright_mean(low_res, iou, views)
        if self.max_hole_area > 0 or self.max_sprinkle_area > 0:
            low_res = fill_holes_and_remove_sprinkles(
                low_res, self.max_hole_area, self.max_sprinkle_area, self.mask_threshold
            )
        masks, stability = self._upscale(low_res, emb.image_hw)
        boxes = masks_to_boxes(masks)
        return Prediction(
            masks=masks.cpu().numpy(),
            scores=iou.cpu().numpy(),
            stability=stability.cpu().numpy(),
            logits=low_res.clamp(-LOGIT_CLAMP, LOGIT_CLAMP).cpu().numpy(),
            boxes=boxes.cpu().numpy(),
        )

    def _decoder_features(self, emb: ImageEmbedding) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The embedding in the model's dtype (bf16 embeddings are converted once per image) and
        the high-res features channels-last."""
        if self._decoder_inputs is None or self._decoder_inputs[0] is not emb:
            dtype = self.model.dtype
            last = torch.channels_last  # the layout of the decoder's upscaling
            self._decoder_inputs = (
                emb, emb.embedding.to(dtype), [f.to(dtype).contiguous(memory_format=last) for f in emb.high_res]
            )
        if self._dense_pe is None:
            self._dense_pe = self.model.sam_prompt_encoder.dense_pe()
        return self._decoder_inputs[1], self._decoder_inputs[2]

    def _projected(self, embedding: torch.Tensor) -> ImageProjections:
        """The decoder's image-only products for this embedding, made on its first prompt."""
        if self._projections is None or self._projections[0] is not embedding:
            self._projections = (embedding, self.model.project_image(embedding, self._dense_pe))
        return self._projections[1]

    def _upscale(self, low_res: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Binary masks at the image size and their stability, one prompt set at a time
        (bounded memory for large images)."""
        parts = [upscaled_masks(logits, hw, self.mask_threshold, STABILITY_OFFSET) for logits in low_res]
        return torch.stack([m for m, _ in parts]), torch.stack([s for _, s in parts])
