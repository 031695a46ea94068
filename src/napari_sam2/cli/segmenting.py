"""`segment`, `prompt` and `propagate`: label TIFFs from images, stacks and prompts files."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Bar, image_files, load_from_args, model_options, output_path, write_labels


def register(sub) -> None:
    segment = sub.add_parser("segment", help="segment everything in images, stacks or folders into label TIFFs")
    model_options(segment)
    segment.add_argument("inputs", nargs="+", help="image files, stacks (each slice is segmented) or folders")
    segment.add_argument("--out", required=True, help="output folder")
    segment.add_argument("--points-per-side", type=int, default=32)
    segment.add_argument("--pred-iou-thresh", type=float, default=0.8)
    segment.add_argument("--stability-score-thresh", type=float, default=0.95)
    segment.add_argument("--min-area", type=int, default=0, help="fill holes / remove specks up to this area")
    segment.add_argument("--crop-layers", type=int, default=0)
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
        p.add_argument("image", help="image or stack file (TIFF or common formats)")
        p.add_argument("--prompts", required=True, help="prompts file (.json, or .csv with object,frame,x,y,label)")
        p.add_argument("--out", required=True, help="output label TIFF")
        p.add_argument("--axis", type=int, default=None, help="stack axis (default: the prompts file's)")
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
        if name == "prompt":
            p.add_argument("--zoom", action=argparse.BooleanOptionalAction, default=None,
                           help="segment small objects on enlarged crops around them (default: the prompts file's)")
        if name == "propagate":
            p.add_argument("--direction", default=None, choices=["both", "forward", "backward"],
                           help="default: the prompts file's, else both")
        p.set_defaults(precision=None, handler=handler)  # the prompts file's model and precision unless given


def _segment(args) -> None:
    import numpy as np

    from ..api import _read_image
    from ..automatic import AutomaticMaskGenerator
    from ..normalization import Normalization

    files = image_files(args.inputs)
    out = Path(args.out)
    targets = [(f, out / f"{f.stem}_labels.tif") for f in files]
    for _, target in targets:
        output_path(target, args.overwrite)
    generator = AutomaticMaskGenerator(
        load_from_args(args),
        points_per_side=args.points_per_side,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh,
        min_mask_region_area=args.min_area,
        crop_n_layers=args.crop_layers,
        precision=args.precision,
    )
    for source, target in targets:
        image = np.asarray(_read_image(source))
        is_stack = image.ndim == 3 and image.shape[-1] not in (3, 4) or image.ndim == 4
        slices = image if is_stack else image[None]
        norm = Normalization.from_percentiles(slices) if slices.dtype != np.uint8 else "auto"
        labels = np.zeros((len(slices), *slices.shape[1:3]), dtype=np.uint32)
        for i, plane in enumerate(slices):
            bar = Bar(f"{source.name} [{i + 1}/{len(slices)}]")
            labels[i] = generator.generate_labels(plane, norm, progress=bar, order=args.overlaps)
        write_labels(target, labels if is_stack else labels[0])
        print(f"{source} -> {target}: {int(labels.max())} objects")


def _replay_options(args) -> dict:
    """What the command line overrides of a prompts file (None keeps the file's choice)."""
    return {
        "model": None if args.model is None else load_from_args(args),
        "stack_axis": args.axis,
        "precision": args.precision,
        "device": args.device,
    }


def _prompt(args) -> None:
    from ..api import _read_image, run_session
    from ..prompts import PromptSession

    session = PromptSession.load(args.prompts)
    target = output_path(Path(args.out), args.overwrite)
    image = _read_image(Path(args.image))
    labels = run_session(session, image, mode="segment", zoom=args.zoom, **_replay_options(args))
    write_labels(target, labels)
    print(f"{args.image} -> {target}: {len(session.objects)} objects")


def _propagate(args) -> None:
    from ..api import _read_image, run_session
    from ..prompts import PromptSession

    session = PromptSession.load(args.prompts)
    target = Path(args.out)
    output_path(target, args.overwrite)
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    image = _read_image(Path(args.image))
    run_session(session, image, out=partial, progress=Bar("propagate"), mode="propagate",
                direction=args.direction, **_replay_options(args))
    partial.replace(target)
    print(f"{args.image} -> {target}: {len(session.objects)} objects tracked")
