"""`train` and `evaluate`: fine-tuning or training from scratch, and the held-out table."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import load_from_args, orientations_option


def register(sub) -> None:
    train = sub.add_parser(
        "train",
        help="fine-tune a model on labelled images (or train one from scratch); resumes when run again",
        description="Train into RUN_DIR: best.pt (official checkpoint format) and best.json (metadata) "
        "appear there; running the same command again resumes an interrupted run.",
    )
    train.add_argument("run_dir", help="folder for checkpoints, logs and the best model")
    train.add_argument("--model", default=None, help="model to fine-tune: preset or checkpoint file (default: built-in)")
    train.add_argument("--from-scratch", metavar="PRESET", help="start from random weights of this architecture instead")
    train.add_argument(
        "--grow-to", metavar="PRESET",
        help="first grow the model's trunk into this deeper preset (added blocks start as identities)",
    )
    train.add_argument("--image-size", type=int, default=None, help="model input size in pixels (default: the model's)")
    train.add_argument("--images", help="folder of images (TIFF, PNG, ...); 3-D files are stacks")
    train.add_argument("--labels", help="folder of label images with the same file names")
    train.add_argument(
        "--data", action="append", metavar="DIR",
        help="a labelled dataset folder (images/ + labels/, optional index.csv with a modality column); "
        "repeatable; drawn with scale, crop, intensity, noise and blur augmentations",
    )
    train.add_argument(
        "--whole-images", type=float, default=0.0, metavar="SHARE",
        help="share of --data views that are 70-100%% of an image at its own scale, stretched to the "
        "model's input as inference does (default 0: crops only)",
    )
    train.add_argument("--modality", action="append", help="only these modalities of --data (index.csv); repeatable")
    train.add_argument("--val", metavar="DIR", help="dataset folder for choosing the best checkpoint (whole images, as read)")
    train.add_argument("--synthetic", action="store_true", help="train on synthetic microscopy (default without --images/--data); with --data, mixed in")
    train.add_argument("--synthetic-share", type=float, default=0.3, help="share of synthetic images and clips beside --data")
    train.add_argument(
        "--synthetic-size", type=int, default=None,
        help="side of the synthetic images (default: the model's input size; the model resizes them to it)",
    )
    train.add_argument("--trainable", default="all", choices=["decoder", "decoder+memory", "all"], help="what learns")
    train.add_argument("--steps", type=int, default=2000)
    train.add_argument("--images-per-step", type=int, default=8)
    train.add_argument("--objects-per-image", type=int, default=8)
    train.add_argument("--video-every", type=int, default=2, help="a video clip every N steps (0: images only)")
    train.add_argument("--clip-frames", type=int, default=5, help="frames per video clip")
    train.add_argument("--clip-objects", type=int, default=4, help="objects tracked per clip")
    train.add_argument(
        "--local-memory-init", action="store_true",
        help="first re-initialise memory attention to attend locally (a model whose tracking never learned)",
    )
    train.add_argument("--lr", type=float, default=5e-4)
    train.add_argument("--warmup", type=int, default=100, help="steps of linear learning-rate warm-up")
    train.add_argument("--focal-weight", type=float, default=20.0, help="focal : dice weight (SAM 2: 20; from scratch: 1)")
    train.add_argument("--eval-every", type=int, default=250)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16"],
        help="bf16: forward passes under bf16 autocast (about 0.6x the step time on CPUs with AVX512-BF16)",
    )
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")

    evaluate = sub.add_parser(
        "evaluate", help="measure a model on real labelled images (beside classical baselines) and held-out synthetic microscopy",
        description="Real data first: --data folders (images/ + labels/, optional index.csv with a modality column) "
        "and --shared (../shared/data: DSB 2018 val, BBBC050 z-stacks, GOWT1 time-lapse); --synthetic adds the "
        "synthetic held-out table (the default when no real data is named).",
    )
    evaluate.add_argument("--model", default=None, help="preset or checkpoint file (default: built-in)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    evaluate.add_argument("--data", action="append", metavar="DIR", help="a labelled dataset folder; repeatable")
    evaluate.add_argument("--shared", metavar="DIR", help="the shared real data folder (dsb2018/, bbbc050/, ctc/)")
    evaluate.add_argument("--synthetic", action="store_true", help="also the synthetic held-out table")
    evaluate.add_argument("--limit", type=int, default=None, help="at most this many images per dataset")
    evaluate.add_argument("--objects", type=int, default=20, help="objects prompted per image (plain prompts)")
    evaluate.add_argument("--zoom-objects", type=int, default=6, help="objects prompted per image with zoom (0: skip)")
    orientations_option(evaluate, "average the prompts' masks over", "the model's own")
    evaluate.add_argument("--json", metavar="FILE", help="also write the numbers to this JSON file")
    train.set_defaults(handler=_train)
    evaluate.set_defaults(handler=_evaluate)


def _train(args) -> None:
    import torch

    from ..checkpoints.loading import build_model, load_model
    from ..progress import TextProgress
    from ..training import FolderData, SyntheticData, TrainConfig, Trainer
    from ..training.real_data import LabelledDataset, MixedData

    if bool(args.images) != bool(args.labels):
        raise ValueError("give both --images and --labels (folders with label images of the same names).")
    if args.grow_to and args.from_scratch:
        raise ValueError(
            "--grow-to grows a trained model (--model); to start deeper, pass the deeper preset to --from-scratch."
        )
    if args.whole_images and not args.data:
        raise ValueError("--whole-images draws views of --data images; give --data DIR.")
    if args.images and (args.synthetic or args.data):
        raise ValueError("choose either --images/--labels or --data/--synthetic.")
    config = TrainConfig(
        steps=args.steps, trainable=args.trainable, images_per_step=args.images_per_step,
        objects_per_image=args.objects_per_image, video_every=args.video_every, lr=args.lr,
        eval_every=args.eval_every, seed=args.seed, focal_weight=args.focal_weight, warmup=args.warmup,
        clip_frames=args.clip_frames, clip_objects=args.clip_objects, local_memory_init=args.local_memory_init,
        precision=args.precision,
    )
    torch.manual_seed(config.seed)
    if args.from_scratch:
        from ..training.init import init_from_scratch

        model = init_from_scratch(build_model(args.from_scratch, device=args.device, image_size=args.image_size))
        base = f"random {args.from_scratch}"
    else:
        model = load_model(args.model, device=args.device, image_size=args.image_size)
        base = str(args.model or model.config.name)
        if args.grow_to:
            from ..modeling.config import get_config
            from ..training.grow import grow

            model = grow(model, get_config(args.grow_to))
            base += f", grown into {args.grow_to}"
    validation = None
    if args.images:
        if args.synthetic_size:
            raise ValueError("--synthetic-size is for --synthetic training.")
        data, validation = FolderData(args.images, args.labels).split()
    elif args.data:
        share = (1 - args.synthetic_share) / len(args.data)
        parts = [(LabelledDataset(d, args.modality, whole_share=args.whole_images), share) for d in args.data]
        if args.synthetic:
            side = args.synthetic_size or model.image_size
            parts.append((SyntheticData((side, side)), args.synthetic_share))
        data = MixedData(parts)
    else:
        side = args.synthetic_size or model.image_size
        data = SyntheticData((side, side))
    if args.val:
        validation = LabelledDataset(args.val, args.modality, augment=False)
    trainer = Trainer(model, data, args.run_dir, config, validation=validation, base_model=base)
    if trainer.step:
        print(f"resuming {args.run_dir} at step {trainer.step}", file=sys.stderr)
    bar = TextProgress("train", unit="step")

    def progress(step: int, steps: int, stats: dict) -> None:
        bar.postfix = f"loss {stats['loss']:.3f}"
        bar(step, steps)

    meta = trainer.run(progress)
    print(f"best model: {Path(args.run_dir) / 'best.pt'} (step {meta['best_step']}, validation score {meta['best_validation_score']:.3f})")


def _evaluate(args) -> None:
    import json

    from ..training.evaluate import full_report
    from ..training.real_eval import dataset_report, shared_report

    model = load_from_args(args)
    options = {"limit": args.limit, "max_objects": args.objects, "zoom_objects": args.zoom_objects,
               "orientations": args.orientations}
    report: dict = {"model": str(args.model or model.config.name)}
    for folder in args.data or []:
        report[f"data:{folder}"] = dataset_report(model, folder, **options)
    if args.shared:
        report["shared"] = shared_report(model, args.shared, **options)
    if args.synthetic or not (args.data or args.shared):
        report["synthetic"] = full_report(model)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
