"""The `napari-sam2` command. The parser imports nothing heavy, so `--help` is instant."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-sam2",
        description="Segment Anything 2 for microscopy: models, segmentation and tracking.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", default=None, help="preset name or checkpoint file (default: built-in)")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
        p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])

    demo = sub.add_parser(
        "demo",
        help="segment and track cells of a synthetic time-lapse, offline (opens napari if there is a display)",
    )
    model_options(demo)
    demo.add_argument("--out", default="napari-sam2-demo", help="folder for the outputs")
    demo.add_argument("--headless", action="store_true", help="never open napari, even with a display")

    models = sub.add_parser("models", help="list model presets, show what a checkpoint file is, download one")
    models.add_argument("checkpoint", nargs="?", help="a .pt file to inspect")
    models.add_argument("--download", metavar="PRESET", help="download a preset's official weights into the cache")

    segment = sub.add_parser("segment", help="segment everything in images, stacks or folders into label TIFFs")
    model_options(segment)
    segment.add_argument("inputs", nargs="+", help="image files, stacks (each slice is segmented) or folders")
    segment.add_argument("--out", required=True, help="output folder")
    segment.add_argument("--points-per-side", type=int, default=32)
    segment.add_argument("--pred-iou-thresh", type=float, default=0.8)
    segment.add_argument("--stability-score-thresh", type=float, default=0.95)
    segment.add_argument("--min-area", type=int, default=0, help="fill holes / remove specks up to this area")
    segment.add_argument("--crop-layers", type=int, default=0)
    segment.add_argument("--overwrite", action="store_true", help="replace existing outputs")

    for name, helptext in (
        ("prompt", "segment the objects of a prompts file (JSON or CSV) on their prompted frames"),
        ("propagate", "track the objects of a prompts file through a stack into a label stack"),
    ):
        p = sub.add_parser(name, help=helptext)
        model_options(p)
        p.add_argument("image", help="image or stack file (TIFF or common formats)")
        p.add_argument("--prompts", required=True, help="prompts file (.json, or .csv with object,frame,x,y,label)")
        p.add_argument("--out", required=True, help="output label TIFF")
        p.add_argument("--axis", type=int, default=None, help="stack axis (default: the prompts file's)")
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
        if name == "propagate":
            p.add_argument("--direction", default=None, choices=["both", "forward", "backward"],
                           help="default: the prompts file's, else both")
        p.set_defaults(precision=None)  # the prompts file's model and precision unless given

    train = sub.add_parser(
        "train",
        help="fine-tune a model on labelled images (or train one from scratch); resumes when run again",
        description="Train into RUN_DIR: best.pt (official checkpoint format) and best.json (metadata) "
        "appear there; running the same command again resumes an interrupted run.",
    )
    train.add_argument("run_dir", help="folder for checkpoints, logs and the best model")
    train.add_argument("--model", default=None, help="model to fine-tune: preset or checkpoint file (default: built-in)")
    train.add_argument("--from-scratch", metavar="PRESET", help="start from random weights of this architecture instead")
    train.add_argument("--images", help="folder of images (TIFF, PNG, ...); 3-D files are stacks")
    train.add_argument("--labels", help="folder of label images with the same file names")
    train.add_argument("--synthetic", action="store_true", help="train on synthetic microscopy (default without --images)")
    train.add_argument("--trainable", default="all", choices=["decoder", "decoder+memory", "all"], help="what learns")
    train.add_argument("--steps", type=int, default=2000)
    train.add_argument("--images-per-step", type=int, default=8)
    train.add_argument("--objects-per-image", type=int, default=8)
    train.add_argument("--video-every", type=int, default=2, help="a video clip every N steps (0: images only)")
    train.add_argument("--lr", type=float, default=5e-4)
    train.add_argument("--focal-weight", type=float, default=20.0, help="focal : dice weight (SAM 2: 20; from scratch: 1)")
    train.add_argument("--eval-every", type=int, default=250)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")

    evaluate = sub.add_parser("evaluate", help="measure a model on held-out synthetic microscopy (the shipped-model table)")
    evaluate.add_argument("--model", default=None, help="preset or checkpoint file (default: built-in)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    evaluate.add_argument("--json", metavar="FILE", help="also write the numbers to this JSON file")

    batch = sub.add_parser(
        "batch",
        help="segment or track many images and stacks, on this machine or a dask cluster; resumes when run again",
        description="Label TIFFs (<name>_labels.tif) and batch_summary.csv/.json go to --out; inputs whose "
        "outputs are complete are skipped, so running the same command again resumes. See docs/batch.md.",
    )
    model_options(batch)
    batch.add_argument("inputs", nargs="+", help="image files, stacks, folders or glob patterns")
    batch.add_argument("--out", required=True, help="output folder")
    batch.add_argument("--mode", default="everything", choices=["everything", "prompts", "propagate"],
                       help="segment everything, the objects of prompts files, or track through stacks")
    batch.add_argument("--prompts", help="prompts file for inputs without their own <name>.prompts.json")
    batch.add_argument("--direction", default="both", choices=["both", "forward", "backward"])
    batch.add_argument("--points-per-side", type=int, default=32)
    batch.add_argument("--pred-iou-thresh", type=float, default=0.8)
    batch.add_argument("--stability-score-thresh", type=float, default=0.95)
    batch.add_argument("--min-area", type=int, default=0, help="fill holes / remove specks up to this area")
    batch.add_argument("--crop-layers", type=int, default=0)
    batch.add_argument("--batch-size", type=int, help="images per image-encoder pass (default: what fits in memory)")
    batch.add_argument("--scheduler", metavar="ADDRESS", help="run on this dask scheduler (tcp://host:8786)")
    batch.add_argument("--local-cluster", type=int, metavar="N", help="run on a local dask cluster of N worker processes")
    batch.add_argument("--overwrite", action="store_true", help="redo every input, replacing existing outputs")

    bench = sub.add_parser("benchmark", help="time embedding, prompting and tracking on this machine")
    model_options(bench)
    bench.add_argument("--size", type=int, default=1024, help="image side in pixels")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .image_checks import ImageInputError
    from .progress import Cancelled
    from .prompts import PromptsFileError

    handlers = {
        "demo": _demo,
        "models": _models,
        "segment": _segment,
        "prompt": _prompt,
        "propagate": _propagate,
        "benchmark": _benchmark,
        "batch": _batch,
        "train": _train,
        "evaluate": _evaluate,
    }
    try:
        return handlers[args.command](args) or 0
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


class _Bar:
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


def _load(args):
    from .loading import load_model

    return load_model(args.model, device=args.device)


def _demo(args) -> None:
    from .demo import has_display, run_demo

    if not args.headless and has_display():
        try:
            from ._widgets._demo_viewer import open_demo_viewer
        except ImportError as err:  # napari not installed: the headless demo still runs
            print(f"napari-sam2: napari is not available ({err}); running the headless demo", file=sys.stderr)
        else:
            open_demo_viewer(args.model)
            return
    run_demo(args.model, args.out, args.device, args.precision)


def _models(args) -> None:
    from .cache import cache_dir
    from .modeling.config import PRESETS
    from .registry import OFFICIAL_CHECKPOINTS

    if args.download:
        from .download import ensure_checkpoint

        print(ensure_checkpoint(args.download))
        return
    if args.checkpoint:
        from .checkpoint import identify_variant, read_checkpoint

        state, _ = read_checkpoint(args.checkpoint)
        config = identify_variant(state, f"The checkpoint {args.checkpoint}")
        params = sum(t.numel() for t in state.values())
        print(f"{args.checkpoint}: {config.name} (SAM {config.version}, {params / 1e6:.1f} M parameters)")
        return
    folder = cache_dir()
    print(f"cache: {folder}")
    for name in PRESETS:
        info = OFFICIAL_CHECKPOINTS.get(name)
        if info is None:
            status = "architecture only"
        elif (folder / info.filename).exists():
            status = "cached"
        else:
            status = f"not downloaded ({info.size / 1e6:.0f} MB)"
        print(f"  {name:24s} {status}")


IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def _image_files(inputs: list[str]) -> list[Path]:
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


def _output_path(path: Path, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write_labels(path: Path, labels) -> None:
    """Write atomically: a half-written file never has the final name."""
    import tifffile

    partial = path.with_name(path.name + ".part")
    tifffile.imwrite(partial, labels, compression="zlib", photometric="minisblack")
    partial.replace(path)


def _segment(args) -> None:
    import numpy as np

    from .api import _read_image
    from .automatic import AutomaticMaskGenerator
    from .normalization import Normalization

    files = _image_files(args.inputs)
    out = Path(args.out)
    targets = [(f, out / f"{f.stem}_labels.tif") for f in files]
    for _, target in targets:
        _output_path(target, args.overwrite)
    generator = AutomaticMaskGenerator(
        _load(args),
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
            labels[i] = generator.generate_labels(plane, norm, progress=_Bar(f"{source.name} [{i + 1}/{len(slices)}]"))
        _write_labels(target, labels if is_stack else labels[0])
        print(f"{source} -> {target}: {int(labels.max())} objects")


def _replay_options(args) -> dict:
    """What the command line overrides of a prompts file (None keeps the file's choice)."""
    return {
        "model": None if args.model is None else _load(args),
        "stack_axis": args.axis,
        "precision": args.precision,
        "device": args.device,
    }


def _prompt(args) -> None:
    from .api import _read_image, run_session
    from .prompts import PromptSession

    session = PromptSession.load(args.prompts)
    target = _output_path(Path(args.out), args.overwrite)
    image = _read_image(Path(args.image))
    labels = run_session(session, image, mode="segment", **_replay_options(args))
    _write_labels(target, labels)
    print(f"{args.image} -> {target}: {len(session.objects)} objects")


def _propagate(args) -> None:
    from .api import _read_image, run_session
    from .prompts import PromptSession

    session = PromptSession.load(args.prompts)
    target = Path(args.out)
    _output_path(target, args.overwrite)
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    image = _read_image(Path(args.image))
    run_session(session, image, out=partial, progress=_Bar("propagate"), mode="propagate",
                direction=args.direction, **_replay_options(args))
    partial.replace(target)
    print(f"{args.image} -> {target}: {len(session.objects)} objects tracked")


def _train(args) -> None:
    import torch

    from .loading import build_model, load_model
    from .training import FolderData, SyntheticData, TrainConfig, Trainer

    if bool(args.images) != bool(args.labels):
        raise ValueError("give both --images and --labels (folders with label images of the same names).")
    if args.images and args.synthetic:
        raise ValueError("choose either --images/--labels or --synthetic.")
    config = TrainConfig(
        steps=args.steps, trainable=args.trainable, images_per_step=args.images_per_step,
        objects_per_image=args.objects_per_image, video_every=args.video_every, lr=args.lr,
        eval_every=args.eval_every, seed=args.seed, focal_weight=args.focal_weight,
    )
    torch.manual_seed(config.seed)
    if args.from_scratch:
        from .training.init import init_from_scratch

        model = init_from_scratch(build_model(args.from_scratch, device=args.device))
        base = f"random {args.from_scratch}"
    else:
        model = load_model(args.model, device=args.device)
        base = str(args.model or model.config.name)
    validation = None
    if args.images:
        data, validation = FolderData(args.images, args.labels).split()
    else:
        data = SyntheticData((model.image_size, model.image_size))
    trainer = Trainer(model, data, args.run_dir, config, validation=validation, base_model=base)
    if trainer.step:
        print(f"resuming {args.run_dir} at step {trainer.step}", file=sys.stderr)
    bar = _Bar("train")

    def progress(step: int, steps: int, stats: dict) -> None:
        bar.label = f"train loss {stats['loss']:.3f}"
        bar(step, steps)

    meta = trainer.run(progress)
    print(f"best model: {Path(args.run_dir) / 'best.pt'} (step {meta['best_step']}, validation score {meta['best_validation_score']:.3f})")


def _evaluate(args) -> None:
    import json

    from .training.evaluate import full_report

    report = full_report(_load(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


def _batch(args) -> int:
    from .batch import BatchProgress, run_batch

    summary = run_batch(
        args.inputs, args.out, mode=args.mode, model=args.model, prompts=args.prompts,
        direction=args.direction, device=args.device, precision=args.precision,
        batch_size=args.batch_size, scheduler=args.scheduler, local_cluster=args.local_cluster or False,
        overwrite=args.overwrite, progress=BatchProgress(), points_per_side=args.points_per_side,
        pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_score_thresh,
        min_mask_region_area=args.min_area, crop_n_layers=args.crop_layers,
    )
    for result in summary.failed:
        print(f"failed: {result.input}: {result.error}")
    print(summary.line())
    print(f"summary: {summary.csv_path}")
    return 1 if summary.failed else 0


def _benchmark(args) -> None:
    import numpy as np

    from .predictor import ImagePredictor
    from .tracker import StackTracker

    model = _load(args)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4000, (args.size, args.size)).astype(np.uint16)
    predictor = ImagePredictor(model, precision=args.precision)
    rows = []

    def timed(label, fn, repeats=3):
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        rows.append((label, (time.perf_counter() - start) / repeats))

    timed("set_image", lambda: predictor.set_image(image))
    timed("predict (1 click)", lambda: predictor.predict(points=[[args.size / 2, args.size / 2]]), 10)
    stack = rng.integers(0, 4000, (5, args.size // 2, args.size // 2)).astype(np.uint16)

    def track():
        tracker = StackTracker(model, stack, precision=args.precision)
        tracker.add_points(0, 1, [[args.size / 4, args.size / 4]])
        for _ in tracker.propagate("forward"):
            pass

    timed("track 5 frames (1 object)", track, 1)
    print(f"model {model.config.name} at {model.image_size} px, device {predictor.device}, precision {predictor.dtype}")
    for label, seconds in rows:
        print(f"  {label:28s} {seconds:8.3f} s")


if __name__ == "__main__":
    sys.exit(main())
