"""Tracking speed: seconds per frame for 1, 4 and 16 objects, ours beside the official, one run.

    python benchmarks/tracking.py [--variant sam2.1_hiera_tiny] [--frames 5] [--image-size 1024]
                                  [--warmup 1] [--compile]
    python benchmarks/tracking.py --given-masks 7 [--objects 1 4] [--repeats 3]

Frames are 512x512; every object gets one click on frame 0; the time of the tracked frames after
the first `--warmup` is averaged (raise it with --compile: the first frames compile).
Same random weights on both sides; the official predictor runs objects one after another.

With --given-masks M every object is a bright disc given as a mask on frames 0..M-1 (a full
memory bank, and an object where a window expects it whatever the weights), and frame M is
timed with its encoding (best of --repeats), ours over whole frames and in windows
(`window=256`) beside the official.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import have_oracle, machine_line, print_table

from napari_sam2 import build_model
from napari_sam2.engine.tracker import StackTracker


def movie(n: int, size: int = 512) -> np.ndarray:
    rng = np.random.default_rng(0)
    frames = rng.normal(40, 8, (n, size, size)) + np.linspace(0, 60, size)[None, None]
    return np.repeat(np.clip(frames, 0, 255).astype(np.uint8)[..., None], 3, -1)


def clicks(k: int, size: int = 512) -> list[list[float]]:
    side = int(np.ceil(np.sqrt(k)))
    grid = (np.arange(side) + 0.5) * size / side
    return [[float(x), float(y)] for y in grid for x in grid][:k]


def steady(times: list[float], warmup: int) -> float:
    """Mean seconds per tracked frame after the warm-up frames (all of them if too few)."""
    return float(np.mean(times[warmup:] if len(times) > warmup else times))


def ours_per_frame(model, frames, k, precision, warmup, compiled=False) -> float:
    tracker = StackTracker(model, frames, precision=precision, normalization=None, compile=compiled)
    for obj_id, point in enumerate(clicks(k), start=1):
        tracker.add_points(0, obj_id, [point])
    times, last = [], time.perf_counter()
    for result in tracker.propagate("forward"):
        now = time.perf_counter()
        if result.frame > 0:
            times.append(now - last)
        last = now
    return steady(times, warmup)


def official_per_frame(predictor, folder, k, warmup) -> float:
    with torch.inference_mode():
        state = predictor.init_state(str(folder))
        for obj_id, point in enumerate(clicks(k), start=1):
            predictor.add_new_points_or_box(state, 0, obj_id, points=np.array([point], np.float32), labels=np.array([1], np.int32))
        times, last = [], time.perf_counter()
        for frame, _, _ in predictor.propagate_in_video(state):
            now = time.perf_counter()
            if frame > 0:
                times.append(now - last)
            last = now
    return steady(times, warmup)


def disc_movie(n: int, k: int, size: int = 512) -> tuple[np.ndarray, list[np.ndarray]]:
    """n frames with k bright discs (radius 15 px) on the click grid, and the discs' masks."""
    frames = movie(n, size).copy()
    yy, xx = np.mgrid[:size, :size]
    discs = [(yy - y) ** 2 + (xx - x) ** 2 < 15**2 for x, y in clicks(k, size)]
    for disc in discs:
        frames[:, disc] = 230
    return frames, discs


def ours_given_masks(model, frames, discs, precision, window, repeats) -> float:
    """Seconds to track the last frame (its encoding included) after masks on all before it."""
    last, best = len(frames) - 1, float("inf")
    for _ in range(repeats):
        tracker = StackTracker(model, frames, precision=precision, normalization=None, window=window, ending=None)
        for t in range(last):
            for obj_id, disc in enumerate(discs, start=1):
                tracker.add_mask(t, obj_id, disc)
        tracker._encode_prompt_memories()  # as the official's preflight does before its first frame
        start = time.perf_counter()
        tracker.track(last)
        best = min(best, time.perf_counter() - start)
    return best


