"""Image-embedding latency per variant: ours beside the official model, same weights, same run.

    python benchmarks/image_encoder.py [--variants sam2.1_hiera_tiny ...] [--size 1024] [--repeats 3]

Prints a Markdown table: seconds per 1024x1024 embedding (batch 1), ours fp32, official fp32,
their ratio, and ours on the fast path (bf16 where the CPU supports it).
"""

from __future__ import annotations

import argparse

import torch
from common import have_oracle, machine_line, print_table, time_interleaved

from napari_sam2 import build_model
from napari_sam2.engine.precision import compute_precision, resolve_precision
from napari_sam2.modeling.config import PRESETS

OFFICIAL = [name for name in PRESETS if name.startswith("sam2") and "test" not in name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="*", default=OFFICIAL)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    oracle = have_oracle()
    device = torch.device("cpu")
    fast = resolve_precision("auto", device)
    rows = []
    for name in args.variants:
        image = torch.randn(1, 3, args.size, args.size)
        ours = build_model(name, device="cpu", image_size=args.size)
        calls = {}
        ref = None
        if oracle:
            from tests.parity.oracle import build_oracle

            ref = build_oracle(name, image_size=args.size)
            ours.load_state_dict(ref.state_dict())
            calls["official"] = lambda: ref.forward_image(image)
        calls["ours"] = lambda: ours.encode_image(image)

        def fast_call():
            with compute_precision(device, fast):
                return ours.encode_image(image)

        calls["fast"] = fast_call
        with torch.inference_mode():
            best = time_interleaved(calls, args.repeats)
        ref_time = best.get("official", float("nan"))
        rows.append([name, best["ours"], ref_time, best["ours"] / ref_time, best["fast"], best["fast"] / ref_time])
        del ref, ours
    print(f"{machine_line()}; fast path = {fast}")
    print_table(
        f"Image embedding, {args.size}x{args.size}, batch 1 (seconds, best of {args.repeats}, interleaved)",
        ["variant", "ours fp32", "official fp32", "ours/official", f"ours fast ({str(fast).split('.')[-1]})", "fast/official fp32"],
        rows,
    )


if __name__ == "__main__":
    main()
