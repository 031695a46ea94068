"""`segment`, `prompt` and `propagate`: label TIFFs from images, stacks and prompts files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..batch.spec import OUTPUT_SUFFIXES
from .common import (
    at_least,
    channel_options,
    fraction,
    image_files,
    load_from_args,
    model_options,
    normalization_from_args,
    orientations_option,
    output_path,
)


def register(sub) -> None:
    segment = sub.add_parser("segment", help="segment everything in images, stacks or folders into label TIFFs")
    model_options(segment)
    channel_options(segment)
    segment.add_argument("inputs", nargs="+", help="image files, stacks (each slice is segmented) or folders")
    segment.add_argument("--out", required=True, help="output folder (<name>_labels.tif for each input)")
    segment.add_argument("--format", dest="output_format", default="tif", choices=list(OUTPUT_SUFFIXES),
                         help="label TIFFs (default) or OME-Zarr folders (<name>_labels.zarr)")
    segment.add_argument("--points-per-side", type=at_least(1), default=32)
    segment.add_argument("--pred-iou-thresh", type=fraction, default=None, help="keep masks the model rates at least this (default: the model's own, else 0.8)")
    segment.add_argument("--stability-score-thresh", type=fraction, default=None, help="keep masks at least this stable (default: the model's own, else 0.95)")
    segment.add_argument("--min-area", type=at_least(0), default=0, help="fill holes / remove specks up to this area")
    segment.add_argument("--crop-layers", type=at_least(0), default=0)
    orientations_option(segment, "average every grid point's masks over", "1; slower", 1)
    segment.add_argument(
        "--overlaps", default="quality", choices=["quality", "area"],
        help="quality: one label per object, duplicates and fragments dropped (default); area: smaller masks on top of larger",
    )
    segment.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    segment.set_defaults(handler=_segment)

    for name, helptext, handler in (
        ("prompt", "segment the objects of a prompts file (JSON or CSV) on their prompted frames", _prompt),
        ("propagate", "track the objects of a prompts file through a stack into a label stack", _propagate),
    ):
        p = sub.add_parser(name, help=helptext)
        model_options(p)
        channel_options(p)
        p.add_argument("image", help="image or stack file (TIFF or common formats)")
        p.add_argument("--prompts", required=True, help="prompts file (.json, or .csv with object,frame,x,y,label)")
        p.add_argument("--out", required=True, help="output label TIFF")
        p.add_argument("--axis", type=int, default=None, help="stack axis (default: the prompts file's)")
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
        if name == "prompt":
            p.add_argument("--zoom", action=argparse.BooleanOptionalAction, default=None,
                           help="segment small objects on enlarged crops around them (default: the prompts file's)")
            orientations_option(p, "average each prompt's masks over", "the prompts file's, else the model's")
        if name == "propagate":
            p.add_argument("--direction", default=None, choices=["both", "forward", "backward"],
                           help="default: the prompts file's, else both")
        p.set_defaults(precision=None, handler=handler)  # the prompts file's model and precision unless given


def _segment(args) -> int:
    import numpy as np

    from ..api import segment_everything
    from ..batch.plan import output_names
    from ..images.io import check_writable_folder, is_stack, read_image, write_labels
    from ..progress import TextProgress
    from . import error_line

    out = Path(args.out)
    files = image_files(args.inputs, out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; segment writes one label file per input into a folder.")
    check_writable_folder(out)
    names = output_names(files, OUTPUT_SUFFIXES[args.output_format])
    targets = [(f, out / name) for f, name in zip(files, names)]
    for _, target in targets:  # all checked before any work
        output_path(target, args.overwrite, files)
    normalization = normalization_from_args(args)
    model = load_from_args(args)
    failures = []
    for source, target in targets:
        try:
            image = read_image(source)
            if args.channel_axis is not None:
                image = np.moveaxis(np.asarray(image), args.channel_axis, -1)
            if args.gamma is not None and args.limits is None:  # the 'auto' limits of this file
                normalization = normalization_from_args(args, image, args.channels)
            labels = segment_everything(
                image, model, args.precision, normalization, progress=TextProgress(source.name, unit="batch"),
                order=args.overlaps, stack_axis=0 if is_stack(image.shape) else None, channels=args.channels,
                points_per_side=args.points_per_side, pred_iou_thresh=args.pred_iou_thresh,
                stability_score_thresh=args.stability_score_thresh, min_mask_region_area=args.min_area,
                crop_n_layers=args.crop_layers, orientations=args.orientations,
            )
            write_labels(target, labels)
        except (ValueError, OSError, MemoryError) as err:  # this input only; the rest go on
            failures.append(source)
            print(f"napari-sam2: failed: {source}: {error_line(err)}", file=sys.stderr)
            continue
        print(f"{source} -> {target}: {int(labels.max())} objects")
    if failures:
        print(f"napari-sam2: {len(failures)} of {len(targets)} inputs failed: {', '.join(map(str, failures))}",
              file=sys.stderr)
        return 1
    return 0


def _replay_options(args, session) -> dict:
    """What the command line overrides of a prompts file (None keeps the file's choice)."""
    if args.channels is not None:
        session.image["channels"] = list(args.channels)
    if args.channel_axis is not None:
        session.image["channel_axis"] = args.channel_axis
    if args.limits is not None:
        limits = normalization_from_args(args)
        session.normalization = {
            "method": "limits", "low": limits.low[0], "high": limits.high[0], "gamma": limits.gamma,
        }
    elif args.gamma is not None:  # the file's limits (or 'auto') with this gamma
        normalization_from_args(args)  # checks it
        session.normalization = {**(session.normalization or {"method": "auto"}), "gamma": args.gamma}
    return {
        "model": None if args.model is None else load_from_args(args),
        "stack_axis": args.axis,
        "precision": args.precision,
        "device": args.device,
    }


def _prompt(args) -> None:
    import numpy as np

    from ..api import run_session
    from ..images.io import read_image, write_labels
    from ..prompt_file import PromptSession

    session = PromptSession.load(args.prompts)
    target = output_path(Path(args.out), args.overwrite, [args.image, args.prompts])
    image = read_image(args.image)
    labels = run_session(
        session, image, mode="segment", zoom=args.zoom, orientations=args.orientations, **_replay_options(args, session)
    )
    write_labels(target, labels)
    found = len({int(v) for v in np.unique(labels) if v})
    print(f"{args.image} -> {target}: {found} of {len(session.objects)} objects segmented")


def _propagate(args) -> None:
    from ..api import run_session
    from ..images.io import read_image
    from ..images.zarr_io import is_zarr_path
    from ..progress import TextProgress
    from ..prompt_file import PromptSession

    session = PromptSession.load(args.prompts)
    target = output_path(Path(args.out), args.overwrite, [args.image, args.prompts])
    # OME-Zarr is written in place, frame by frame: an interrupted run keeps the frames done
    partial = target if is_zarr_path(target) else target.with_name(target.name + ".part")
    image = read_image(args.image)
    options = _replay_options(args, session)
    try:
        run_session(session, image, out=partial, progress=TextProgress("propagate", unit="frame"),
                    mode="propagate", direction=args.direction, overwrite=True, **options)
        partial.replace(target)
    finally:
        if partial != target:
            partial.unlink(missing_ok=True)  # an error or an interruption leaves no .part behind
    print(f"{args.image} -> {target}: {len(session.objects)} objects tracked")
