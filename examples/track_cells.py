"""Track cells through a time-lapse from one click each on the first frame, streaming to disk.

    python examples/track_cells.py [MODEL] [OUT.tif]
"""

from __future__ import annotations

import sys

import numpy as np
from skimage import measure

import napari_sam2
from napari_sam2.api import propagate
from napari_sam2.synthetic import timelapse


def main(model: str | None = None, out: str | None = None) -> np.ndarray:
    movie, truth, _ = timelapse(n_frames=12, shape=(192, 192), n_cells=6, seed=0)
    prompts = {}
    for region in measure.regionprops(truth[0]):
        y, x = region.centroid
        prompts[region.label] = [{"frame": 0, "points": [[x, y]], "labels": [1]}]
    labels = propagate(
        movie,
        prompts,
        napari_sam2.load_model(model),
        out=out,  # a .tif path streams each frame to disk as it is tracked
        direction="forward",
        progress=lambda done, total: print(f"\rframe {done}/{total}", end="", flush=True),
    )
    print()
    kept = [np.mean([(labels[t] == i).any() for t in range(len(labels))]) for i in prompts]
    print(f"{len(prompts)} cells tracked; present in {np.mean(kept):.0%} of frames on average")
    return labels


if __name__ == "__main__":
    main(*(sys.argv[1:3]))
