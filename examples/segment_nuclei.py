"""Segment nuclei of a 16-bit image with one click each, and compare with the ground truth.

    python examples/segment_nuclei.py [MODEL]     # MODEL: preset name or .pt file (default: built-in)
"""

from __future__ import annotations

import sys

import numpy as np
from skimage import measure

import napari_sam2
from napari_sam2.synthetic import nuclei_image


def main(model: str | None = None) -> np.ndarray:
    image, truth = nuclei_image(seed=1)  # uint16 image and its ground-truth labels
    predictor = napari_sam2.ImagePredictor(napari_sam2.load_model(model))
    predictor.set_image(image)  # 16-bit: stretched between its 1st and 99.8th percentiles
    labels = np.zeros(image.shape, dtype=np.uint32)
    for region in measure.regionprops(truth):
        y, x = region.centroid
        result = predictor.predict(points=[[x, y]])  # (x, y) pixels
        labels[result.masks[result.best] & (labels == 0)] = region.label
    ious = [((labels == r) & (truth == r)).sum() / ((labels == r) | (truth == r)).sum() for r in np.unique(truth)[1:]]
    print(f"{len(ious)} nuclei, mean IoU {np.mean(ious):.3f}")
    return labels


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
