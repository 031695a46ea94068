"""How well a model does on real labelled microscopy, beside what ten lines of scikit-image give.

Interactive prompts (one click at the deepest interior point, a tight box, one click and two
corrections; plain and zoomed), segment-everything (F1 at IoU 0.5 and the DSB 2018 mean
average precision over IoU 0.5-0.95), z-stack propagation from one click per object on its
largest slice, and time-lapse tracking from one click per cell on the first frame. Baselines:
the Otsu component under the click, and Otsu + watershed for segment-everything. Figures are
split by modality where a dataset's index.csv names it. Images go in as read from disk, so the
numbers are what a user gets with default settings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.automatic import AutomaticMaskGenerator
from ..modeling.sam2 import SAM2Model
from .batches import object_ids
from .evaluate import iou, prompt_scores
from .prompt_sampling import centre_click
from .real_data import LabelledDataset

IOU_THRESHOLDS = np.arange(0.5, 1.0, 0.05)


@dataclass
class Sample:
    """One labelled image as stored, with its modality."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    modality: str


def load_samples(root: str | Path, limit: int | None = None, modalities=None) -> list[Sample]:
    """The images of a dataset folder (images/ + labels/, optional index.csv), in name order."""
    data = LabelledDataset(root, modalities, augment=False)
    n = len(data.pairs) if limit is None else min(limit, len(data.pairs))
    samples = []
    for i in range(n):
        image, labels = data.load(i)
        stem = data.pairs[i][0].stem
        samples.append(Sample(stem, np.asarray(image), np.asarray(labels), data.modality.get(stem, "all")))
    return samples


def by_modality(samples: list[Sample]) -> dict[str, list[Sample]]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.modality].append(s)
    return dict(sorted(groups.items()))


# ----------------------------------------------------------------------------------- matching


