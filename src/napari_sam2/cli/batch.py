"""`batch`: many images and stacks, on this machine or a dask cluster."""

from __future__ import annotations

from ..batch.spec import OUTPUT_SUFFIXES
from .common import at_least, fraction, model_options


def register(sub) -> None:
    batch = sub.add_parser(
        "batch",
        help="segment or track many images and stacks, on this machine or a dask cluster; resumes when run again",
        description="Label TIFFs (<name>_labels.tif; with --format zarr OME-Zarr folders, <name>_labels.zarr) "
        "and batch_summary.csv/.json go to --out; inputs whose outputs are complete are skipped, so running "
        "the same command again resumes. See docs/batch.md.",
    )
    model_options(batch)
    batch.add_argument("inputs", nargs="+", help="image files, stacks, folders or glob patterns")
    batch.add_argument("--out", required=True, help="output folder")
    batch.add_argument("--format", dest="output_format", default="tif", choices=list(OUTPUT_SUFFIXES),
                       help="label TIFFs (default) or OME-Zarr folders (a stack's frames written as they finish)")
    batch.add_argument("--mode", default="everything", choices=["everything", "prompts", "propagate"],
                       help="segment everything, the objects of prompts files, or track through stacks")
    batch.add_argument("--prompts", help="prompts file for inputs without their own <name>.prompts.json")
    batch.add_argument("--direction", default="both", choices=["both", "forward", "backward"])
    batch.add_argument("--points-per-side", type=at_least(1), default=32)
    batch.add_argument("--pred-iou-thresh", type=fraction, default=None, help="keep masks the model rates at least this (default: the model's own, else 0.8)")
    batch.add_argument("--stability-score-thresh", type=fraction, default=None, help="keep masks at least this stable (default: the model's own, else 0.95)")
    batch.add_argument("--min-area", type=at_least(0), default=0, help="fill holes / remove specks up to this area")
    batch.add_argument("--crop-layers", type=at_least(0), default=0)
    batch.add_argument("--batch-size", type=at_least(1), help="images per image-encoder pass (default: what fits in memory)")
    batch.add_argument("--scheduler", metavar="ADDRESS", help="run on this dask scheduler (tcp://host:8786)")
    batch.add_argument("--local-cluster", type=at_least(1), metavar="N", help="run on a local dask cluster of N worker processes")
    batch.add_argument("--overwrite", action="store_true", help="redo every input, replacing existing outputs")
    batch.set_defaults(handler=_batch)


def _batch(args) -> int:
    from ..batch import run_batch
    from ..progress import TextProgress

    summary = run_batch(
        args.inputs, args.out, mode=args.mode, model=args.model, prompts=args.prompts,
        direction=args.direction, device=args.device, precision=args.precision,
        batch_size=args.batch_size, scheduler=args.scheduler, local_cluster=args.local_cluster or False,
        overwrite=args.overwrite, output_format=args.output_format, progress=TextProgress("batch", unit="input"),
        points_per_side=args.points_per_side,
        pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_score_thresh,
        min_mask_region_area=args.min_area, crop_n_layers=args.crop_layers,
    )
    for result in summary.failed:
        print(f"failed: {result.input}: {' '.join(result.error.split())}")
    print(summary.line())
    print(f"summary: {summary.csv_path}")
    return 1 if summary.failed else 0
