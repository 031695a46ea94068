"""How well a model segments and tracks, measured through the engine users run.

Held-out synthetic data (seeds never used in training): clicks at object centres, tight boxes,
correction clicks at the centre of the largest error, tracking from one click, and automatic
segmentation scored by F1 at IoU 0.5. Everything goes through `ImagePredictor`, `StackTracker`
and `AutomaticMaskGenerator`, so the numbers are what a user gets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..engine.automatic import AutomaticMaskGenerator
from ..engine.predictor import ImagePredictor
from ..engine.prompt_checks import outside
from ..modeling.sam2 import SAM2Model
from ..synthetic import nuclei_image, sample, timelapse
from .batches import object_ids
from .prompt_sampling import centre_click, correction_click, tight_box

HELD_OUT_SEED = 1_000_003  # far from the training seeds (training draws from seed and step)
VALIDATION_SEED = 2_000_003  # checkpoint choice while training; never the reported held-out data


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@dataclass
class PromptScores:
    """Mean IoU of 1 click, a box, and 1 click + 2 corrections, over `n_objects` objects."""

    click: float
    box: float
    click_2_corrections: float
    n_objects: int


def prompt_scores(
    model: SAM2Model, images: list[tuple[np.ndarray, np.ndarray]], max_objects: int = 12, zoom: bool = False,
    orientations: int | None = None,
) -> PromptScores:
    """Interactive segmentation of every (image, labels) pair's objects (up to max_objects each);
    `zoom` as in `ImagePredictor.predict` (corrections refine in the first prediction's window),
    `orientations` as in `ImagePredictor` (None: the model's default)."""
    predictor = ImagePredictor(model, precision="fp32", orientations=orientations)
    clicks, boxes, corrected = [], [], []
    for image, labels in images:
        predictor.set_image(image)
        for obj in object_ids(labels)[:max_objects]:
            target = labels == obj
            point = centre_click(target)
            first = predictor.predict(points=point[None], multimask_output=True, zoom=zoom)
            best = first.best
            clicks.append(iou(first.masks[best], target))
            boxed = predictor.predict(box=tight_box(target), multimask_output=False, zoom=zoom)
            boxes.append(iou(boxed.masks[0], target))
            points, point_labels = [point], [1]
            mask, logits, window = first.masks[best], first.logits[best], first.window
            for _ in range(2):
                click = correction_click(mask, target)
                if click is None:
                    break
                points.append(click[0])
                point_labels.append(click[1])
                # refine in the window of the logits; a click outside it zooms anew
                same = window is None or not outside(np.asarray(click[0], dtype=float)[None], window)[0]
                out = predictor.predict(
                    points=np.stack(points), labels=point_labels, mask_input=logits if same else None,
                    multimask_output=False, zoom=window if same else True,
                )
                mask, logits, window = out.masks[0], out.logits[0], out.window
            corrected.append(iou(mask, target))
    return PromptScores(float(np.mean(clicks)), float(np.mean(boxes)), float(np.mean(corrected)), len(clicks))


@dataclass
class TrackingScores:
    """Mean IoU over the frames of cells tracked from one click on frame 0, and the share of
    frames on which the mask is on the right cell (IoU > 0.5 with it)."""

    mean_iou: float
    identity_kept: float
    n_cells: int
    n_frames: int


def tracking_scores(
    model: SAM2Model, n_movies: int = 2, n_frames: int = 30, cells_per_movie: int = 4, seed: int = HELD_OUT_SEED
) -> TrackingScores:
    """Track cells that stay in view and do not divide through synthetic time-lapse movies."""
    from ..engine.tracker import StackTracker

    ious, kept = [], []
    for m in range(n_movies):
        movie, labels, tracks = timelapse(n_frames, (256, 256), 12, seed=seed + m)
        parents = {p for (_, _, p) in tracks.values()}
        whole = [i for i, (first, last, _) in tracks.items() if first == 0 and last == n_frames - 1 and i not in parents]
        chosen = whole[:cells_per_movie]
        tracker = StackTracker(model, movie, precision="fp32")
        for obj in chosen:
            tracker.add_points(0, obj, centre_click(labels[0] == obj)[None])
        for result in tracker.propagate("forward"):
            for obj, mask in zip(result.obj_ids, result.masks):
                score = iou(mask, labels[result.frame] == obj)
                ious.append(score)
                kept.append(score > 0.5)
    return TrackingScores(float(np.mean(ious)), float(np.mean(kept)), n_movies * len(chosen), n_frames)


@dataclass
class AutomaticScores:
    """Automatic segmentation: F1, precision and recall at IoU 0.5."""

    f1: float
    precision: float
    recall: float
    n_true: int
    n_found: int


def matched(found: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> int:
    """Number of true objects matched by a found object with IoU > threshold (unique above 0.5)."""
    hits = 0
    for obj in np.unique(truth[truth > 0]):
        target = truth == obj
        candidates, counts = np.unique(found[target], return_counts=True)
        for cand, inter in zip(candidates, counts):
            if cand and inter / np.logical_or(target, found == cand).sum() > threshold:
                hits += 1
                break
    return hits


def automatic_scores(model: SAM2Model, n_images: int = 2, **amg_options) -> AutomaticScores:
    """Segment-everything on held-out synthetic nuclei images."""
    generator = AutomaticMaskGenerator(model, precision="fp32", **amg_options)
    tp = n_true = n_found = 0
    for i in range(n_images):
        image, truth = nuclei_image((256, 256), 14, seed=HELD_OUT_SEED + 100 + i)
        found = generator.generate_labels(image)
        tp += matched(found, truth)
        n_true += len(np.unique(truth)) - 1
        n_found += len(np.unique(found)) - 1
    precision, recall = tp / max(n_found, 1), tp / max(n_true, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    return AutomaticScores(f1, precision, recall, n_true, n_found)


def held_out_images(n: int = 8, style: str = "nuclei", seed: int = HELD_OUT_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """n held-out synthetic (image, labels) pairs of a style."""
    rng = np.random.default_rng(seed)
    return [sample(rng, (256, 256), style) for _ in range(n)]


def quick_score(model: SAM2Model, n_images: int = 6, tracking: bool = False) -> float:
    """One number for choosing the best checkpoint while training, on validation seeds: the mean
    IoU of clicks, boxes and click + 2 corrections; with `tracking`, averaged with the mean IoU of
    tracking cells through a 16-frame movie."""
    images = held_out_images(n_images, "nuclei", VALIDATION_SEED) + held_out_images(n_images, "cells", VALIDATION_SEED + 7)
    scores = prompt_scores(model, images, max_objects=6)
    prompts = (scores.click + scores.box + scores.click_2_corrections) / 3
    if not tracking:
        return prompts
    return (prompts + tracking_scores(model, n_movies=1, n_frames=16, seed=VALIDATION_SEED).mean_iou) / 2


# Filters for images unlike the training data, where a small model rates its masks lower.
RELAXED_FILTERS = {"pred_iou_thresh": 0.6, "stability_score_thresh": 0.85}


def full_report(model: SAM2Model, log: Callable[[str], None] = print) -> dict:
    """Every metric of the shipped-model table, plus scikit-image's `cell` and `coins`."""
    from skimage import data

    report: dict = {}
    for style in ("nuclei", "clumps", "cells"):
        images = held_out_images(12, style)
        s = prompt_scores(model, images)
        report[f"prompts_{style}"] = vars(s)
        log(f"{style}: 1 click {s.click:.3f}, box {s.box:.3f}, 1 click + 2 corrections {s.click_2_corrections:.3f} ({s.n_objects} objects)")
        z = prompt_scores(model, images, zoom=True)
        report[f"prompts_{style}_zoom"] = vars(z)
        log(f"{style}, zoom=True: 1 click {z.click:.3f}, box {z.box:.3f}, 1 click + 2 corrections {z.click_2_corrections:.3f}")
    t = tracking_scores(model)
    report["tracking"] = vars(t)
    log(f"tracking {t.n_cells} cells x {t.n_frames} frames: mean IoU {t.mean_iou:.3f}, identity kept {t.identity_kept:.3f}")
    a = automatic_scores(model)
    report["automatic_nuclei"] = vars(a)
    log(f"automatic nuclei: F1 {a.f1:.3f} (precision {a.precision:.3f}, recall {a.recall:.3f}; {a.n_found} found / {a.n_true} true)")
    default = AutomaticMaskGenerator(model, precision="fp32")
    relaxed = AutomaticMaskGenerator(model, precision="fp32", **RELAXED_FILTERS)
    for name in ("coins", "cell"):
        image = getattr(data, name)()
        counts = {
            "n_found": int(default.generate_labels(image).max()),
            "n_found_relaxed": int(relaxed.generate_labels(image).max()),
        }
        report[f"automatic_{name}"] = counts
        log(f"automatic {name}: {counts['n_found']} objects found ({counts['n_found_relaxed']} with {RELAXED_FILTERS})")
    return report
