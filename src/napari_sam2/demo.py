"""The offline demo: click every nucleus of a synthetic image and compare with its ground truth."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError
from .loading import DEFAULT_MODEL, build_model, load_model
from .predictor import ImagePredictor
from .synthetic import nuclei_image


def _model(name: str | None, device: str):
    if name is not None:
        return load_model(name, device=device), name
    try:  # the demo runs offline: only weights already on this machine are used
        return load_model(DEFAULT_MODEL, device=device, offline=True), DEFAULT_MODEL
    except CheckpointError:
        note = f"{DEFAULT_MODEL} with RANDOM weights (no weights on this machine: masks are meaningless)"
        return build_model(DEFAULT_MODEL, device=device), note


def run_demo(model_name: str | None, out: str, device: str = "auto", precision: str = "auto") -> dict:
    """Segment each nucleus with one click at its centre; write labels (TIFF) and an overlay (PNG)."""
    import tifffile
    from skimage import io, measure
    from skimage.color import label2rgb

    started = time.perf_counter()
    model, description = _model(model_name, device)
    image, truth = nuclei_image(seed=0)
    predictor = ImagePredictor(model, precision=precision)
    t0 = time.perf_counter()
    predictor.set_image(image)
    embed_time = time.perf_counter() - t0
    labels = np.zeros(truth.shape, dtype=np.uint32)
    ious, click_times = [], []
    for region in measure.regionprops(truth):
        y, x = region.centroid
        t0 = time.perf_counter()
        result = predictor.predict(points=[[x, y]])
        click_times.append(time.perf_counter() - t0)
        mask = result.masks[result.best]
        labels[mask & (labels == 0)] = region.label
        gt = truth == region.label
        ious.append((mask & gt).sum() / max((mask | gt).sum(), 1))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / "labels.tif", labels)
    gray = (image - image.min()) / max(np.ptp(image), 1)
    overlay = label2rgb(labels, image=gray, alpha=0.35, bg_label=0)
    io.imsave(folder / "overlay.png", (overlay * 255).astype(np.uint8), check_contrast=False)
    summary = {
        "model": description,
        "device": str(predictor.device),
        "precision": str(predictor.dtype).replace("torch.", ""),
        "objects": len(ious),
        "mean_iou": float(np.mean(ious)),
        "embed_seconds": embed_time,
        "click_seconds": float(np.mean(click_times)),
        "total_seconds": time.perf_counter() - started,
    }
    print(f"model:      {summary['model']}")
    print(f"device:     {summary['device']} ({summary['precision']})")
    print(f"image:      {image.shape[1]}x{image.shape[0]} {image.dtype}, {len(ious)} nuclei")
    print(f"embedding:  {embed_time:.2f} s; one click -> mask: {1000 * summary['click_seconds']:.0f} ms")
    print(f"mean IoU against ground truth (one click per nucleus): {summary['mean_iou']:.3f}")
    print(f"wrote {folder / 'labels.tif'} and {folder / 'overlay.png'}")
    return summary
