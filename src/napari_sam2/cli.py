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

    demo = sub.add_parser("demo", help="segment a synthetic fluorescence image, offline")
    model_options(demo)
    demo.add_argument("--out", default="napari-sam2-demo", help="folder for the outputs")

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
        p.add_argument("--axis", type=int, default=0 if name == "propagate" else None, help="stack axis")
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
        if name == "propagate":
            p.add_argument("--direction", default="both", choices=["both", "forward", "backward"])

    bench = sub.add_parser("benchmark", help="time embedding, prompting and tracking on this machine")
    model_options(bench)
    bench.add_argument("--size", type=int, default=1024, help="image side in pixels")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .image_input import ImageInputError
    from .progress import Cancelled
    from .prompts import PromptsFileError

    handlers = {
        "demo": _demo,
        "models": _models,
        "segment": _segment,
        "prompt": _prompt,
        "propagate": _propagate,
        "benchmark": _benchmark,
    }
    try:
        handlers[args.command](args)
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
    from .demo import run_demo

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
    tifffile.imwrite(partial, labels, compression="zlib")
    partial.replace(path)


def _segment(args) -> None:
    import numpy as np

    from .api import _read_image
    from .automatic import AutomaticMaskGenerator
    from .image_input import Normalization

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


def _prompt(args) -> None:
    from .api import _read_image, segment_objects
    from .prompts import PromptSession

    session = PromptSession.load(args.prompts)
    target = _output_path(Path(args.out), args.overwrite)
    image = _read_image(Path(args.image))
    labels = segment_objects(image, session, _load(args), args.precision, stack_axis=args.axis)
    _write_labels(target, labels)
    print(f"{args.image} -> {target}: {len(session.objects)} objects")


def _propagate(args) -> None:
    from .api import _read_image, propagate
    from .prompts import PromptSession

    session = PromptSession.load(args.prompts)
    target = Path(args.out)
    _output_path(target, args.overwrite)
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    image = _read_image(Path(args.image))
    propagate(image, session, _load(args), out=partial, direction=args.direction, precision=args.precision,
              stack_axis=args.axis, progress=_Bar("propagate"))
    partial.replace(target)
    print(f"{args.image} -> {target}: {len(session.objects)} objects tracked")


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
