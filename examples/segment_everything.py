"""Automatic segmentation of scikit-image's `coins` into a label image.

    python examples/segment_everything.py [MODEL]
"""

from __future__ import annotations

import sys

import numpy as np
import skimage.data

import napari_sam2
from napari_sam2.api import segment_everything


def main(model: str | None = None, points_per_side: int = 16, **params) -> np.ndarray:
    labels = segment_everything(
        skimage.data.coins(),
        napari_sam2.load_model(model),
        points_per_side=points_per_side,
        progress=lambda done, total: print(f"\rbatch {done}/{total}", end="", flush=True),
        **params,
    )
    print(f"\n{labels.max()} objects")
    return labels


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
