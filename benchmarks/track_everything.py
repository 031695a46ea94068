"""track_everything measured with the Cell Tracking Challenge's own metrics (py-ctcmetrics).

  python benchmarks/track_everything.py gowt1 [--frames N] [--data DIR] [--window 0] [--gamma G]   DET, SEG,
      TRA and the two divisions on Fluo-N2DH-GOWT1/01 (92 frames, 1024 px) with the built-in
      model, in windows of up to 256 model-input pixels (the default) or over whole frames
  python benchmarks/track_everything.py synthetic [--movies N]           divisions found with
      the right parent, DET/SEG/TRA, on synthetic nuclei movies with divisions
  Both take --model CHECKPOINT (e.g. a training run's best.pt) instead of the built-in model.
  Both print, in the same run, the classical trackers (Otsu or triangle threshold + watershed on
  every frame, linked by overlap; tracking/classical.py) scored the same way (--no-baseline: skip)
  python benchmarks/track_everything.py speed [--model M --size S --objects 1 16 --window 0 256]
      seconds per frame with 1, 10 and 100 objects over whole frames and in windows (<= 256 px)
      (512 px frames, built-in model)
Timings depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_sam2 import load_model
from napari_sam2.images.ctc import FrameFolder, ctc_tracks, read_tracks, write_ctc
from napari_sam2.images.normalization import auto_normalization
from napari_sam2.tracking.classical import classical_tracking
from napari_sam2.tracking.everything import track_everything

GOWT1 = "/work/shared/data/ctc/Fluo-N2DH-GOWT1"


def ctc_scores(res: Path, gt: Path) -> dict:
    from ctc_metrics import evaluate_sequence

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = evaluate_sequence(str(res), str(gt), metrics=["DET", "SEG", "TRA"], threads=1)
    return {k: round(float(scores[k]), 3) for k in ("DET", "SEG", "TRA") if scores.get(k) is not None}


def divisions_found(ours: dict, truth: dict, our_labels, true_markers, both_seen: bool = False) -> tuple[int, int]:
    """Of the true divisions, how many we found with the right parent: our tracks under the
    daughters' markers on their first frame have as parent our track under the mother's marker
    on her last frame. both_seen: only divisions whose two daughters are in the field."""
    mothers: dict[int, list[int]] = {}
    for label, (_, _, parent) in truth.items():
        if parent:
            mothers.setdefault(parent, []).append(label)
    if both_seen:
        mothers = {m: d for m, d in mothers.items() if len(d) == 2}
    found = 0
    for mother, daughters in mothers.items():
        last = truth[mother][1]
        ours_mother = _ours_under(our_labels[last], true_markers(last) == mother)
        ok = ours_mother > 0
        for d in daughters:
            first = truth[d][0]
            ours_d = _ours_under(our_labels[first], true_markers(first) == d)
            ok = ok and ours_d > 0 and ours.get(ours_d, (0, 0, 0))[2] == ours_mother
        found += ok
    return found, len(mothers)


def _ours_under(labels: np.ndarray, where: np.ndarray) -> int:
    values = labels[where]
    values = values[values > 0]
    return int(np.bincount(values).argmax()) if len(values) else 0


def gt_subset(gt: Path, frames: int, out: Path) -> Path:
    """The ground truth of the first `frames` frames (markers, segmentations, clipped tracks)."""
    (out / "TRA").mkdir(parents=True)
    (out / "SEG").mkdir()
    tracks = {}
    for label, (a, b, p) in read_tracks(gt / "TRA" / "man_track.txt").items():
        if a < frames:
            tracks[label] = (a, min(b, frames - 1), p)
    lines = [f"{k} {a} {b} {p}" for k, (a, b, p) in sorted(tracks.items())]
    (out / "TRA" / "man_track.txt").write_text("\n".join(lines) + "\n")
    for t in range(frames):
        shutil.copy(gt / "TRA" / f"man_track{t:03d}.tif", out / "TRA")
        seg = gt / "SEG" / f"man_seg{t:03d}.tif"
        if seg.exists():
            shutil.copy(seg, out / "SEG")
    return out


def gowt1(args) -> None:
    data = Path(args.data)
    frames = FrameFolder(data / "01")
    n = min(args.frames or len(frames), len(frames))
    movie = frames if n == len(frames) else np.stack([frames[t] for t in range(n)])
    model = load_model(args.model)
    t0 = time.perf_counter()
    normalization = "auto" if args.gamma is None else auto_normalization(movie).with_gamma(args.gamma)
    result = track_everything(
        movie, model, detect_every=args.detect_every, window=args.window or None, precision=args.precision,
        normalization=normalization, direction=args.direction, memory=args.memory,
    )
    seconds = time.perf_counter() - t0
    gamma = "" if args.gamma is None else f", gamma {args.gamma:g}"
    rows = [(f"track_everything, built-in model, {_mode(args.window, args.memory)}{gamma}{_backward(args)}", result.ctc(), seconds)]
    if args.baseline:
        rows += baselines(np.stack([frames[t] for t in range(n)]))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gt = data / "01_GT" if n == len(frames) else gt_subset(data / "01_GT", n, tmp / "01_GT")
        truth = read_tracks(gt / "TRA" / "man_track.txt")
        print(f"GOWT1 01, {n} frames (truth: {len(truth)} tracks, 2 divisions)")
        print("| tracker | DET | SEG | TRA | divisions found | divisions reported | tracks | seconds |")
        print("|---|---|---|---|---|---|---|---|")
        for k, (name, (labels, ours), secs) in enumerate(rows):
            res = _write(labels, ours, tmp / f"{k}_RES")
            scores = ctc_scores(res, gt)
            found, total = divisions_found(ours, truth, labels, lambda t: tifffile.imread(gt / "TRA" / f"man_track{t:03d}.tif"))
            print(f"| {name} | {scores.get('DET')} | {scores.get('SEG')} | {scores.get('TRA')} | {found}/{total} | "
                  f"{_reported(ours)} | {len(ours)} | {secs:.0f} |", flush=True)


def baselines(movie: np.ndarray) -> list:
    """The classical trackers on the same movie: (name, (CTC labels, tracks), seconds)."""
    rows = []
    for threshold in ("otsu", "triangle"):
        t0 = time.perf_counter()
        labels, parents = classical_tracking(movie, threshold)
        seconds = time.perf_counter() - t0
        rows.append((f"classical: {threshold} + watershed, overlap links", ctc_tracks(labels, parents), seconds))
    return rows


def _backward(args) -> str:
    return ", backward" if args.direction == "backward" else ""


def _write(labels: np.ndarray, tracks: dict, out: Path) -> Path:
    return write_ctc(out, ((t, labels[t]) for t in range(len(labels))), tracks)


def _reported(tracks: dict) -> int:
    """Divisions reported: tracks that are parents of two."""
    children: dict[int, int] = {}
    for _, _, p in tracks.values():
        if p:
            children[p] = children.get(p, 0) + 1
    return sum(1 for n in children.values() if n >= 2)


def synthetic(args) -> None:
    from napari_sam2.synthetic.movie import Motion, timelapse

    model = load_model(args.model)
    names: list[str] = []
    totals: dict[str, np.ndarray] = {}  # name -> found, total, found of both seen, both seen, reported, DET, SEG, TRA
    for seed in range(args.movies):
        movie, truth_labels, truth = timelapse(
            n_frames=args.length, shape=(256, 256), n_cells=12, seed=seed, motion=Motion(division_rate=0.03)
        )
        t0 = time.perf_counter()
        result = track_everything(
            movie, model, window=args.window or None, precision=args.precision, direction=args.direction,
            memory=args.memory,
        )
        rows = [(f"track_everything, built-in model, {_mode(args.window, args.memory)}{_backward(args)}", result.ctc(), time.perf_counter() - t0)]
        if args.baseline:
            rows += baselines(movie)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            gt_labels, gt_tracks = ctc_tracks(truth_labels, {k: p for k, (_, _, p) in truth.items() if p})
            write_ctc(tmp / "GT" / "TRA", ((t, gt_labels[t]) for t in range(len(gt_labels))), gt_tracks)
            for p in (tmp / "GT" / "TRA").glob("mask*.tif"):
                p.rename(p.with_name("man_track" + p.name[4:]))
            (tmp / "GT" / "TRA" / "res_track.txt").rename(tmp / "GT" / "TRA" / "man_track.txt")
            shutil.copytree(tmp / "GT" / "TRA", tmp / "GT" / "SEG")
            for p in (tmp / "GT" / "SEG").glob("man_track*.tif"):
                p.rename(p.with_name("man_seg" + p.name[9:]))
            for k, (name, (labels, ours), secs) in enumerate(rows):
                scores = ctc_scores(_write(labels, ours, tmp / f"{k}_RES"), tmp / "GT")
                f, n = divisions_found(ours, truth, labels, lambda t: truth_labels[t])
                f2, n2 = divisions_found(ours, truth, labels, lambda t: truth_labels[t], both_seen=True)
                row = np.array([f, n, f2, n2, _reported(ours), scores["DET"], scores["SEG"], scores["TRA"]])
                if name not in totals:
                    names.append(name)
                    totals[name] = np.zeros(8)
                totals[name] += row
                print(f"movie {seed}, {name}: divisions {f}/{n}, {scores}, {secs:.0f} s", flush=True)
    print(f"synthetic, {args.movies} movies of {args.length} frames (DET/SEG/TRA: mean over movies)")
    print("| tracker | divisions found, right parent | of those with both daughters in the field | reported | DET | SEG | TRA |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        f, n, f2, n2, rep, det, seg, tra = totals[name]
        m = args.movies
        print(f"| {name} | {f:.0f}/{n:.0f} ({100 * f / max(n, 1):.0f}%) | {f2:.0f}/{n2:.0f} ({100 * f2 / max(n2, 1):.0f}%) | "
              f"{rep:.0f} | {det / m:.3f} | {seg / m:.3f} | {tra / m:.3f} |")


def speed(args) -> None:
    """Seconds per frame (encoding included) with n objects, over whole frames and in windows.

    Every object is given as a mask on frames 0-6, so the memory bank is full (seven frames) and
    every object is where its window expects it whatever the weights (presets have random
    ones); frame 7 is then tracked `--frames` times, encoding it each time."""
    from napari_sam2 import build_model
    from napari_sam2.engine.tracker import StackTracker

    model = build_model(args.model, device="cpu") if args.model else load_model()
    size, n_max = args.size, max(args.objects)
    side = int(np.ceil(np.sqrt(n_max)))
    step = size // side
    radius = args.radius or max(4, min(int(step * 0.3), size * 15 // 512))
    rng = np.random.default_rng(0)
    movie = rng.integers(80, 120, (8, size, size)).astype(np.uint16)
    yy, xx = np.mgrid[:size, :size]
    centres = [(step // 2 + step * (i // side), step // 2 + step * (i % side)) for i in range(n_max)]
    discs = [(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2 for cy, cx in centres]
    for disc in discs:
        movie[:, disc] += 800
    name = args.model or "built-in"
    print(f"{name}, {size} px frames, discs of radius {radius} px, {args.frames} timed frames, precision {args.precision}")
    print("| objects | " + " | ".join(f"{_mode(w, args.memory)} s/frame | ratio to 1 object" for w in args.window) + " |")
    base: dict[int, float] = {}
    for n in args.objects:
        cells = []
        for window in args.window:
            tracker = StackTracker(
                model, movie, window=window or None, ending=None, precision=args.precision, memory=args.memory
            )  # never end
            for frame in range(7):
                for i in range(n):
                    tracker.add_mask(frame, i + 1, discs[i])
            tracker.track(7)
            times = []
            for _ in range(args.frames):
                tracker._features.clear()
                t0 = time.perf_counter()
                tracker.track(7)
                times.append(time.perf_counter() - t0)
            per = float(np.median(times))
            base.setdefault(window, per)
            cells.append(f"{per:.3f} | {per / base[window]:.1f}x")
        print(f"| {n} | " + " | ".join(cells) + " |", flush=True)


def _mode(window: int, memory: bool = True) -> str:
    where = "whole frame" if not window else f"window {window} px"
    return where if memory else f"{where}, no memory"


def main() -> None:
    torch.set_num_threads(2)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    g = sub.add_parser("gowt1")
    g.add_argument("--frames", type=int, default=None)
    g.add_argument("--detect-every", type=int, default=1)
    g.add_argument("--data", default=GOWT1)
    g.add_argument("--window", type=int, default=256, help="largest tracking window, model-input pixels (0: whole frames)")
    g.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the classical trackers")
    g.add_argument("--precision", default="auto", help="auto, fp32, bf16 or int8")
    g.add_argument("--no-memory", dest="memory", action="store_false", help="track from the last mask alone")
    g.add_argument("--direction", default="forward", choices=["forward", "backward"])
    g.add_argument("--gamma", type=float, default=None, help="the 'auto' limits with this gamma (e.g. 0.5: dim nuclei)")
    g.add_argument("--model", default=None, help="a checkpoint file or model name (default: the built-in model)")
    s = sub.add_parser("synthetic")
    s.add_argument("--movies", type=int, default=5)
    s.add_argument("--length", type=int, default=30)
    s.add_argument("--model", default=None, help="a checkpoint file or model name (default: the built-in model)")
    s.add_argument("--window", type=int, default=256, help="largest tracking window, model-input pixels (0: whole frames)")
    s.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the classical trackers")
    s.add_argument("--precision", default="auto", help="auto, fp32, bf16 or int8")
    s.add_argument("--no-memory", dest="memory", action="store_false", help="track from the last mask alone")
    s.add_argument("--direction", default="forward", choices=["forward", "backward"])
    p = sub.add_parser("speed")
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--model", default=None, help="a preset (random weights); default the built-in model")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--radius", type=int, default=0, help="disc radius in pixels (default 15 per 512)")
    p.add_argument("--objects", type=int, nargs="+", default=[1, 10, 100])
    p.add_argument("--window", type=int, nargs="+", default=[0, 256], help="0: whole frames")
    p.add_argument("--precision", default="auto", help="auto, fp32, bf16 or int8")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="track from the last mask alone")
    args = parser.parse_args()
    {"gowt1": gowt1, "synthetic": synthetic, "speed": speed}[args.what](args)


if __name__ == "__main__":
    main()
