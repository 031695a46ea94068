"""What the commands share: model options, loading, a progress bar, input and output files."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="preset name or checkpoint file (default: built-in)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])


class Bar:
    """A one-line text progress bar with ETA on stderr."""

    def __init__(self, label: str) -> None:
        self.label, self.start = label, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (total - done) if done else 0.0
        filled = int(30 * done / max(total, 1))
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} ETA {eta:5.0f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def load_from_args(args):
    """The model of --model (default: built-in) on --device."""
    from ..loading import load_model

    return load_model(args.model, device=args.device)


IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def image_files(inputs: list[str]) -> list[Path]:
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
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


def write_labels(path: Path, labels) -> None:
    """Write atomically: a half-written file never has the final name."""
    import tifffile

    partial = path.with_name(path.name + ".part")
    tifffile.imwrite(partial, labels, compression="zlib", photometric="minisblack")
    partial.replace(path)
