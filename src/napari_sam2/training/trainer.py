"""The training loop: image and video steps, best-model checkpoints, resume after interruption.

A run folder holds `state.pt` (model, optimiser, step, best score: enough to resume exactly),
`best.pt` (the best model so far, in the official `{"model": state_dict}` format that
`load_model` reads), `best.json` (what it was trained on, how long, and its metrics) and
`log.csv` (losses per step). The data of step n are drawn from (seed, n), so a resumed run sees
exactly the data an uninterrupted one would have seen.

The state is saved every `checkpoint_every` steps, every `checkpoint_seconds`, and when the run
is interrupted (Ctrl-C finishes the step under way, saves, then stops; a second Ctrl-C stops at
once and keeps the last save). On resume, log rows after the saved step are dropped, so the logs
always describe the resumed run exactly once per step.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..images.model_input import upscale_smoothing
from ..modeling.sam2 import SAM2Model
from ..progress import Cancelled
from .batches import augment, image_tensor, labels_at, pick_objects
from .evaluate import quick_score
from .image_step import PromptMix, image_loss
from .init import localise_memory_attention
from .losses import LossWeights
from .video_step import clip_loss

TRAINABLE = ("decoder", "decoder+memory", "all")
TRAIN_PRECISIONS = ("fp32", "bf16")
_DECODER = ("sam_prompt_encoder", "sam_mask_decoder")
_MEMORY = (
    "memory_attention", "memory_encoder", "obj_ptr_proj", "obj_ptr_tpos_proj", "mask_downsample",
    "maskmem_tpos_enc", "no_mem_embed", "no_mem_pos_enc", "no_obj_ptr", "no_obj_embed_spatial",
)


@dataclass
class TrainConfig:
    """What a run does; saved with every checkpoint."""

    steps: int = 2000
    trainable: str = "all"  # "decoder", "decoder+memory" or "all"
    images_per_step: int = 8
    objects_per_image: int = 8
    video_every: int = 2  # a video step after every n image steps (0: images only)
    clip_frames: int = 5
    clip_objects: int = 4
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: int = 100
    grad_clip: float = 1.0
    # SAM 2's focal : dice weight is 20 : 1, right for fine-tuning; from scratch, masks collapse
    # to empty under it (random features cannot yet tell objects apart) and 1 : 1 learns.
    focal_weight: float = 20.0
    # Re-initialise memory attention to attend locally before training (`localise_memory_attention`):
    # for a model whose memory path never learned, e.g. one trained on images first.
    local_memory_init: bool = False
    eval_every: int = 250
    checkpoint_every: int = 50
    checkpoint_seconds: float = 600.0  # also save the state this often (long steps, slow machines)
    seed: int = 0
    # "bf16": forward passes under bf16 autocast (weights, optimiser and losses stay fp32); on a
    # CPU with AVX512-BF16 a step takes about 0.6x the fp32 time.
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable={self.trainable!r}: choose one of {TRAINABLE}.")
        if self.steps < 1 or self.images_per_step < 1:
            raise ValueError("steps and images_per_step must be at least 1.")
        if self.precision not in TRAIN_PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: choose one of {TRAIN_PRECISIONS}.")


def set_trainable(model: SAM2Model, trainable: str) -> list[torch.nn.Parameter]:
    """Freeze everything but the chosen parts; return the parameters that train."""
    parts = {"decoder": _DECODER, "decoder+memory": _DECODER + _MEMORY}.get(trainable)
    params = []
    for name, p in model.named_parameters():
        train = parts is None or name.split(".")[0] in parts
        p.requires_grad_(train)
        if train:
            params.append(p)
    return params


def save_official(model: SAM2Model, path: Path, metadata: dict | None = None) -> None:
    """`{"model": state_dict}` written atomically, plus `<name>.json` with the metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    torch.save({"model": state}, tmp)
    os.replace(tmp, path)
    if metadata is not None:
        path.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")


