"""A model without memory or initialisation (meta tensors), to be filled from a checkpoint."""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

from .config import SAM2Config
from .sam2 import SAM2Model


class _SkipInit(TorchFunctionMode):
    """Makes torch.nn.init functions no-ops.

    Random initialisation of meta tensors goes through torch's Python reference kernels, which
    import torch._dynamo and with it triton; triton's LLVM crashes a process that already holds
    an OpenGL context (a napari viewer). Skipped, a skeleton is also built in milliseconds.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", "") == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def skeleton(config: SAM2Config) -> SAM2Model:
    """The model of `config` with meta parameters: shapes only, nothing allocated."""
    with torch.device("meta"), _SkipInit():
        return SAM2Model(config)
