"""The `napari-sam2` command. The parser imports nothing heavy, so `--help` is instant."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from . import batch, embedding, models, segmenting, tracking, training


class _Parser(argparse.ArgumentParser):
    """argparse with the command's one-line errors (exit 2), pointing to --help for usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="napari-sam2",
        description="Segment Anything 2 for microscopy: models, segmentation and tracking.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    models.register(sub)
    segmenting.register(sub)
    training.register(sub)
    batch.register(sub)
    tracking.register(sub)
    embedding.register(sub)
    models.register_benchmark(sub)
    return parser


# Python argument names in engine messages, as the command line spells them.
_CLI_NAMES = (
    (re.compile(r"overwrite=True \(--overwrite\)"), "--overwrite"),
    (re.compile(r"overwrite=True"), "--overwrite"),
    (re.compile(r"channels=\(([-\d, ]*?),?\)"), lambda m: "--channels " + m.group(1).replace(" ", "")),
    (re.compile(r"channels=\[([-\d, ]*?)\]"), lambda m: "--channels " + m.group(1).replace(" ", "")),
    (re.compile(r"channels=(?=[\s,;.])"), "--channels"),
    (re.compile(r"channels="), "--channels "),
    (re.compile(r"channel_axis=(?=[\s,;.])"), "--channel-axis"),
    (re.compile(r"channel_axis="), "--channel-axis "),
    (re.compile(r"stack_axis="), "--axis "),
)


def error_line(err: BaseException) -> str:
    """An error as the one line the command prints: the engine's message with the command
    line's option names, newlines folded."""
    message = err.args[0] if isinstance(err, KeyError) and err.args else err
    if isinstance(err, OSError) and not isinstance(err.args[0] if err.args else None, str):
        message = f"{err.strerror or type(err).__name__}: {err.filename}" if err.filename else err
    text = " ".join(str(message).split())
    for pattern, replacement in _CLI_NAMES:
        text = pattern.sub(replacement, text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Exit codes: 0 done; 1 some inputs failed (each named, the rest done);
    2 a usage or input error, one line on stderr, nothing written; 130 interrupted."""
    args = build_parser().parse_args(argv)
    from ..checkpoints.files import CheckpointError
    from ..engine.prompt_checks import PromptError
    from ..images.checks import ImageInputError
    from ..progress import Cancelled
    from ..prompt_file import PromptsFileError

    expected = (CheckpointError, ImageInputError, PromptsFileError, PromptError, ValueError, KeyError, OSError)
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt as err:
        print(f"\nnapari-sam2: interrupted{': ' + str(err) if str(err) else ''}", file=sys.stderr)
        return 130
    except Cancelled as err:
        print(f"napari-sam2: stopped: {err}", file=sys.stderr)
        return 130
    except MemoryError as err:
        print(f"napari-sam2: error: out of memory{': ' + str(err) if str(err) else ''}", file=sys.stderr)
        return 2
    except expected as err:
        print(f"napari-sam2: error: {error_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
