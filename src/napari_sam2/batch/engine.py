"""What runs the model for a batch: images embedded in batches, then segmented one at a time
from their embeddings, everything (automatic masks) or the objects of a prompts file."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..engine.apply_prompts import segment_object
from ..engine.automatic import AutomaticMaskGenerator
from ..engine.mask_tools import records_to_label_image
from ..engine.predictor import ImageEmbedding, ImagePredictor
from ..prompt_file import PromptSession
from .spec import BatchSpec

PROMPTS_PER_DECODE = 64  # objects decoded in one decoder pass


class _GivenEmbedding(ImagePredictor):
    """The generator's predictor, handed the embedding of the whole image when it was computed
    in a batch beforehand (crops of other layers are still embedded here)."""

    def __init__(self, base: ImagePredictor) -> None:
        self.__dict__.update(vars(base))
        self.given: tuple[np.ndarray, ImageEmbedding] | None = None

    def embed_prepared(self, rgbs: list[np.ndarray]) -> list[ImageEmbedding]:
        if self.given is not None and len(rgbs) == 1 and _same_pixels(rgbs[0], self.given[0]):
            return [self.given[1]]
        return super().embed_prepared(rgbs)


class Engine:
    """A model and the settings of one batch spec."""

    def __init__(self, model, spec: BatchSpec) -> None:
        self.model = model
        self.spec = spec
        # prompts are averaged over the model's orientations; segment everything reads the same
        # embeddings, so they have its orientations (1 unless the spec's amg options say)
        turns = None if spec.mode == "prompts" else int(spec.amg.get("orientations", 1))
        self.encoder = ImagePredictor(model, precision=spec.precision, orientations=turns)
        self.generator: AutomaticMaskGenerator | None = None
        if spec.mode != "prompts":  # propagate finds its objects this way when it has no prompts
            self.generator = AutomaticMaskGenerator(model, precision=spec.precision, **spec.amg)
            self.generator.predictor = _GivenEmbedding(self.generator.predictor)

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def embed(self, rgbs: Sequence[np.ndarray]) -> list[ImageEmbedding]:
        """Embeddings of prepared (H, W, 3) images, in one pass of the image encoder."""
        return self.encoder.embed_prepared(list(rgbs))

    @torch.inference_mode()
    def everything(self, rgb: np.ndarray, embedding: ImageEmbedding | None = None) -> np.ndarray:
        """Automatic masks of a prepared image as a uint32 label image, as
        `AutomaticMaskGenerator.generate_labels` gives them."""
        generator = self.generator
        generator.predictor.given = (rgb, embedding) if embedding is not None else None
        try:
            data, crop_boxes = generator._generate(rgb, None, None)
            records = generator._records(data, crop_boxes, rgb.shape[:2])
        finally:
            generator.predictor.given = None
        return records_to_label_image(records, rgb.shape[:2])

    @torch.inference_mode()
    def prompted(self, embedding: ImageEmbedding, session: PromptSession, frame: int | None) -> np.ndarray:
        """The objects' best masks on one image as a uint32 label image, as `api.segment_objects`
        makes them (earlier objects keep contested pixels). Objects prompted with the same
        number of points and no mask are decoded together, in one decoder pass per group.
        frame: only prompts on this frame count (None: all of them, for a single image)."""
        predictor = self.encoder
        predictor.set_embedding(embedding)
        hw = embedding.image_hw
        masks: dict[int, np.ndarray] = {}
        groups: dict[tuple[int, bool], list[tuple[int, torch.Tensor, torch.Tensor]]] = {}
        for obj in session.objects:
            prompts = [p for p in obj.prompts if frame is None or p.frame == frame]
            if not prompts:
                continue
            points, labels, box, mask = session.merged(prompts, hw)
            if mask is not None:  # mask prompts need their own hints: one object at a time
                masks[obj.id] = segment_object(predictor, points, labels, box, mask)[0]
                continue
            single_click = box is None and points is not None and len(points) == 1
            coords, point_labels = predictor._prompt_points(embedding, points, labels, box)
            groups.setdefault((coords.shape[1], single_click), []).append((obj.id, coords, point_labels))
        for (_, multimask), members in groups.items():
            for start in range(0, len(members), PROMPTS_PER_DECODE):
                chunk = members[start : start + PROMPTS_PER_DECODE]
                coords = torch.cat([c for _, c, _ in chunk])
                point_labels = torch.cat([lab for _, _, lab in chunk])
                result = predictor._decode(embedding, coords, point_labels, None, multimask)
                for i, (obj_id, _, _) in enumerate(chunk):
                    masks[obj_id] = result.masks[i, int(np.argmax(result.scores[i]))]
        label_image = np.zeros(hw, dtype=np.uint32)
        for obj in session.objects:
            if obj.id in masks:
                label_image[masks[obj.id] & (label_image == 0)] = obj.id
        return label_image


def _same_pixels(a: np.ndarray, b: np.ndarray) -> bool:
    """True when `a` is `b` or a view of all of it (the generator's full-image 'crop')."""
    return a.shape == b.shape and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
