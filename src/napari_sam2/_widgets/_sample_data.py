"""Sample data: two real CC0 nuclei images with expert labels, synthetic microscopy with exact
ground truth, and scikit-image's bundled `cell`.

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
    movie, truth, _ = synthetic.timelapse(n_frames=30, shape=(256, 256), seed=0)
    meta = {"axis_labels": ("t", "y", "x")}
    return [
        (movie, {"name": "time-lapse", **meta}, "image"),
        _ground_truth(truth, "time-lapse", **meta),
    ]


def zstack() -> LayerData:
    """A 16-bit z-stack (Z, Y, X) of nuclei, slices 2 pixels apart, with their 3-D labels."""
    stack, truth = synthetic.zstack(n_slices=32, shape=(256, 256), seed=0, z_scale=2.0)
    meta = {"axis_labels": ("z", "y", "x"), "scale": (2.0, 1.0, 1.0)}
    return [(stack, {"name": "z-stack", **meta}, "image"), _ground_truth(truth, "z-stack", **meta)]


def _real(name: str) -> LayerData:
    from ..images.samples import real_sample

    image, labels = real_sample(name)
    kind = {"rgb": True} if image.ndim == 3 else {}
    return [(image, {"name": name, **kind}, "image"), _ground_truth(labels, name)]


def nuclei_fluorescence() -> LayerData:
    """Real fluorescence nuclei (DSB 2018, CC0; 256 x 256 uint8, 60 nuclei) with expert labels."""
    return _real("nuclei_fluorescence")


def nuclei_histology() -> LayerData:
    """Real stained-tissue nuclei (DSB 2018, CC0; 256 x 320 RGB, 73 nuclei) with expert labels."""
    return _real("nuclei_histology")


def cell() -> LayerData:
    """scikit-image's `cell` (660 x 550, 8-bit); it has no ground truth, so only the image."""
    from skimage import data

    return [(data.cell(), {"name": "cell"}, "image")]
