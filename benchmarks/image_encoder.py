"""Image-embedding latency per variant: ours beside the official model, same weights, same run.

    python benchmarks/image_encoder.py [--variants sam2.1_hiera_tiny ...] [--size 1024] [--repeats 3]

Prints a Markdown table: seconds per 1024x1024 embedding (batch 1), ours fp32, official fp32,
their ratio, and ours on the fast path (bf16 where the CPU supports it).
"""

from __future__ import annotations

import argparse

import torch

from common import have_oracle, machine_line, print_table, time_call

from napari_sam2 import build_model
from napari_sam2.modeling.config import PRESETS
from napari_sam2.precision import compute_precision, resolve_precision

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
        ref_time = float("nan")
        if oracle:
            from tests.oracle import build_oracle

            ref = build_oracle(name, image_size=args.size)
            with torch.inference_mode():
                ref_time = time_call(lambda: ref.forward_image(image), args.repeats)
            state = ref.state_dict()
            del ref
        ours = build_model(name, device="cpu", image_size=args.size)
        if oracle:
            ours.load_state_dict(state)
        with torch.inference_mode():
            our_time = time_call(lambda: ours.encode_image(image), args.repeats)

            def fast_call():
                with compute_precision(device, fast):
                    return ours.encode_image(image)

            fast_time = time_call(fast_call, args.repeats)
        del ours
        rows.append([name, our_time, ref_time, our_time / ref_time, fast_time, fast_time / ref_time])
    print(f"{machine_line()}; fast path = {fast}")
    print_table(
        f"Image embedding, {args.size}x{args.size}, batch 1 (seconds, median of {args.repeats})",
        ["variant", "ours fp32", "official fp32", "ours/official", f"ours fast ({str(fast).split('.')[-1]})", "fast/official fp32"],
        rows,
    )


if __name__ == "__main__":
    main()
