"""Measure a training run's best model and install it as the built-in model.

`python scripts/ship_model.py RUN_DIR --command "napari-sam2 train ..." [--calibrate VAL_DIR]
[--shared SHARED_DATA]`: chooses segment-everything's filters on VAL_DIR (a labelled validation
folder, e.g. DSB 2018 val), checks int8's masks against fp32 there and chooses how many
orientations prompts are averaged over (1, 4 or 8, within 0.25 s per 512 px embedding), then
measures the model with those settings on the real sets of
SHARED_DATA and on the synthetic held-out report (docs/shipped_model.md), then writes
src/napari_sam2/weights/ARCHITECTURE.pt (the run's best.pt, official format, named after its
architecture) and .json (how it was trained, the filters and every figure), replacing the
built-in model's files. Without --shared, RUN_DIR/real_eval.json is copied.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from napari_sam2 import load_model
from napari_sam2.checkpoints.shipped import SHIPPED_MODEL
from napari_sam2.training.evaluate import full_report
from napari_sam2.training.int8_agreement import mask_agreement
from napari_sam2.training.orientation_choice import orientation_metadata
from napari_sam2.training.real_eval import calibrate_filters, load_samples, shared_report

PRED_IOU = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
STABILITY = (0.85, 0.9, 0.95)
WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "napari_sam2" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--command", required=True, help="the training command, as recorded")
    parser.add_argument("--note", default="", help="anything else a reader needs to reproduce it")
    parser.add_argument("--calibrate", type=Path, help="validation folder for segment-everything's filters")
    parser.add_argument("--calibrate-limit", type=int, default=20, help="validation images used for that")
    parser.add_argument("--shared", type=Path, help="the shared real data folder to measure on (after calibration)")
    parser.add_argument("--skip-report", action="store_true", help="keep the metrics of the run's best.json")
    parser.add_argument("--pred-iou", type=float, nargs="+", default=PRED_IOU, help="predicted-IoU filters tried")
    parser.add_argument("--stability", type=float, nargs="+", default=STABILITY, help="stability filters tried")
    args = parser.parse_args()
    best = args.run_dir / "best.pt"
    metadata = json.loads(best.with_suffix(".json").read_text())
    # A base model inside the run folders is named as the recorded command names it.
    root = str(args.run_dir.resolve().parent)
    if str(metadata.get("base_model", "")).startswith(root):
        metadata["base_model"] = "RUN_DIR" + metadata["base_model"][len(root):]
    torch.manual_seed(0)
    model = load_model(best, device="cpu")
    if args.calibrate:
        samples = load_samples(args.calibrate, limit=args.calibrate_limit)
        filters, table = calibrate_filters(model, samples, tuple(args.pred_iou), tuple(args.stability))
        metadata["segment_everything"] = {
            **filters, "chosen_on": f"{len(samples)} images of {args.calibrate.name}", "grid": table,
        }
        model.segment_everything_defaults = filters  # every figure below uses the chosen filters
        int8 = mask_agreement(model, samples[:16], ("int8",))["int8"]  # lets 'auto' pick int8
        metadata["int8"] = {**int8, "measured_on": f"{min(len(samples), 16)} images of {args.calibrate.name}"}
        chosen = orientation_metadata(model, load_samples(args.calibrate), args.calibrate.name)
        metadata["prompt_orientations"] = chosen
        model.prompt_orientations = chosen["orientations"]  # the real figures below use it
    if not args.skip_report:
        start = time.perf_counter()
        metadata.update(metrics=full_report(model), metrics_seconds=round(time.perf_counter() - start, 1))
    real = args.run_dir / "real_eval.json"
    if args.shared:
        metadata["real_metrics"] = shared_report(model, args.shared)
    elif real.is_file():
        metadata["real_metrics"] = json.loads(real.read_text())
    metadata.update(
        command=args.command, image_size=model.image_size, parameters=sum(p.numel() for p in model.parameters())
    )
    if args.note:
        metadata["note"] = args.note
    installed = WEIGHTS / f"{SHIPPED_MODEL}.json"
    if installed.is_file():  # the model it replaces: its figures, and notes on settings it passed on
        before = json.loads(installed.read_text())
        metadata["previous_real_metrics"] = before.get("real_metrics")
        metadata.update({k: v for k, v in before.items() if k.endswith("_note") and k[: -len("_note")] in metadata})
    WEIGHTS.mkdir(exist_ok=True)
    name = model.config.name
    shutil.copyfile(best, WEIGHTS / f"{name}.pt")
    (WEIGHTS / f"{name}.json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"installed {WEIGHTS / name}.pt ({best.stat().st_size / 1e6:.1f} MB)")
    if name != SHIPPED_MODEL:  # a new architecture replaces the built-in one
        for suffix in (".pt", ".json"):
            (WEIGHTS / f"{SHIPPED_MODEL}{suffix}").unlink(missing_ok=True)
        print(f"removed {SHIPPED_MODEL}: set SHIPPED_MODEL = {name!r} in src/napari_sam2/checkpoints/shipped.py")


if __name__ == "__main__":
    main()
