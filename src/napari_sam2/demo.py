"""The offline demo: prompt a few cells of a synthetic time-lapse, segment and track them, then
segment the real nuclei images that ship with the package, beside classical baselines.

Runs on the default model (the shipped one when no official weights are cached), writes the
label movie (TIFF), an overlay of the first and last frames (PNG) and the real images' labels,
and prints the IoU against the ground truth. With a display, `napari-sam2 demo` opens napari with the sample and the
widget instead (see `napari_sam2._widgets._demo_viewer`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from .checkpoints.files import CheckpointError
from .checkpoints.loading import build_model, default_model, load_model
from .engine.predictor import ImagePredictor
from .synthetic import timelapse
from .training.evaluate import iou
from .training.prompt_sampling import centre_click

DEMO_CELLS = 4


def has_display() -> bool:
    """Whether a window can open (macOS and Windows always; Linux with X11 or Wayland)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def demo_movie(n_frames: int = 30) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The sample time-lapse (also napari's sample), its labels, and cells to prompt: ones that
    stay in view and do not divide."""
    movie, truth, tracks = timelapse(n_frames=n_frames, shape=(256, 256), seed=0)
    parents = {p for (_, _, p) in tracks.values()}
    last = len(movie) - 1
    whole = [i for i, (a, b, _) in sorted(tracks.items()) if a == 0 and b == last and i not in parents]
    return movie, truth, whole[:DEMO_CELLS]


def _model(name: str | None, device: str):
    """The chosen model, else the default one from this machine (never downloading)."""
    if name is not None:
        return load_model(name, device=device), name
    name = default_model()
    try:
        return load_model(name, device=device, offline=True), name
    except CheckpointError:
        note = f"{name} with RANDOM weights (no weights on this machine: masks are meaningless)"
        return build_model(name, device=device), note


def run_demo(model_name: str | None, out: str, device: str = "auto", precision: str = "auto") -> dict:
    """Click each chosen cell on frame 0, track them all through the movie, write and score."""
    import tifffile

    from .engine.tracker import StackTracker

    started = time.perf_counter()
    model, name = _model(model_name, device)
    # Random weights make the masks meaningless: a short movie shows the workflow quickly.
    movie, truth, cells = demo_movie(8 if "RANDOM" in name else 30)
    clicks = {obj: centre_click(truth[0] == obj) for obj in cells}

    predictor = ImagePredictor(model, precision=precision)
    t0 = time.perf_counter()
    predictor.set_image(movie[0])
    embed_seconds = time.perf_counter() - t0
    click_ious = []
    for obj, point in clicks.items():
        result = predictor.predict(points=point[None])
        click_ious.append(iou(result.masks[result.best], truth[0] == obj))

    labels = np.zeros(movie.shape, dtype=np.uint32)
    tracker = StackTracker(model, movie, precision=precision)
    for obj, point in clicks.items():
        tracker.add_points(0, obj, point[None])
    t0 = time.perf_counter()
    track_ious = {obj: [] for obj in cells}
    for result in tracker.propagate("forward"):
        for obj, mask in zip(result.obj_ids, result.masks):
            labels[result.frame][mask] = obj
            track_ious[obj].append(iou(mask, truth[result.frame] == obj))
    track_seconds = time.perf_counter() - t0

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / "labels.tif", labels, compression="zlib")
    _write_overlay(folder / "overlay.png", movie, labels)
    per_cell = [float(np.mean(v)) for v in track_ious.values()]
    summary = {
        "model": name,
        "device": str(predictor.device),
        "precision": str(predictor.dtype).replace("torch.", ""),
        "cells": len(cells),
        "frames": len(movie),
        "click_iou": float(np.mean(click_ious)),
        "tracking_iou": float(np.mean(per_cell)),
        "identity_kept": float(np.mean([s > 0.5 for v in track_ious.values() for s in v])),
        "embed_seconds": embed_seconds,
        "seconds_per_frame": track_seconds / len(movie),
        "total_seconds": time.perf_counter() - started,
    }
    print(f"model:      {name} on {summary['device']} ({summary['precision']})")
    print(f"movie:      {len(movie)} frames of {movie.shape[2]}x{movie.shape[1]} {movie.dtype}; {len(cells)} cells clicked once on frame 0")
    print(f"frame 0:    embedding {embed_seconds:.2f} s; mean IoU of one click per cell: {summary['click_iou']:.3f}")
    print(f"tracking:   {summary['seconds_per_frame']:.2f} s per frame; mean IoU over all frames: {summary['tracking_iou']:.3f} "
          f"(per cell: {', '.join(f'{v:.2f}' for v in per_cell)}); on the right cell in {summary['identity_kept']:.0%} of frames")
    summary["real"] = real_figures(model, precision, folder, "RANDOM" in name)
    print(f"wrote {folder / 'labels.tif'} and {folder / 'overlay.png'}")
    return summary


def real_figures(model, precision: str, folder: Path, quick: bool = False) -> dict:
    """The shipped real samples (CC0 DSB 2018 nuclei): one click per nucleus and segment
    everything, each beside what a classical method gives on the same image."""
    import tifffile

    from .engine.automatic import AutomaticMaskGenerator
    from .images.samples import REAL_SAMPLES, real_sample
    from .training.real_eval import match, otsu_click, otsu_watershed

    predictor = ImagePredictor(model, precision=precision)
    generator = AutomaticMaskGenerator(model, precision=precision, points_per_side=16 if quick else 32)
    figures = {}
    for name in REAL_SAMPLES:
        image, truth = real_sample(name)
        predictor.set_image(image)
        ids = [int(i) for i in np.unique(truth) if i]
        clicks, otsu = [], []
        for obj in ids:
            target = truth == obj
            point = centre_click(target)
            result = predictor.predict(points=point[None])
            clicks.append(iou(result.masks[result.best], target))
            otsu.append(iou(otsu_click(image, point), target))
        t0 = time.perf_counter()
        found = generator.generate_labels(image)
        seconds = time.perf_counter() - t0
        tifffile.imwrite(folder / f"{name}_labels.tif", found, compression="zlib")
        auto, classical = match(truth, found), match(truth, otsu_watershed(image))
        figures[name] = {"nuclei": len(ids), "click_iou": float(np.mean(clicks)), "otsu_click_iou": float(np.mean(otsu)),
                         "everything_f1": auto.f1, "everything_ap": auto.average_precision,
                         "watershed_f1": classical.f1, "watershed_ap": classical.average_precision,
                         "found": auto.n_found, "everything_seconds": seconds}
        f = figures[name]
        print(f"{name}: {len(ids)} nuclei; one click each: mean IoU {f['click_iou']:.3f} (Otsu component under the click "
              f"{f['otsu_click_iou']:.3f}); segment everything: {f['found']} found, F1 {f['everything_f1']:.3f} "
              f"(Otsu + watershed {f['watershed_f1']:.3f}) in {seconds:.1f} s")
    return figures


def _write_overlay(path: Path, movie: np.ndarray, labels: np.ndarray) -> None:
    """First and last frames side by side, each object in its own colour."""
    from skimage import io
    from skimage.color import label2rgb

    panels = []
    for t in (0, len(movie) - 1):
        frame = movie[t].astype(np.float32)
        lo, hi = np.percentile(frame, (1, 99.8))
        gray = np.clip((frame - lo) / max(hi - lo, 1e-6), 0, 1)
        panels.append(label2rgb(labels[t], image=gray, alpha=0.35, bg_label=0))
    gap = np.ones((movie.shape[1], 4, 3))
    io.imsave(path, (np.concatenate([panels[0], gap, panels[1]], axis=1) * 255).astype(np.uint8), check_contrast=False)
