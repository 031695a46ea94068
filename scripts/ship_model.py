"""Measure a training run's best model and install it as the built-in model.

`python scripts/ship_model.py RUN_DIR --command "napari-sam2 train ..."`: runs the full held-out
report (docs/shipped_model.md), then writes src/napari_sam2/weights/napari_sam2_micro.pt (the
run's best.pt, official format) and .json (how it was trained, and the measured metrics).
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

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "napari_sam2" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--command", required=True, help="the training command, as recorded")
    parser.add_argument("--note", default="", help="anything else a reader needs to reproduce it")
    args = parser.parse_args()
    best = args.run_dir / "best.pt"
    metadata = json.loads(best.with_suffix(".json").read_text())
    # A base model inside the run folders is named as the recorded command names it.
    root = str(args.run_dir.resolve().parent)
    if str(metadata.get("base_model", "")).startswith(root):
        metadata["base_model"] = "RUN_DIR" + metadata["base_model"][len(root):]
    torch.manual_seed(0)
    model = load_model(best, device="cpu")
    start = time.perf_counter()
    metrics = full_report(model)
    metadata.update(
        command=args.command,
        metrics=metrics,
        metrics_seconds=round(time.perf_counter() - start, 1),
        image_size=model.image_size,
        parameters=sum(p.numel() for p in model.parameters()),
    )
    if args.note:
        metadata["note"] = args.note
    WEIGHTS.mkdir(exist_ok=True)
    shutil.copyfile(best, WEIGHTS / f"{SHIPPED_MODEL}.pt")
    (WEIGHTS / f"{SHIPPED_MODEL}.json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"installed {WEIGHTS / SHIPPED_MODEL}.pt ({best.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
