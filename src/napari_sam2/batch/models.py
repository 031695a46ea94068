"""Models loaded once per process and reused by every input it handles (on a dask worker, by
every task the worker runs)."""

from __future__ import annotations

import threading
from typing import Any

from .spec import BatchSpec

_MODELS: dict[tuple, Any] = {}
_LOCK = threading.Lock()
loads = 0  # models loaded by this process (for tests and diagnostics)


def model_key(spec: BatchSpec) -> tuple:
    return (spec.model, spec.device, spec.image_size)


def cached_model(spec: BatchSpec) -> Any:
    """The model of `spec`, loaded on first use in this process."""
    global loads
    key = model_key(spec)
    with _LOCK:
        if key not in _MODELS:
            from ..checkpoints.loading import load_model

            _MODELS[key] = load_model(spec.model, device=spec.device, image_size=spec.image_size)
            loads += 1
        return _MODELS[key]


def clear() -> None:
    """Forget the loaded models (frees their memory once nothing else holds them)."""
    with _LOCK:
        _MODELS.clear()
