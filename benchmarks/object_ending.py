"""Where propagated nuclei end in the BBBC050 z-stacks, with and without object ending.

Each nucleus is clicked at the centre of its middle slice and propagated both ways with the
built-in model; the table compares the slices painted with the nucleus's true slice range.
Usage: python benchmarks/object_ending.py [DATA_DIR] [--official]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import tifffile
import torch

from napari_sam2 import load_model
from napari_sam2.engine.tracker import StackTracker


def run(folder: str, stage: str, ending: bool) -> list[tuple]:
    image = tifffile.imread(f"{folder}/{stage}_image.tif")
    truth = tifffile.imread(f"{folder}/{stage}_labels.tif")
    kwargs = {} if ending else {"ending": None}
    tracker = StackTracker(load_model(), image, **kwargs)
    ranges = {}
    for label in np.unique(truth)[1:]:
        z = np.nonzero((truth == label).any(axis=(1, 2)))[0]
        ranges[int(label)] = (int(z.min()), int(z.max()))
        mid = (z.min() + z.max()) // 2
        ys, xs = np.nonzero(truth[mid] == label)
        tracker.add_points(int(mid), int(label), [[xs.mean(), ys.mean()]])
    painted = {k: set() for k in ranges}
    dice = {k: [] for k in ranges}
    for r in tracker.propagate("both"):
        for i, obj in enumerate(r.obj_ids):
            if r.masks[i].any():
                painted[obj].add(r.frame)
            t = truth[r.frame] == obj
            if t.any() or r.masks[i].any():
                dice[obj].append(2 * (t & r.masks[i]).sum() / (t.sum() + r.masks[i].sum()))
    rows = []
    for k, (lo, hi) in ranges.items():
        p = sorted(painted[k])
        true = set(range(lo, hi + 1))
        rows.append((stage, k, lo, hi, min(p) if p else -1, max(p) if p else -1, len(set(p) - true), len(true - set(p)), float(np.mean(dice[k]))))
    return rows


def main() -> None:
    torch.set_num_threads(2)
    folder = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "/work/shared/data/bbbc050"
    ending = "--official" not in sys.argv
    print(f"object ending {'on (defaults)' if ending else 'off (official)'}")
    print("stack  nucleus  true_first  true_last  painted_first  painted_last  extra_slices  missed_slices  dice")
    totals = []
    for stage in ("8_cell_stage", "16_cell_stage"):
        t0 = time.perf_counter()
        for row in run(folder, stage, ending):
            print("  ".join(str(round(v, 3)) if isinstance(v, float) else str(v) for v in row))
            totals.append(row)
        print(f"# {stage}: {time.perf_counter() - t0:.0f} s")
    extra = sum(r[6] for r in totals)
    missed = sum(r[7] for r in totals)
    true = sum(r[3] - r[2] + 1 for r in totals)
    print(f"total: {len(totals)} nuclei, {true} true slices, {extra} extra slices painted, {missed} missed, mean dice {np.mean([r[8] for r in totals]):.3f}")


if __name__ == "__main__":
    main()
