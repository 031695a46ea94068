"""Choosing the device and dtype a model runs on; nothing here assumes a particular accelerator."""

from __future__ import annotations

import torch

_DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
}


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device is checked to exist."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"Unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                "Device 'cuda' was asked for but CUDA is not available to this PyTorch "
                f"(torch {torch.__version__}); use device='auto' or 'cpu'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"Device {resolved} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
    elif resolved.type == "mps" and not mps_available():
        raise ValueError("Device 'mps' was asked for but MPS is not available; use 'auto' or 'cpu'.")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """None means float32; accepts torch dtypes and the names fp32/bf16/fp16."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(f"Model dtype must be a floating-point type, got {dtype}.")
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"Unknown dtype {dtype!r}: use one of {', '.join(_DTYPES)}.") from None
