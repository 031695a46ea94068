"""Sample data: synthetic microscopy with exact ground truth, and scikit-image's bundled `cell`.

Each function returns napari layer-data tuples (the image, then its ground-truth labels).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import synthetic

LayerData = list[tuple[Any, dict[str, Any], str]]


def _ground_truth(labels: np.ndarray, name: str, **kwargs: Any) -> tuple[Any, dict[str, Any], str]:
    return (
        labels,
        {"name": f"{name} ground truth", "opacity": 0.4, "visible": False, **kwargs},
        "labels",
    )


def timelapse() -> LayerData:
    """A 16-bit time-lapse (T, Y, X) of moving, dividing nuclei, with their tracked labels."""
    make = getattr(synthetic, "timelapse", None)
    if make is None:  # older engine: a still image drifting through 20 frames
        image, labels = synthetic.nuclei_image((256, 256))
        movie = np.stack([np.roll(image, 2 * t, axis=1) for t in range(20)])
        truth = np.stack([np.roll(labels, 2 * t, axis=1) for t in range(20)])
    else:
        movie, truth, _ = make(n_frames=30, shape=(256, 256), seed=0)
    meta = {"axis_labels": ("t", "y", "x")}
    return [
        (movie, {"name": "time-lapse", **meta}, "image"),
        _ground_truth(truth, "time-lapse", **meta),
    ]


def zstack() -> LayerData:
    """A 16-bit z-stack (Z, Y, X) of nuclei, slices 2 pixels apart, with their 3-D labels."""
    make = getattr(synthetic, "zstack", None)
    if make is None:  # older engine: one plane
        image, labels = synthetic.nuclei_image((256, 256))
        stack, truth, meta = image, labels, {}
    else:
        stack, truth = make(n_slices=32, shape=(256, 256), seed=0, z_scale=2.0)
        meta = {"axis_labels": ("z", "y", "x"), "scale": (2.0, 1.0, 1.0)}
    return [(stack, {"name": "z-stack", **meta}, "image"), _ground_truth(truth, "z-stack", **meta)]


def cell() -> LayerData:
    """scikit-image's `cell` (660 x 550, 8-bit); it has no ground truth, so only the image."""
    from skimage import data

    return [(data.cell(), {"name": "cell"}, "image")]
