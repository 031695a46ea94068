"""How closely a model's reduced-precision masks follow its fp32 masks on real images: the rule
that lets the `auto` precision pick int8 for a model (recorded in its metadata)."""

from __future__ import annotations

import numpy as np

from ..engine.predictor import ImagePredictor
from ..modeling.sam2 import SAM2Model
from .prompt_sampling import centre_click
from .real_eval import Sample

MEDIAN_RULE, P5_RULE = 0.97, 0.9  # IoU with fp32: median and 5th percentile


def mask_agreement(model: SAM2Model, samples: list[Sample], precisions=("bf16", "int8"), clicks: int = 4) -> dict:
    """IoU of each precision's best mask with fp32's, one click (the deepest interior point) on
    up to `clicks` random objects per image. Clicks whose fp32 mask is empty or covers over half
    the image are left out (random weights give such masks)."""
    predictors = {p: ImagePredictor(model, precision=p, orientations=1) for p in ("fp32", *precisions)}
    rng = np.random.default_rng(0)
    ious: dict[str, list[float]] = {p: [] for p in precisions}
    for sample in samples:
        for predictor in predictors.values():
            predictor.set_image(sample.image)
        objects = rng.permutation([i for i in np.unique(sample.labels) if i])[:clicks]
        for xy in (centre_click(sample.labels == i) for i in objects):
            ref = predictors["fp32"].predict([xy])
            ref_mask = ref.masks[ref.best]
            if not ref_mask.any() or ref_mask.mean() > 0.5:
                continue
            for name in precisions:
                got = predictors[name].predict([xy])
                mask = got.masks[got.best]
                ious[name].append(float((mask & ref_mask).sum() / (mask | ref_mask).sum()))
    return {name: summary(values) for name, values in ious.items()}


def summary(ious: list[float]) -> dict:
    """Clicks, min, 5th percentile and median IoU, and whether they meet the rule."""
    if not ious:
        return {"clicks": 0, "within_rule": False}
    v = np.asarray(ious)
    p5, median = float(np.percentile(v, 5)), float(np.median(v))
    return {
        "clicks": len(v), "min": float(v.min()), "p5": p5, "median": median,
        "within_rule": bool(median >= MEDIAN_RULE and p5 >= P5_RULE),
    }
