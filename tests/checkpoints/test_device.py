"""Device and dtype selection (checked on CPU by pretending accelerators exist)."""

from __future__ import annotations

import pytest
import torch

from napari_sam2 import build_model
from napari_sam2.checkpoints import device as device_module
from napari_sam2.checkpoints.device import resolve_device, resolve_dtype


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device_module, "mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(device_module, "mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")


def test_explicit_devices(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="has 2 CUDA device"):
        resolve_device("cuda:2")
    monkeypatch.setattr(device_module, "mps_available", lambda: False)
    with pytest.raises(ValueError, match="MPS is not available"):
        resolve_device("mps")
    with pytest.raises(ValueError, match="Unknown device"):
        resolve_device("gpu")


def test_dtypes():
    assert resolve_dtype(None) is torch.float32
    assert resolve_dtype("bf16") is torch.bfloat16
    assert resolve_dtype("FP16") is torch.float16
    assert resolve_dtype(torch.float64) is torch.float64
    with pytest.raises(ValueError, match="floating-point"):
        resolve_dtype(torch.int8)
    with pytest.raises(ValueError, match="Unknown dtype"):
        resolve_dtype("fp8")


def test_model_lands_on_the_resolved_device_and_dtype():
    model = build_model("sam2.1_hiera_test", device="auto", dtype="bf16")
    assert model.device == torch.device("cpu") and model.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
