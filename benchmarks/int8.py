"""The int8 path: its masks against fp32 on real nuclei, and its embedding speed against the
official fp32, in one run.

    python benchmarks/int8.py [--data ../shared/data/dsb2018/val] [--images 16] [--clicks 4]
                              [--variants sam2.1_hiera_tiny sam2.1_hiera_small] [--size 1024]

Accuracy: on each validation image, one click at the deepest interior point of up to --clicks
random ground-truth nuclei; the best of the three masks from an fp32 embedding and from a bf16 / int8 one of the
same model; the IoU between them (clicks whose fp32 mask is empty or covers over half the image
are left out: random weights give such masks). Models: the official presets with random
weights and the built-in model. Speed: seconds per embedding (batch 1), interleaved with the
official fp32 (same weights) so that load on the machine hits all alike.
The rule for 'auto': int8 only where the median IoU >= 0.97 and the 5th percentile >= 0.9.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import ROOT, have_oracle, machine_line, print_table, time_interleaved

from napari_sam2 import build_model
from napari_sam2.engine.precision import compute_precision, resolve_precision
from napari_sam2.engine.quantize import int8_model
from napari_sam2.training.int8_agreement import MEDIAN_RULE, P5_RULE, mask_agreement
from napari_sam2.training.real_eval import load_samples


def best_times(calls: dict, repeats: int, clock) -> dict[str, float]:
    """Best time of each call by `clock`, interleaved (as common.time_interleaved)."""
    for fn in calls.values():
        fn()
    best = {name: float("inf") for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = clock()
            fn()
            best[name] = min(best[name], clock() - start)
    return best


def speed(name: str, size: int, repeats: int, clock=None) -> list[object]:
    image = torch.randn(1, 3, size, size)
    ours = build_model(name, device="cpu", image_size=size)
    calls = {}
    if have_oracle():
        from tests.parity.oracle import build_oracle

        ref = build_oracle(name, image_size=size)
        ours.load_state_dict(ref.state_dict())
        calls["official"] = lambda: ref.forward_image(image)
    device = torch.device("cpu")
    bf16, int8 = resolve_precision("bf16", device), resolve_precision("int8", device)
    quantized = int8_model(ours)

    def run(model, dtype):
        with compute_precision(device, dtype):
            return model.encode_image(image)

    calls["bf16"] = lambda: run(ours, bf16)
    calls["int8"] = lambda: run(quantized, int8)
    with torch.inference_mode():
        best = time_interleaved(calls, repeats) if clock is None else best_times(calls, repeats, clock)
    ref = best.get("official", float("nan"))
    return [name, ref, best["bf16"], best["int8"], best["bf16"] / ref, best["int8"] / ref]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dsb2018" / "val")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--clicks", type=int, default=4)
    parser.add_argument("--variants", nargs="*", default=["sam2.1_hiera_tiny", "sam2.1_hiera_small"])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--built-in-only", action="store_true", help="accuracy of the built-in model only")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time (less disturbed than wall time on a busy machine)")
    args = parser.parse_args()
    print(machine_line())
    if not args.skip_speed:
        import time

        clock = time.process_time if args.cpu_time else None
        rows = [speed(name, args.size, args.repeats, clock) for name in args.variants]
        print_table(
            f"Embedding {'CPU ' if args.cpu_time else ''}seconds at {args.size} px (best of {args.repeats}, interleaved)",
            ["variant", "official fp32", "ours bf16", "ours int8", "bf16 / official", "int8 / official"],
            rows,
        )
    if not args.skip_accuracy:
        if not args.data.is_dir():
            raise SystemExit(f"no validation images at {args.data}: pass --data")
        images = load_samples(args.data, limit=args.images)
        models = {}
        for name in [] if args.built_in_only else args.variants:
            torch.manual_seed(0)
            models[f"{name} (random weights)"] = build_model(name, device="cpu", image_size=args.size)
        from napari_sam2.checkpoints.loading import load_model
        from napari_sam2.checkpoints.shipped import SHIPPED_MODEL, has_shipped_model

        if has_shipped_model():
            models[f"{SHIPPED_MODEL} (built-in)"] = load_model(SHIPPED_MODEL, device="cpu")
        rows = []
        for label, model in models.items():
            for precision, s in mask_agreement(model, images, ("bf16", "int8"), args.clicks).items():
                figures = [s.get(k, float("nan")) for k in ("min", "p5", "median")]
                rows.append([label, precision, s["clicks"], *figures, "yes" if s["within_rule"] else "no"])
                print(rows[-1], flush=True)
        print_table(
            f"Mask IoU against fp32, {len(images)} DSB 2018 validation images, up to {args.clicks} clicks each",
            ["model", "precision", "clicks", "min", "5th pct", "median", f"rule ({MEDIAN_RULE} / {P5_RULE})"],
            rows,
        )


if __name__ == "__main__":
    main()
