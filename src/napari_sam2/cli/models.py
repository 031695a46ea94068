"""`models`, `demo` and `benchmark`: what is installed, a first run, and timings."""

from __future__ import annotations

import sys
import time

from .common import load_from_args, model_options


def register(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="segment and track cells of a synthetic time-lapse, offline (opens napari if there is a display)",
    )
    model_options(demo)
    demo.add_argument("--out", default="napari-sam2-demo", help="folder for the outputs")
    demo.add_argument("--headless", action="store_true", help="never open napari, even with a display")
    demo.set_defaults(handler=_demo)

    models = sub.add_parser("models", help="list model presets, show what a checkpoint file is, download one")
    models.add_argument("checkpoint", nargs="?", help="a .pt file to inspect")
    models.add_argument("--download", metavar="PRESET", help="download a preset's official weights into the cache")
    models.set_defaults(handler=_models)


def register_benchmark(sub) -> None:
    bench = sub.add_parser("benchmark", help="time embedding, prompting and tracking on this machine")
    model_options(bench)
    bench.add_argument("--size", type=int, default=1024, help="image side in pixels")
    bench.set_defaults(handler=_benchmark)


def _demo(args) -> None:
    from ..demo import has_display, run_demo

    if not args.headless and has_display():
        try:
            from .._widgets._demo_viewer import open_demo_viewer
        except ImportError as err:  # napari not installed: the headless demo still runs
            print(f"napari-sam2: napari is not available ({err}); running the headless demo", file=sys.stderr)
        else:
            open_demo_viewer(args.model)
            return
    run_demo(args.model, args.out, args.device, args.precision)


def _models(args) -> None:
    from ..checkpoints.cache import cache_dir
    from ..checkpoints.registry import OFFICIAL_CHECKPOINTS
    from ..modeling.config import PRESETS

    if args.download:
        from ..checkpoints.download import ensure_checkpoint

        print(ensure_checkpoint(args.download))
        return
    if args.checkpoint:
        from ..checkpoints.files import identify_variant, read_checkpoint

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


def _benchmark(args) -> None:
    import numpy as np

    from ..engine.predictor import ImagePredictor
    from ..engine.tracker import StackTracker

    model = load_from_args(args)
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