class Trainer:
    """Trains `model` on `data` (SyntheticData or FolderData), evaluating on `validation`."""

    def __init__(
        self,
        model: SAM2Model,
        data,
        run_dir: str | Path,
        config: TrainConfig = TrainConfig(),
        validation=None,
        base_model: str = "",
        score: Callable[[SAM2Model], float] | None = None,
    ) -> None:
        self.model, self.data, self.validation = model, data, validation
        self.run_dir = Path(run_dir)
        self.config = config
        self.base_model = base_model or model.config.name
        self._tracks = tracks = config.video_every > 0 and data.has_clips and config.trainable != "decoder"
        self.score = score or (lambda m: quick_score(m, tracking=tracks) if validation is None else _folder_score(m, validation))
        if config.local_memory_init:
            localise_memory_attention(model)
        self.params = set_trainable(model, config.trainable)
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.step = 0
        self.best = -math.inf
        self.best_step = 0
        self.seconds = 0.0
        self._resume()

    # ------------------------------------------------------------------ state

    @property
    def state_path(self) -> Path:
        return self.run_dir / "state.pt"

    def _resume(self) -> None:
        if self.state_path.exists():
            self._load_state()
        for name in ("log.csv", "eval.csv"):  # rows of steps after the saved state are redone
            _trim_log(self.run_dir / name, self.step)

    def _load_state(self) -> None:
        state = torch.load(self.state_path, map_location=self.model.device, weights_only=True)
        saved = state["config"]
        if saved["trainable"] != self.config.trainable or saved["seed"] != self.config.seed:
            raise ValueError(
                f"{self.run_dir} holds a run with trainable={saved['trainable']!r}, seed={saved['seed']}; "
                "resume it with the same settings or choose another folder."
            )
        model = (self.model.config.name, self.model.image_size)
        saved_model = (state.get("architecture", model[0]), state.get("image_size", model[1]))
        try:
            if saved_model != model:
                raise RuntimeError("another architecture")
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError):
            raise ValueError(
                f"{self.run_dir} holds a run of {saved_model[0]} at {saved_model[1]} px, which does not "
                f"match the model given ({model[0]} at {model[1]} px); resume it with the same "
                "--model / --from-scratch and --image-size, or choose another folder."
            ) from None
        self.step, self.best, self.best_step = int(state["step"]), float(state["best"]), int(state["best_step"])
        self.seconds = float(state.get("seconds", 0.0))

    def _save_state(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        torch.save(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                "best": self.best,
                "best_step": self.best_step,
                "seconds": self.seconds,
                "config": asdict(self.config),
                "architecture": self.model.config.name,
                "image_size": self.model.image_size,
            },
            tmp,
        )
        os.replace(tmp, self.state_path)
        self._saved_at = time.monotonic()

    # ------------------------------------------------------------------ loop

    def _lr(self, step: int) -> float:
        c = self.config
        if step < c.warmup:
            return c.lr * (step + 1) / c.warmup
        progress = (step - c.warmup) / max(c.steps - c.warmup, 1)
        return c.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))

    def train_step(self) -> dict[str, float]:
        """One optimiser step (image batch, plus a clip every `video_every` steps)."""
        c = self.config
        rng = np.random.default_rng([c.seed, self.step])
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        train_encoder = c.trainable == "all"
        with self._autocast():
            loss, stats = self._image_loss(rng, train_encoder)
            if c.video_every and self.data.has_clips and self.step % c.video_every == c.video_every - 1:
                video, video_stats = self._clip_loss(rng, train_encoder)
                if video is not None:
                    loss = loss + video
                    stats.update({f"video_{k}": v for k, v in video_stats.items()})
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, c.grad_clip)
        self.optimizer.step()
        self.model.eval()
        stats["loss"] = float(loss.detach())
        return stats

    def _autocast(self):
        """bf16 autocast on the model's device for `precision="bf16"`, else nothing."""
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.model.device.type, dtype=torch.bfloat16)

    def _image_loss(self, rng, train_encoder):
        size = self.model.image_size
        images, labels, objects = [], [], []
        while len(images) < self.config.images_per_step:
            image, lab = augment(*self.data.image(rng, self.step / self.config.steps), rng)
            lab = labels_at(lab, size)
            ids = pick_objects(lab, rng, self.config.objects_per_image)
            if len(ids):
                images.append(image_tensor(image, size))
                labels.append(lab)
                objects.append(ids)
        batch = torch.stack(images).to(self.model.device, self.model.dtype)
        weights = LossWeights(focal=self.config.focal_weight)
        return image_loss(self.model, batch, labels, objects, rng, PromptMix(), weights, train_encoder)

    def _clip_loss(self, rng, train_encoder):
        size = self.model.image_size
        clip = self.data.clip(rng, self.config.clip_frames, self.step / self.config.steps)
        frames, labels = augment(clip.frames, clip.labels, rng)
        labels = np.stack([labels_at(f, size) for f in labels])
        ids = pick_objects(labels[0], rng, self.config.clip_objects)
        if not len(ids):
            return None, {}
        masks = np.stack([labels == i for i in ids])  # (K, T, S, S)
        x = torch.stack([image_tensor(f, size) for f in frames]).to(self.model.device, self.model.dtype)
        weights = LossWeights(focal=self.config.focal_weight)
        return clip_loss(self.model, x, masks, rng, weights, train_encoder)

    def run(
        self,
        progress: Callable[[int, int, dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict:
        """Train until `config.steps`, checkpointing and evaluating; returns the best metadata.

        progress(step, steps, stats) after every step; should_stop() is checked between steps
        (the state is saved, so running again resumes)."""
        c = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.run_dir / "log.csv"
        self._saved_at = time.monotonic()
        with _interrupt_between_steps() as interrupted:
            while self.step < c.steps:
                if interrupted():
                    self._save_state()
                    raise KeyboardInterrupt(f"interrupted at step {self.step}; the state is saved, run again to resume")
                if should_stop is not None and should_stop():
                    self._save_state()
                    raise Cancelled(f"stopped at step {self.step}; run again to resume")
                start = time.perf_counter()
                stats = self.train_step()
                self.seconds += time.perf_counter() - start
                self.step += 1
                _append_log(log_path, self.step, stats)
                if self.step % c.eval_every == 0 or self.step == c.steps:
                    self._evaluate()
                due = time.monotonic() - self._saved_at >= c.checkpoint_seconds
                if self.step % c.checkpoint_every == 0 or self.step == c.steps or due:
                    self._save_state()
                if progress is not None:
                    progress(self.step, c.steps, stats)
        return self.metadata()

    def _evaluate(self) -> None:
        score = self.score(self.model)
        _append_log(self.run_dir / "eval.csv", self.step, {"score": score}, ("score",))
        if score > self.best:
            self.best, self.best_step = score, self.step
            save_official(self.model, self.run_dir / "best.pt", self.metadata())

    def score_description(self) -> str:
        prompts = "mean IoU of centre clicks, tight boxes and 1 click + 2 corrections"
        if self.validation is not None:
            return f"{prompts} on held-out files"
        return f"{prompts}, averaged with tracking IoU (16 frames)" if self._tracks else prompts

    def metadata(self) -> dict:
        smoothing = upscale_smoothing(self.model)  # the base model's input rule goes on with it
        return {
            **({"upscale_smoothing": smoothing} if smoothing else {}),
            "architecture": self.model.config.name,
            "image_size": self.model.image_size,
            "base_model": self.base_model,
            "training_data": self.data.describe(),
            "config": asdict(self.config),
            "steps_done": self.step,
            "best_step": self.best_step,
            "best_validation_score": self.best,
            "validation_score": self.score_description(),
            "train_seconds": round(self.seconds, 1),
            "torch": torch.__version__,
            "machine": f"{platform.machine()} {platform.system()}, device {self.model.device}",
        }


def _folder_score(model: SAM2Model, validation) -> float:
    from .evaluate import prompt_scores

    rng = np.random.default_rng(0)
    pairs = [validation.image(rng) for _ in range(min(16, 2 * len(validation.pairs)))]
    s = prompt_scores(model, pairs, max_objects=6)
    return (s.click + s.box + s.click_2_corrections) / 3


_STEP_COLUMNS = ("loss", "mask", "iou_loss", "presence", "iou")
LOG_COLUMNS = (*_STEP_COLUMNS, *(f"video_{k}" for k in _STEP_COLUMNS[1:]))


@contextlib.contextmanager
def _interrupt_between_steps():
    """Within the block, a first Ctrl-C (SIGINT) only sets a flag that the loop checks between
    steps (so the state saved is never half an optimiser step); a second one interrupts at once.
    Outside the main thread signals cannot be caught and Ctrl-C interrupts as usual."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag.is_set
        return

    def on_sigint(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()
        print("\ninterrupting after this step (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield flag.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _trim_log(path: Path, step: int) -> None:
    """Drop the rows of steps after `step` (done after the last save, so done again on resume)."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(kept) == len(rows):
        return
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(tmp, path)


def _append_log(path: Path, step: int, stats: dict, columns: tuple[str, ...] = LOG_COLUMNS) -> None:
    """One row per step; columns a step does not have (no clip this step) stay empty."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", *columns])
        writer.writerow([step, *(f"{stats[k]:.5g}" if k in stats else "" for k in columns)])