def iou_matrix(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """IoU of every true object (rows, ids 1..) with every found object (columns, ids 1..)."""
    t = np.unique(truth, return_inverse=True)[1].reshape(truth.shape)
    f = np.unique(found, return_inverse=True)[1].reshape(found.shape)
    nt, nf = int(t.max()) + 1, int(f.max()) + 1
    inter = np.bincount((t * nf + f).ravel(), minlength=nt * nf).reshape(nt, nf).astype(np.float64)
    area_t, area_f = inter.sum(1, keepdims=True), inter.sum(0, keepdims=True)
    union = area_t + area_f - inter
    ious = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    rows = slice(1, None) if (truth == 0).any() else slice(None)
    cols = slice(1, None) if (found == 0).any() else slice(None)
    return ious[rows, cols]


@dataclass
class Matching:
    """Object-level agreement of a label image with the truth."""

    f1: float  # at IoU > 0.5
    average_precision: float  # DSB 2018: mean over IoU 0.5..0.95 of TP / (TP + FP + FN)
    n_true: int
    n_found: int


def match(truth: np.ndarray, found: np.ndarray) -> Matching:
    ious = iou_matrix(truth, found)
    n_true, n_found = ious.shape
    if n_true == 0 and n_found == 0:
        return Matching(1.0, 1.0, 0, 0)
    precisions = []
    f1 = 0.0
    for t in IOU_THRESHOLDS:
        tp = int((ious > t).sum())  # above 0.5, a true object matches at most one found object
        precisions.append(tp / max(n_true + n_found - tp, 1))
        if t == IOU_THRESHOLDS[0]:
            f1 = 2 * tp / max(n_true + n_found, 1)
    return Matching(f1, float(np.mean(precisions)), n_true, n_found)


# ---------------------------------------------------------------------------------- baselines


def gray(image: np.ndarray) -> np.ndarray:
    """Float gray image (channels averaged)."""
    image = np.asarray(image, dtype=np.float64)
    return image[..., :3].mean(-1) if image.ndim == 3 else image


def otsu_click(image: np.ndarray, click_xy: np.ndarray) -> np.ndarray:
    """The Otsu component under a click: threshold the image, keep the side the click is on,
    return the connected component that holds the click."""
    from skimage.filters import threshold_otsu
    from skimage.measure import label

    g = gray(image)
    x, y = int(click_xy[0]), int(click_xy[1])
    fg = g > threshold_otsu(g) if g.max() > g.min() else np.ones(g.shape, bool)
    if not fg[y, x]:
        fg = ~fg
    components = label(fg, connectivity=1)
    return components == components[y, x]


def otsu_watershed(image: np.ndarray, min_area: int = 10) -> np.ndarray:
    """Otsu foreground (objects taken as the minority side) split by a distance-transform
    watershed: the textbook classical nuclei segmentation."""
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import watershed

    g = gray(image)
    if g.max() == g.min():
        return np.zeros(g.shape, np.uint32)
    fg = g > threshold_otsu(g)
    if fg.mean() > 0.5:
        fg = ~fg
    fg = remove_small_objects(ndimage.binary_fill_holes(fg), max_size=min_area - 1)
    distance = ndimage.distance_transform_edt(fg)
    peaks = peak_local_max(distance, min_distance=4, labels=ndimage.label(fg)[0], exclude_border=False)
    markers = np.zeros(g.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-distance, markers, mask=fg).astype(np.uint32)


# ----------------------------------------------------------------------------------- measures


def interactive(
    model: SAM2Model, samples: list[Sample], max_objects: int, zoom: bool = False, orientations: int | None = None
) -> dict:
    scores = prompt_scores(
        model, [(s.image, s.labels) for s in samples], max_objects=max_objects, zoom=zoom, orientations=orientations
    )
    return {"click": scores.click, "box": scores.box, "click_2_corrections": scores.click_2_corrections,
            "n_objects": scores.n_objects}


def otsu_click_score(samples: list[Sample], max_objects: int) -> float:
    values = [
        iou(otsu_click(s.image, centre_click(s.labels == obj)), s.labels == obj)
        for s in samples
        for obj in object_ids(s.labels)[:max_objects]
    ]
    return float(np.mean(values)) if values else float("nan")


def automatic(samples: list[Sample], segment: Callable[[np.ndarray], np.ndarray]) -> dict:
    """Mean F1@0.5 and mean average precision over images of `segment(image) -> labels`."""
    results = [match(s.labels, segment(s.image)) for s in samples]
    return {
        "f1": float(np.mean([r.f1 for r in results])),
        "average_precision": float(np.mean([r.average_precision for r in results])),
        "n_true": int(sum(r.n_true for r in results)),
        "n_found": int(sum(r.n_found for r in results)),
    }


def stack_iou(model: SAM2Model, stack: np.ndarray, labels: np.ndarray, precision: str = "bf16") -> dict:
    """3-D IoU per object, tracked through a z-stack from one click at the deepest point of its
    largest slice (all objects tracked together, both directions)."""
    from ..engine.tracker import StackTracker

    ids = [int(i) for i in np.unique(labels) if i]
    tracker = StackTracker(model, stack, precision=precision)
    for obj in ids:
        areas = (labels == obj).sum(axis=(1, 2))
        z = int(np.argmax(areas))
        tracker.add_points(z, obj, centre_click(labels[z] == obj)[None])
    found = np.zeros(labels.shape, np.uint32)
    for result in tracker.propagate("both"):
        for obj, mask in zip(result.obj_ids, result.masks):
            found[result.frame][mask & (found[result.frame] == 0)] = obj
    tracker.frames.close()
    per_object = [iou(found == obj, labels == obj) for obj in ids]
    return {"mean_iou_3d": float(np.mean(per_object)), "n_objects": len(ids), "n_slices": int(len(labels))}


def classical_stack_iou(stack: np.ndarray, labels: np.ndarray) -> dict:
    """The classical baseline of `stack_iou`: every slice segmented by Otsu + watershed, objects
    linked slice to slice by overlap (`tracking/classical.py`); each nucleus's 3-D IoU with the
    track most of it lies in."""
    from ..tracking.classical import classical_tracking

    found, _ = classical_tracking(stack, "otsu")
    per_object = []
    for obj in (int(i) for i in np.unique(labels) if i):
        truth = labels == obj
        under = found[truth]
        under = under[under > 0]
        per_object.append(iou(found == np.bincount(under).argmax(), truth) if len(under) else 0.0)
    return {"mean_iou_3d": float(np.mean(per_object)), "n_objects": len(per_object), "n_tracks": int(len(np.unique(found)) - 1)}


def timelapse_iou(model: SAM2Model, sequence: Path, truth: Path, precision: str = "bf16", last: int | None = None) -> dict:
    """Cell Tracking Challenge sequence: one click per cell on frame 0 (its TRA marker's
    deepest point), tracked forward; mean IoU against the full segmentation truth frames
    (SEG), each truth mask matched to a track by the TRA marker inside it."""
    import tifffile

    from ..engine.tracker import StackTracker

    seg_files = sorted((truth / "SEG").glob("man_seg*.tif"))
    seg_frames = [int(p.stem[len("man_seg"):]) for p in seg_files]
    last = max(seg_frames) if last is None else last
    frames = np.stack([tifffile.imread(sequence / f"t{t:03d}.tif") for t in range(last + 1)])
    markers0 = tifffile.imread(truth / "TRA" / "man_track000.tif")
    tracker = StackTracker(model, frames, precision=precision)
    ids = [int(i) for i in np.unique(markers0) if i]
    for obj in ids:
        tracker.add_points(0, obj, centre_click(markers0 == obj)[None])
    wanted = {t: None for t in seg_frames if t <= last}
    for result in tracker.propagate("forward"):
        if result.frame in wanted:
            found = np.zeros(frames.shape[1:], np.uint32)
            for obj, mask in zip(result.obj_ids, result.masks):
                found[mask & (found == 0)] = obj
            wanted[result.frame] = found
    tracker.frames.close()
    scores = []
    for t, found in wanted.items():
        seg = tifffile.imread(truth / "SEG" / f"man_seg{t:03d}.tif")
        markers = tifffile.imread(truth / "TRA" / f"man_track{t:03d}.tif")
        for obj in np.unique(seg[seg > 0]):
            region = seg == obj
            track_ids = np.unique(markers[region & (markers > 0)])
            if len(track_ids) == 1 and int(track_ids[0]) in ids:  # a cell present since frame 0
                scores.append(iou(found == track_ids[0], region))
    return {"mean_iou": float(np.mean(scores)) if scores else float("nan"), "n_cell_frames": len(scores),
            "frames": sorted(wanted), "n_cells_clicked": len(ids)}


# ------------------------------------------------------------------------------------ reports


def dataset_report(
    model: SAM2Model,
    root: str | Path,
    amg_options: dict | None = None,
    limit: int | None = None,
    max_objects: int = 20,
    zoom_objects: int = 6,
    log: Callable[[str], None] = print,
    orientations: int | None = None,
) -> dict:
    """Every 2-D measure on a labelled dataset folder, per modality, beside the baselines
    (prompts averaged over `orientations`, None: the model's default; `ImagePredictor`)."""
    samples = load_samples(root, limit)
    generator = AutomaticMaskGenerator(model, precision="fp32", **(amg_options or {}))
    report = {}
    for modality, group in by_modality(samples).items():
        entry = {
            "images": len(group),
            "prompts": interactive(model, group, max_objects, orientations=orientations),
            "prompts_zoom": interactive(model, group, zoom_objects, True, orientations) if zoom_objects else None,
            "otsu_click": otsu_click_score(group, max_objects),
            "automatic": automatic(group, generator.generate_labels),
            "otsu_watershed": automatic(group, otsu_watershed),
        }
        report[modality] = entry
        p, a, w = entry["prompts"], entry["automatic"], entry["otsu_watershed"]
        log(
            f"{Path(root).name} {modality} ({len(group)} images, {p['n_objects']} objects): "
            f"click {p['click']:.3f} (Otsu {entry['otsu_click']:.3f}), box {p['box']:.3f}, "
            f"click+2 {p['click_2_corrections']:.3f}; everything F1 {a['f1']:.3f} AP {a['average_precision']:.3f} "
            f"(watershed F1 {w['f1']:.3f} AP {w['average_precision']:.3f})"
        )
        if entry["prompts_zoom"]:
            z = entry["prompts_zoom"]
            log(f"    zoom: click {z['click']:.3f}, box {z['box']:.3f}, click+2 {z['click_2_corrections']:.3f} ({z['n_objects']} objects)")
    return report


def shared_report(model: SAM2Model, shared: str | Path, amg_options: dict | None = None, log: Callable[[str], None] = print, **options) -> dict:
    """The real sets in ../shared/data: DSB 2018 val (per modality), BBBC050 z-stacks, GOWT1 01."""
    import tifffile

    shared = Path(shared)
    report = {"dsb2018_val": dataset_report(model, shared / "dsb2018" / "val", amg_options, log=log, **options)}
    stacks = {}
    for name in ("8_cell_stage", "16_cell_stage"):
        stack = tifffile.imread(shared / "bbbc050" / f"{name}_image.tif")
        labels = tifffile.imread(shared / "bbbc050" / f"{name}_labels.tif")
        stacks[name] = stack_iou(model, stack, labels)
        stacks[name]["otsu_linked"] = classical_stack_iou(stack, labels)
        log(f"bbbc050 {name}: 3-D IoU {stacks[name]['mean_iou_3d']:.3f} ({stacks[name]['n_objects']} nuclei; "
            f"Otsu + watershed per slice, linked by overlap: {stacks[name]['otsu_linked']['mean_iou_3d']:.3f})")
    report["bbbc050"] = stacks
    ctc = shared / "ctc" / "Fluo-N2DH-GOWT1"
    report["gowt1_01"] = timelapse_iou(model, ctc / "01", ctc / "01_GT")
    g = report["gowt1_01"]
    log(f"GOWT1 01: tracked from frame 0, mean IoU {g['mean_iou']:.3f} on truth frames {g['frames']} ({g['n_cell_frames']} cell-frames)")
    return report


def calibrate_filters(
    model: SAM2Model,
    samples: list[Sample],
    pred_iou: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8),
    stability: tuple[float, ...] = (0.8, 0.85, 0.9, 0.95),
    log: Callable[[str], None] = print,
    points_per_side: int = 32,
) -> tuple[dict[str, float], list[dict]]:
    """Segment-everything's mask filters for a model, chosen on validation images: the pair with
    the best mean of F1@0.5 and average precision, averaged over modalities so that no modality
    is left out. Returns the chosen filters and every pair's scores."""
    groups = by_modality(samples)
    table = []
    for p in pred_iou:
        for s in stability:
            generator = AutomaticMaskGenerator(
                model, points_per_side, precision="fp32", pred_iou_thresh=p, stability_score_thresh=s
            )
            per = {m: automatic(g, generator.generate_labels) for m, g in groups.items()}
            score = float(np.mean([(r["f1"] + r["average_precision"]) / 2 for r in per.values()]))
            table.append({"pred_iou_thresh": p, "stability_score_thresh": s, "score": score, "per_modality": per})
            log(f"pred_iou {p:.2f} stability {s:.2f}: " + ", ".join(f"{m} F1 {r['f1']:.3f} AP {r['average_precision']:.3f}" for m, r in per.items()))
    best = max(table, key=lambda r: r["score"])
    return {"pred_iou_thresh": best["pred_iou_thresh"], "stability_score_thresh": best["stability_score_thresh"]}, table
