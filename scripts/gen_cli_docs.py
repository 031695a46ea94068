"""Write docs/cli.md from the command line's parser: `python scripts/gen_cli_docs.py`."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_sam2.cli import build_parser

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def render() -> str:
    parser = build_parser()
    parser.formatter_class = argparse.HelpFormatter
    parts = [
        "# Command-line reference",
        "",
        "Generated from the parser by `python scripts/gen_cli_docs.py`; do not edit by hand.",
        "Exit codes: 0 success, 2 bad arguments or files (one-line error), 130 interrupted.",
        "Outputs are never overwritten without `--overwrite`, and are written atomically.",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
    ]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        parts += ["", f"## napari-sam2 {name}", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    DOCS.write_text(render())
    print(f"wrote {DOCS}")
