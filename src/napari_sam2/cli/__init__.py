"""The `napari-sam2` command. The parser imports nothing heavy, so `--help` is instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import batch, models, segmenting, training


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sam2",
        description="Segment Anything 2 for microscopy: models, segmentation and tracking.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    models.register(sub)
    segmenting.register(sub)
    training.register(sub)
    batch.register(sub)
    models.register_benchmark(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..checkpoints.files import CheckpointError
    from ..images.checks import ImageInputError
    from ..progress import Cancelled
    from ..prompt_file import PromptsFileError
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("\nnapari-sam2: interrupted", file=sys.stderr)
        return 130
    except Cancelled as err:
        print(f"napari-sam2: stopped: {err}", file=sys.stderr)
        return 130
    except (CheckpointError, ImageInputError, PromptsFileError, ValueError, KeyError, FileNotFoundError, FileExistsError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"napari-sam2: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
