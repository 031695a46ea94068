"""Reading checkpoint files safely and recognising which SAM 2 variant they hold."""

from __future__ import annotations

import functools
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from ..modeling.config import PRESETS, SAM2Config
from .registry import info_for_filename

StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with what to do about it."""


def read_checkpoint(path: str | Path) -> tuple[StateDict, dict]:
    """The state dict in `path` and the file's other plain entries (e.g. our `config`).

    Accepts the official format ({"model": state_dict}) and a bare state dict. Files are
    loaded with `weights_only=True`: a checkpoint is untrusted input and may not run code.
    """
    path = Path(path).expanduser()
    _check_is_readable_file(path)
    if not _looks_like_torch_file(path):
        raise CheckpointError(f"{path} is {_describe_start(path)}; expected a SAM 2 checkpoint (.pt).")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if _is_refused(err):
            raise _refused_error(path, err) from None
        raise _corrupt_error(path) from None
    except PermissionError:
        raise CheckpointError(f"cannot read {path}: permission denied.") from None
    except Exception:  # any other reader error (truncated archive or pickle, bad records)
        raise _corrupt_error(path) from None
    state, extra = _split_state_dict(path, obj)
    check_finite_weights(path, state)
    return state, extra


def _is_refused(err: Exception) -> bool:
    """Whether torch's weights-only reader refused content (code, classes, unknown pickle
    instructions), as opposed to meeting the end of a truncated file."""
    text = str(err)
    return any(word in text for word in ("GLOBAL", "Unsupported global", "Unsupported operand", "Unsupported class"))


def check_finite_weights(path: str | Path, state: StateDict) -> None:
    """Refuse weights holding NaN or infinity: they load, then give NaN scores and empty masks."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{path}: tensor {name} holds {bad} NaN or infinite values; the weights are broken "
                "(e.g. a diverged training run): use an earlier checkpoint or download the file again."
            )


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (or, in the legacy format, a pickle)."""
    head = path.open("rb").read(4)
    return head == b"PK\x03\x04" or head[:2] in (b"\x80\x02", b"\x80\x04", b"\x80\x05")


def _check_is_readable_file(path: Path) -> None:
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))[:5]
        hint = f" It holds: {', '.join(found)}." if found else " It holds no .pt files."
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; pass the .pt file.{hint}")
    if not path.exists():
        raise CheckpointError(
            f"No checkpoint file at {path}. Check the path, or pass a preset name such as "
            "'sam2.1_hiera_tiny' to use the official weights."
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): delete it and download it again.")


def _describe_start(path: Path) -> str:
    head = path.open("rb").read(512)
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return "a web page or XML document (often a failed download that saved an error page)"
    if text.startswith((b"{", b"[")):
        return "a JSON document"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the weights (fetch the real file with `git lfs pull`)"
    if head[8:9] == b"{" and b'"dtype"' in head:
        return "a safetensors file (Hugging Face layout); use the original .pt checkpoint"
    return "not a PyTorch checkpoint"


def _size_hint(path: Path) -> str:
    info = info_for_filename(path.name)
    size = path.stat().st_size
    if info is None:
        return f"({size:,} bytes)"
    return f"({size:,} bytes; the official {info.filename} has {info.size:,})"


def _refused_error(path: Path, err: Exception) -> CheckpointError:
    first = next((line for line in str(err).splitlines() if "GLOBAL" in line), "")
    detail = f" ({first.strip()})" if first else ""
    return CheckpointError(
        f"Refused to load {path} as unsafe: besides tensors it asks to run or import Python code{detail}. "
        "Checkpoints are loaded with weights_only=True because a pickle can run arbitrary code; "
        "use the official .pt files or re-save the weights as {'model': model.state_dict()}."
    )


def _corrupt_error(path: Path) -> CheckpointError:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if not any(name.endswith("data.pkl") for name in archive.namelist()):
                return CheckpointError(
                    f"{path} is a zip archive that is not a PyTorch checkpoint; expected a SAM 2 "
                    "checkpoint (.pt)."
                )
    return CheckpointError(
        f"{path} is truncated or corrupt {_size_hint(path)}: delete it and download it again."
    )


def _split_state_dict(path: Path, obj: object) -> tuple[StateDict, dict]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a state dict; expected a file saved as "
            "{'model': model.state_dict()}."
        )
    if "model" in obj and isinstance(obj["model"], Mapping):
        state, extra = obj["model"], {k: v for k, v in obj.items() if k != "model"}
    else:
        state, extra = obj, {}
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} holds no tensors; it is not a model checkpoint.")
    if len(tensors) != len(state):
        odd = [k for k in state if k not in tensors][:3]
        raise CheckpointError(f"{path}: entries {odd} of the state dict are not tensors.")
    return dict(tensors), dict(extra)


# ----------------------------------------------------------------------------- variants


@functools.cache
def expected_shapes(config: SAM2Config) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state dict of `config`, built on the meta device (no memory, fast)."""
    from ..modeling.skeleton import skeleton

    model = skeleton(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _match_score(state: StateDict, config: SAM2Config) -> float:
    """Fraction of keys of both that agree in name and shape."""
    expected = expected_shapes(config)
    same = sum(1 for k, s in expected.items() if k in state and tuple(state[k].shape) == s)
    return same / max(len(expected), len(state))


def matches_config(state: StateDict, config: SAM2Config) -> bool:
    """Whether `state` has exactly the keys and shapes of `config`."""
    return _match_score(state, config) == 1.0


def closest_preset(state: StateDict) -> tuple[SAM2Config, float]:
    best = max(PRESETS.values(), key=lambda c: _match_score(state, c))
    return best, _match_score(state, best)


def identify_variant(state: StateDict, source: str = "the checkpoint") -> SAM2Config:
    """The preset whose architecture matches the tensors exactly (size from the trunk's shapes
    and block count, SAM 2 vs 2.1 from the extra 2.1 keys)."""
    matches = [c for c in PRESETS.values() if matches_config(state, c)]
    if matches:
        return matches[0]
    raise mismatch_error(state, None, source)


def mismatch_error(state: StateDict, config: SAM2Config | None, source: str) -> CheckpointError:
    """Explain why `state` does not fit `config` (or any preset), naming the closest preset."""
    foreign = _foreign_format(state)
    if foreign:
        return CheckpointError(f"{source} {foreign}")
    closest, score = closest_preset(state)
    target = config or closest
    expected = expected_shapes(target)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    parts = [f"{source} does not match the architecture of {target.name}:"]
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if wrong_shape:
        parts.append(f"{len(wrong_shape)} tensors of the wrong shape (e.g. {'; '.join(wrong_shape[:2])})")
    if config is not None and score == 1.0:
        parts.append(
            f"The file holds {closest.name} weights: load it as load_model(path) and the variant "
            "is recognised, or pass the preset name that matches it."
        )
    elif score > 0.5:
        parts.append(
            f"The closest preset is {closest.name} ({score:.0%} of tensors agree). If the file was "
            "saved from a wrapped model, save model.state_dict() of the SAM 2 model itself."
        )
    else:
        parts.append("It is not a SAM 2 checkpoint; use one of the official SAM 2 / 2.1 files.")
    return CheckpointError(" ".join(parts))


def _foreign_format(state: StateDict) -> str:
    """A sentence for well-known checkpoint formats that are not SAM 2's, or ''."""
    keys = list(state)
    if any(k.startswith("module.") for k in keys[:5]):
        return (
            "has keys prefixed with 'module.' (saved from a DistributedDataParallel wrapper); "
            "strip the prefix: {k.removeprefix('module.'): v for k, v in state.items()}."
        )
    if "image_encoder.patch_embed.proj.weight" in state and "image_encoder.neck.0.weight" in state:
        return "is a Segment Anything (SAM 1) checkpoint; napari-sam2 needs SAM 2 or SAM 2.1 weights."
    if any(k.startswith(("vision_encoder.", "model.vision_encoder.", "sam2.")) for k in keys[:20]):
        return (
            "is in the Hugging Face Transformers layout; use the original .pt file "
            "(e.g. sam2.1_hiera_tiny.pt) instead."
        )
    return ""
