"""`track`: every cell of a movie tracked automatically, written in the Cell Tracking Challenge
format (maskNNN.tif + res_track.txt) and optionally as a CSV track table and a label movie."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import at_least, limits_option, model_options, normalization_from_args, output_path


def register(sub) -> None:
    p = sub.add_parser(
        "track", help="track every cell of a movie (divisions, lineage) into Cell Tracking Challenge files"
    )
    model_options(p)
    limits_option(p)
    p.add_argument("frames", help="a folder of t*.tif frames (the challenge's layout) or a (T, H, W) stack file")
    p.add_argument("--ctc", required=True, metavar="OUT_DIR", help="output folder for maskNNN.tif and res_track.txt")
    p.add_argument("--csv", default=None, metavar="FILE", help="also write the track table (track_id, frame, y, x, parent)")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="also write the label movie (T, H, W), track ids as values: a TIFF, or OME-Zarr for FILE.zarr")
    p.add_argument("--direction", default="forward", choices=["forward", "backward"],
                   help="forward: from the first frame (default); backward: from the last (divisions as daughters meeting)")
    p.add_argument("--detect-every", type=at_least(1), default=1, metavar="N",
                   help="look for new cells every N frames (default 1: every frame)")
    p.add_argument("--min-area", type=at_least(1), default=None, metavar="PIXELS",
                   help="smallest cell (default: a fifth of the first frame's median blob)")
    p.add_argument("--no-divisions", dest="divisions", action="store_false", help="never split a track into daughters")
    p.add_argument("--no-blob-fit", dest="fit_to_blobs", action="store_false",
                   help="keep the model's masks as they are (default: held to the frame's bright blobs)")
    p.add_argument("--window", type=int, default=None, metavar="PIXELS",
                   help="largest window, in model-input pixels, to track each cell in around it "
                        "(a multiple of 16; default 256; 0: whole frames)")
    p.add_argument("--no-memory", dest="memory", action="store_false",
                   help="find each cell by a click where it was on the frame before, without SAM 2's memory: "
                        "for many cells (100 cost about 3x one), fewer divisions found")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the masks and res_track.txt in an existing OUT_DIR, and existing --csv / --labels files")
    p.set_defaults(handler=_track)


def read_frames(path: str | Path):
    """A lazy (T, H, W) array from a CTC frame folder or a stack file."""
    from ..images.ctc import FrameFolder
    from ..images.io import read_image

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give a folder of t*.tif frames or a stack file.")
    data = FrameFolder(path) if path.is_dir() else read_image(path)
    if len(data.shape) != 3:
        raise ValueError(f"{path} has shape {tuple(data.shape)}; tracking needs a (T, H, W) movie of gray frames.")
    return data


def movie_files(path: str | Path) -> list[Path]:
    """The files a movie is read from (a CTC folder's frames, or the stack file): never outputs."""
    from ..images.ctc import frame_files

    path = Path(path)
    return frame_files(path) if path.is_dir() else [path]


def _track(args) -> int:
    from ..progress import TextProgress
    from ..tracking.everything import Settings, track_everything
    from .common import load_from_args

    out = Path(args.ctc)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise FileExistsError(f"{out} already exists and is not empty: choose another folder or pass --overwrite.")
    if args.csv and Path(args.csv).exists() and not args.overwrite:
        raise FileExistsError(f"{args.csv} already exists: choose another file or pass --overwrite.")
    if args.labels:
        output_path(Path(args.labels), args.overwrite, movie_files(args.frames))
    frames = read_frames(args.frames)
    normalization = normalization_from_args(args, frames)
    choices = dict(
        direction=args.direction, detect_every=args.detect_every, min_area=args.min_area, divisions=args.divisions,
        fit_to_blobs=args.fit_to_blobs, memory=args.memory,
    )
    if args.window is not None:
        choices["window"] = args.window or None
    settings = Settings(**choices)
    result = track_everything(
        frames, load_from_args(args), settings, precision=args.precision, normalization=normalization,
        progress=TextProgress("tracking", unit="frame"),
    )
    result.write_ctc(out, overwrite=args.overwrite)
    if args.csv:
        result.write_csv(args.csv)
    if args.labels:
        result.write_labels(args.labels)
    parents = result.parents
    print(f"{len(result.lineage.first)} tracks, {len(set(parents.values()))} divisions, {len(result.frames_done)} frames -> {out}", file=sys.stderr)
    return 0
