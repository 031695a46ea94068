"""`load_model`: a ready-to-run SAM 2 model from a preset name or a checkpoint file."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..modeling.config import PRESETS, SAM2Config, get_config
from ..modeling.sam2 import SAM2Model
from ..modeling.skeleton import skeleton
from ..progress import ProgressCallback, TextProgress
from .device import resolve_device, resolve_dtype
from .download import ensure_checkpoint
from .files import (
    CheckpointError,
    identify_variant,
    matches_config,
    mismatch_error,
    read_checkpoint,
)
from .hf_hub import hub_checkpoint
from .registry import OFFICIAL_CHECKPOINTS, CheckpointInfo, all_checkpoints
from .shipped import SHIPPED_MODEL, has_shipped_model, shipped_weights

# `load_model()` without a name: the first of these official models whose weights are in the
# cache, else the shipped model (so that it works offline).
PREFERRED_OFFICIAL = (
    "sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large",
    "sam2_hiera_tiny", "sam2_hiera_small", "sam2_hiera_base_plus", "sam2_hiera_large",
)


def default_model() -> str:
    """The model `load_model()` loads: a cached official one, else the shipped one (when this
    installation has it), else sam2.1_hiera_tiny (downloaded on first use)."""
    from .cache import cache_dir

    folder = cache_dir()
    for name in PREFERRED_OFFICIAL:
        if (folder / OFFICIAL_CHECKPOINTS[name].filename).is_file():
            return name
    return SHIPPED_MODEL if has_shipped_model() else PREFERRED_OFFICIAL[0]


def build_model(
    name: str | SAM2Config,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    image_size: int | None = None,
) -> SAM2Model:
    """A randomly initialised model of a preset (for training from scratch and for tests)."""
    config = get_config(name) if isinstance(name, str) else name
    if image_size is not None:
        config = config.with_image_size(image_size)
    model = SAM2Model(config)
    return model.to(resolve_device(device), resolve_dtype(dtype)).eval()


def load_model(
    name_or_path: str | Path | None = None,
    checkpoint: str | Path | None = None,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    image_size: int | None = None,
    progress: ProgressCallback | None = None,
    offline: bool | None = None,
) -> SAM2Model:
    """Load a SAM 2 / 2.1 model in eval mode.

    name_or_path: a preset name ('sam2.1_hiera_tiny', ...) or Hugging Face id (the cache
        first, then the Hub when huggingface_hub is installed), whose weights
        come from `checkpoint` or the cache (downloaded into it when missing); the name of a
        checkpoint added with `register_checkpoint`; or a path to a .pt file, whose variant is
        recognised from its tensors. None loads the default: the first official model in the
        cache (tiny before larger, 2.1 before 2), else the model shipped with the package, else
        sam2.1_hiera_tiny (downloaded).
    device: 'auto' (cuda, then mps, then cpu), or any torch device.
    image_size: run at another input resolution than the trained one (multiple of 32); for a
        checkpoint file, the default is the size in the metadata file beside it (`best.json`).
    progress: called with (bytes done, total) during a download; default: a bar on stderr.
    offline: never download (default: the NAPARI_SAM2_OFFLINE environment variable).
    """
    if name_or_path is None:
        name_or_path = default_model()
    if checkpoint is None and not isinstance(name_or_path, Path):
        hub = hub_checkpoint(str(name_or_path), offline)
        if hub is not None:  # a Hugging Face id: a registry name, (preset, file) or a file
            name_or_path, checkpoint = hub
    text = str(name_or_path)
    is_preset = not isinstance(name_or_path, Path) and _is_preset(text)
    registered = None
    if not isinstance(name_or_path, Path) and not is_preset:
        registered = all_checkpoints().get(text)  # added with register_checkpoint
    if is_preset or registered is not None:
        config = get_config(registered.preset if registered is not None else text)
        if checkpoint is not None:
            path = Path(checkpoint).expanduser()
        else:
            path = _cached_weights(config, progress, registered, offline)
        state, _ = read_checkpoint(path)
        if not matches_config(state, config):
            raise mismatch_error(state, config, f"The checkpoint {path}")
    else:
        if checkpoint is not None:
            raise ValueError("Pass either a checkpoint path or a preset name with checkpoint=, not both.")
        path = Path(text).expanduser()
        if not path.exists() and not text.endswith((".pt", ".pth")) and "/" not in text:
            raise KeyError(
                f"{text!r} is neither a known preset nor an existing file. "
                f"Known presets: {', '.join(PRESETS)}."
            )
        state, _ = read_checkpoint(path)
        config = identify_variant(state, f"The checkpoint {path}")
        if image_size is None:
            image_size = trained_image_size(path)
    if image_size is not None:
        config = config.with_image_size(image_size)
    model = _instantiate(config, state, resolve_device(device), resolve_dtype(dtype))
    meta = _metadata(path)
    filters = meta.get("segment_everything")
    if isinstance(filters, dict):  # the model's own mask filters, chosen on validation images
        model.segment_everything_defaults = {k: float(v) for k, v in filters.items() if isinstance(v, (int, float))}
    orientations = meta.get("prompt_orientations")
    if isinstance(orientations, dict) and "orientations" in orientations:  # checked by engine.orientations
        model.prompt_orientations = orientations["orientations"]  # what prompts average over
    int8 = meta.get("int8")
    if isinstance(int8, dict) and int8.get("within_rule") is True:  # lets 'auto' pick int8 (engine.precision)
        model.int8_within_rule = True
    smoothing = meta.get("upscale_smoothing")
    if isinstance(smoothing, (int, float)) and smoothing > 0:  # a blur before enlarging (images.model_input)
        model.upscale_smoothing = float(smoothing)
    return model


def trained_image_size(checkpoint: Path) -> int | None:
    """The input size recorded in the metadata file beside a checkpoint (`best.json` beside
    `best.pt`, as training writes it), so that a model fine-tuned at another size loads at it."""
    size = _metadata(checkpoint).get("image_size")
    return size if isinstance(size, int) and size > 0 else None


def _metadata(checkpoint: Path) -> dict:
    """The metadata file beside a checkpoint (`x.json` beside `x.pt`), or {}."""
    try:
        meta = json.loads(checkpoint.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _is_preset(text: str) -> bool:
    try:
        get_config(text)
    except KeyError:
        return False
    return True


def _cached_weights(
    config: SAM2Config,
    progress: ProgressCallback | None = None,
    info: CheckpointInfo | None = None,
    offline: bool | None = None,
) -> Path:
    """The weights of `config` (official unless `info` names others) from the cache, downloaded
    into it when missing; offline mode raises an error saying which file to put where."""
    if info is None and config.name == SHIPPED_MODEL:
        return shipped_weights()
    info = info or OFFICIAL_CHECKPOINTS.get(config.name)
    if info is None:
        raise CheckpointError(
            f"{config.name} has no official weights: pass checkpoint=<path to a .pt file>, "
            "or use build_model() for random weights."
        )
    if progress is None:
        progress = TextProgress(f"Downloading {info.filename}")
    return ensure_checkpoint(info, offline=offline, progress=progress, strict=False)


def _instantiate(
    config: SAM2Config, state: dict, device: torch.device, dtype: torch.dtype
) -> SAM2Model:
    """Build a skeleton (nothing allocated), then take the checkpoint's tensors."""
    model = skeleton(config)
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device=device, dtype=dtype).eval()