def official_given_masks(predictor, folder, discs, n, repeats) -> float:
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            state = predictor.init_state(str(folder))
            for t in range(n - 1):
                for obj_id, disc in enumerate(discs, start=1):
                    predictor.add_new_mask(state, t, obj_id, disc)
            start = None
            for frame, _, _ in predictor.propagate_in_video(state):
                if frame == n - 2:
                    start = time.perf_counter()  # the prompted frames come back without work
                elif frame == n - 1:
                    best = min(best, time.perf_counter() - start)
    return best


def given_masks(args, model, predictor) -> None:
    n = args.given_masks + 1
    rows = []
    for k in args.objects:
        frames, discs = disc_movie(n, k)
        official = float("nan")
        if predictor is not None:
            from PIL import Image

            folder = Path(tempfile.mkdtemp(prefix="napari-sam2-bench-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            for t, frame in enumerate(frames):
                Image.fromarray(frame).save(folder / f"{t}.jpg", quality=95)  # the official reads JPEG folders
            official = official_given_masks(predictor, folder, discs, n, args.repeats)
        whole = ours_given_masks(model, frames, discs, "fp32", None, args.repeats)
        windows = ours_given_masks(model, frames, discs, "fp32", 256, args.repeats)
        fast = ours_given_masks(model, frames, discs, "auto", 256, args.repeats)
        int8 = ours_given_masks(model, frames, discs, "int8", 256, args.repeats)
        rows.append([k, whole, windows, fast, int8, official, whole / official, windows / official,
                     fast / official, int8 / official])
    print(machine_line())
    print_table(
        f"Tracking one frame after masks on {args.given_masks}, {args.variant} at {args.image_size} px, "
        "512x512 frames (seconds, encoding included, best of "
        f"{args.repeats})",
        ["objects", "ours fp32 whole", "ours fp32 windows", "ours fast windows", "ours int8 windows",
         "official fp32", "whole ratio", "windows ratio", "fast windows ratio", "int8 windows ratio"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="sam2.1_hiera_tiny")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--objects", type=int, nargs="*", default=[1, 4, 16])
    parser.add_argument("--warmup", type=int, default=1, help="tracked frames left out of the mean")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile path")
    parser.add_argument("--given-masks", type=int, default=0, help="masks on this many frames, then one frame timed")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    frames = movie(args.frames)
    model = build_model(args.variant, device="cpu", image_size=args.image_size)
    predictor, folder = None, None
    if have_oracle():
        from PIL import Image

        from tests.parity.oracle import build_oracle

        predictor = build_oracle(args.variant, image_size=args.image_size, video=True)
        model.load_state_dict(predictor.state_dict())
        if args.given_masks:
            return given_masks(args, model, predictor)
        folder = Path(tempfile.mkdtemp(prefix="napari-sam2-bench-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        for t, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / f"{t}.jpg")
    rows = []
    for k in args.objects:
        official = official_per_frame(predictor, folder, k, args.warmup) if predictor is not None else float("nan")
        exact = ours_per_frame(model, frames, k, "fp32", args.warmup)
        fast = ours_per_frame(model, frames, k, "auto", args.warmup)
        row = [k, exact, fast, official, exact / official, fast / official]
        if args.compile:
            compiled = ours_per_frame(model, frames, k, "auto", args.warmup, compiled=True)
            row += [compiled, compiled / official]
        rows.append(row)
    header = ["objects", "ours fp32", "ours fast", "official fp32", "fp32 ratio", "fast ratio"]
    if args.compile:
        header += ["ours fast+compile", "compiled ratio"]
    print(machine_line())
    print_table(
        f"Tracking, {args.variant} at {args.image_size} px, 512x512 frames (seconds per frame, "
        f"mean over tracked frames {args.warmup + 1}-{args.frames - 1})", header, rows
    )


if __name__ == "__main__":
    main()
