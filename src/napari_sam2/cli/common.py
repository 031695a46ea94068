"""What the commands share: model options, loading, a progress bar, input and output files."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..batch.inputs import is_output
from ..images.io import check_output_file, is_image_file


def model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="preset name or checkpoint file (default: built-in)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16", "int8"])


ORIENTATIONS = (1, 4, 8)  # engine.orientations.CHOICES, named here so that --help imports no torch


def orientations_option(p: argparse.ArgumentParser, what: str, default_text: str, default: int | None = None) -> None:
    """--orientations N: how many orientations of the image (engine.orientations) to use."""
    p.add_argument("--orientations", type=int, choices=ORIENTATIONS, default=default,
                   help=f"{what} the image's 1, 4 (flips) or 8 (flips and transposes) orientations "
                        f"(default: {default_text})")


def channel_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channels", type=channel_list, default=None, metavar="I[,J[,K]]",
                   help="channels shown to the model as R, G, B (one: gray), e.g. 0 or 2,0,1")
    p.add_argument("--channel-axis", type=int, default=None, metavar="AXIS",
                   help="the image's axis holding channels (default: a last axis shorter than 32)")
    limits_option(p)


def limits_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limits", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="intensities mapped to black and white, as napari's contrast limits (default: "
                        "the 'auto' rule); raise HIGH when masks come out larger than bright objects")
    p.add_argument("--gamma", type=float, default=None, metavar="G",
                   help="raise the scaled intensities to this power, as napari's layer gamma (with "
                        "--limits or the 'auto' ones); below 1, e.g. 0.5, shows dim objects")


def normalization_from_args(args, data=None, channels=None, channel_axis=None):
    """'auto', or the --limits given (checked: LOW below HIGH), with --gamma; --gamma alone
    takes the 'auto' limits of `data` (a prompts-file spec where no data is given)."""
    from ..images.normalization import Normalization, auto_normalization

    gamma = getattr(args, "gamma", None)
    if gamma is not None and not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"--gamma {gamma:g}: give a positive number (1: linear; below 1 brightens dim objects).")
    if args.limits is None:
        if gamma is None or gamma == 1.0:
            return "auto"
        if data is None:
            return {"method": "auto", "gamma": gamma}
        return auto_normalization(data, channels=channels, channel_axis=channel_axis).with_gamma(gamma)
    low, high = args.limits
    if not low < high:
        raise ValueError(f"--limits {low:g} {high:g}: LOW must be below HIGH.")
    return Normalization.from_limits(low, high, 1.0 if gamma is None else gamma)


def channel_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of channel numbers") from None


def at_least(minimum: int):
    """An argparse type: an integer no smaller than `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {minimum}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


def load_from_args(args):
    """The model of --model (default: built-in) on --device."""
    from ..checkpoints.loading import load_model

    return load_model(args.model, device=args.device)


def image_files(inputs: list[str], out: Path | None = None) -> list[Path]:
    """Image files named or in the named folders; label files (`*_labels.tif`) that a folder
    holds are never inputs when that folder is the output folder `out`."""
    files = []
    out = out.resolve() if out is not None else None
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if is_image_file(p) and not is_output(p, out))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"No such file or folder: {path}")
    if not files:
        raise FileNotFoundError(f"No images found in {', '.join(inputs)}.")
    return files


def output_path(path: Path, overwrite: bool, inputs: list[str | Path] = ()) -> Path:
    """A checked output file (see `images.io.check_output_file`): never an input, never a
    folder, existing only with --overwrite, in a folder that can be written to."""
    return check_output_file(path, inputs, overwrite)
