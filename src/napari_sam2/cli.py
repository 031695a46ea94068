"""The `napari-sam2` command. The parser imports nothing heavy, so `--help` is instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sam2",
        description="Segment Anything 2 for microscopy: models, segmentation and tracking.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="segment a synthetic fluorescence image, offline")
    demo.add_argument("--model", default=None, help="preset name or checkpoint file (default: built-in)")
    demo.add_argument("--out", default="napari-sam2-demo", help="folder for the outputs")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    demo.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])

    models = sub.add_parser("models", help="list model presets, or show what a checkpoint file is")
    models.add_argument("checkpoint", nargs="?", help="a .pt file to inspect")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError

    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(args.model, args.out, args.device, args.precision)
        elif args.command == "models":
            _models(args.checkpoint)
    except (CheckpointError, ValueError, KeyError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"napari-sam2: error: {message}", file=sys.stderr)
        return 2
    return 0


def _models(checkpoint: str | None) -> None:
    from .cache import cache_dir
    from .modeling.config import PRESETS
    from .registry import OFFICIAL_CHECKPOINTS

    if checkpoint:
        from .checkpoint import identify_variant, read_checkpoint

        state, _ = read_checkpoint(checkpoint)
        config = identify_variant(state, f"The checkpoint {checkpoint}")
        params = sum(t.numel() for t in state.values())
        print(f"{checkpoint}: {config.name} (SAM {config.version}, {params / 1e6:.1f} M parameters)")
        return
    folder = cache_dir()
    print(f"cache: {folder}")
    for name in PRESETS:
        info = OFFICIAL_CHECKPOINTS.get(name)
        if info is None:
            status = "architecture only"
        elif (folder / info.filename).exists():
            status = "cached"
        else:
            status = f"not downloaded ({info.size / 1e6:.0f} MB)"
        print(f"  {name:24s} {status}")


if __name__ == "__main__":
    sys.exit(main())
