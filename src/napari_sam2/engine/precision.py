"""Numeric precision of inference: exact fp32, a fast reduced-precision path where it pays, or
int8 linear layers (module `quantize`) on CPUs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
INT8 = torch.qint8  # stands for the int8 path: int8 linear layers, the rest as `auto` on a CPU


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has bf16 matrix instructions (AVX512-BF16 or AMX)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def cpu_has_vnni() -> bool:
    """True where the CPU has int8 dot-product instructions (AVX512-VNNI or AVX-VNNI)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_vnni_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def int8_kernels_available() -> bool:
    """True where this PyTorch has oneDNN's int8 linear kernels (module `quantize`)."""
    ops = getattr(torch.ops, "onednn", None)
    return torch.backends.mkldnn.is_available() and hasattr(ops, "qlinear_pointwise") and hasattr(ops, "qlinear_prepack")


def resolve_precision(precision: str, device: torch.device, model: object | None = None) -> torch.dtype:
    """The compute dtype for `precision` on `device` (`INT8` for the int8 path).

    auto: int8 on CPUs with int8 dot-product instructions for a model whose int8 masks were
    measured within the rule (`model.int8_within_rule`, from its metadata: median IoU with
    fp32 >= 0.97 and 5th percentile >= 0.9 on real nuclei); else bf16 on CPUs with bf16
    matrix instructions and on CUDA GPUs that support it, fp16 on older CUDA GPUs, fp32
    elsewhere (MPS included, until reduced precision is shown to be right).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}.")
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if precision == "int8":
        if device.type != "cpu":
            raise ValueError("precision 'int8' runs on CPUs only; use 'bf16' or 'fp16' on a GPU.")
        return INT8
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and getattr(model, "int8_within_rule", False) and cpu_has_vnni() and int8_kernels_available():
        return INT8
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


@contextlib.contextmanager
def compute_precision(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Run the enclosed model calls in `dtype` (autocast), or plainly when it is fp32.

    INT8: the int8 layers run in int8 and return the rest's dtype, which is what `auto` picks
    on a CPU (bf16 where it has bf16 instructions, else fp32).
    """
    if dtype == INT8:
        dtype = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
