"""What the commands share: model options, loading, a progress bar, input and output files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..images.io import is_image_file


def model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="preset name or checkpoint file (default: built-in)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])


def load_from_args(args):
    """The model of --model (default: built-in) on --device."""
    from ..checkpoints.loading import load_model

    return load_model(args.model, device=args.device)


def image_files(inputs: list[str]) -> list[Path]:
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if is_image_file(p))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"No such file or folder: {path}")
    if not files:
        raise FileNotFoundError(f"No images found in {', '.join(inputs)}.")
    return files


def output_path(path: Path, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
