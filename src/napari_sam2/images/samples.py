"""Real microscopy that ships with the package: two CC0 nuclei images with expert labels (DSB
2018), for napari's sample menu, the demo and quick checks (see samples/README.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

REAL_SAMPLES = {
    "nuclei_fluorescence": "fluorescence nuclei, some touching (DSB 2018, CC0)",
    "nuclei_histology": "stained tissue nuclei (DSB 2018, CC0)",
}


def real_sample(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(image as stored, uint32 instance labels) of a shipped real sample."""
    if name not in REAL_SAMPLES:
        raise KeyError(f"no sample {name!r}; the samples are {', '.join(REAL_SAMPLES)}.")
    from .io import read_image

    folder = Path(str(resources.files("napari_sam2") / "samples"))
    image = np.asarray(read_image(folder / f"{name}.png"))
    labels = np.asarray(read_image(folder / f"{name}_labels.tif")).astype(np.uint32)
    return image, labels
