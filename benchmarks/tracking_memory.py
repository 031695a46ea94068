"""Peak memory of tracking 50 vs 500 frames: ours stays flat, the official grows.

    python benchmarks/tracking_memory.py [--frames 50 500] [--image-size 256]

Each run is a fresh subprocess (peak RSS from getrusage). Frames are 512x512 8-bit; one object
clicked on frame 0 and tracked forward through the whole stack, tiny model with random weights.
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, have_oracle, print_table

CHILD = r"""
import json, resource, sys
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, {root!r})
which, n, size, folder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

class Movie:
    # Frames made on demand: nothing but the tracker's own memory is measured.
    shape, dtype = (n, 512, 512, 3), np.dtype(np.uint8)
    def __getitem__(self, key):
        t = key[0] if isinstance(key, tuple) else key
        frame = np.random.default_rng(t).integers(0, 255, (512, 512, 1), dtype=np.uint8)
        return np.repeat(frame, 3, axis=-1)[key[1:]] if isinstance(key, tuple) else np.repeat(frame, 3, axis=-1)

if which == "ours":
    from napari_sam2 import build_model
    from napari_sam2.engine.tracker import StackTracker
    model = build_model("sam2.1_hiera_tiny", device="cpu", image_size=size)
    tracker = StackTracker(model, Movie(), precision="fp32", normalization=None)
    tracker.add_points(0, 1, [[256, 256]])
    for r in tracker.propagate("forward"):
        pass
else:
    from tests.parity.oracle import build_oracle
    predictor = build_oracle("sam2.1_hiera_tiny", image_size=size, video=True)
    with torch.inference_mode():
        state = predictor.init_state(folder)
        predictor.add_new_points_or_box(state, 0, 1, points=np.array([[256, 256]], np.float32), labels=np.array([1], np.int32))
        for _ in predictor.propagate_in_video(state):
            pass
print(json.dumps({{"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def write_jpegs(n: int) -> str:
    """The same frames as JPEG files, for the official predictor (written by this process)."""
    import numpy as np
    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="napari-sam2-bench-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for t in range(n):
        frame = np.random.default_rng(t).integers(0, 255, (512, 512, 1), dtype=np.uint8)
        Image.fromarray(np.repeat(frame, 3, axis=-1)).save(folder / f"{t}.jpg")
    return str(folder)


def peak_mb(which: str, n: int, size: int) -> float:
    code = CHILD.format(root=str(ROOT))
    folder = write_jpegs(n) if which == "official" else ""
    out = subprocess.run([sys.executable, "-c", code, which, str(n), str(size), folder], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs=2, default=[50, 500])
    parser.add_argument("--image-size", type=int, default=256)
    args = parser.parse_args()
    small, large = args.frames
    rows = []
    sides = ["ours"] + (["official"] if have_oracle() else [])
    for which in sides:
        a, b = peak_mb(which, small, args.image_size), peak_mb(which, large, args.image_size)
        rows.append([which, a, b, f"{100 * (b - a) / a:+.1f}%"])
    print_table(
        f"Peak RSS tracking one object, 512x512 frames, tiny at {args.image_size} px (MB)",
        ["implementation", f"{small} frames", f"{large} frames", "growth"],
        rows,
    )


if __name__ == "__main__":
    main()
