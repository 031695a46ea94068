"""The int8 path: the image encoder's and memory attention's linear layers as int8 matrix
products (CPUs with AVX512-VNNI or AVX-VNNI run them several times faster than fp32).

Dynamic quantisation: weights int8 per output channel (symmetric), activations quantised per
call from their observed range, so no calibration data is needed. Everything else (norms,
convolutions, attention's softmax products, the prompt encoder and mask decoder, the memory
encoder) keeps the model's precision. The user's model is never changed: `int8_model` returns a
copy that shares every other module with it.
"""

from __future__ import annotations

import copy
import warnings
import weakref

import torch
from torch import nn

from ..modeling.sam2 import SAM2Model

QUANTIZED_PARTS = ("image_encoder", "memory_attention")

_copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Int8Linear(nn.Module):
    """A dynamically quantised nn.Linear that accepts any float dtype and returns the autocast
    dtype inside an autocast region (the int8 kernel itself takes fp32 in and gives fp32 out)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        from torch.ao.quantization import per_channel_dynamic_qconfig

        linear = copy.deepcopy(linear).float()
        linear.qconfig = per_channel_dynamic_qconfig
        with warnings.catch_warnings():  # torch.ao's eager quantisation warns it is moving to torchao
            warnings.simplefilter("ignore")
            self.linear = DynamicLinear.from_float(linear)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        out_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        with torch.autocast(device, enabled=False):
            return self.linear(x.float()).to(out_dtype)  # bf16 under autocast: attention's fast kernel


def quantize_linears(module: nn.Module) -> nn.Module:
    """A copy of `module` whose nn.Linear layers are Int8Linear."""
    module = copy.deepcopy(module)
    for name, child in list(module.named_modules()):
        for attr, sub in list(child.named_children()):
            if type(sub) is nn.Linear:
                setattr(child, attr, Int8Linear(sub))
    return module


def int8_model(model: SAM2Model) -> SAM2Model:
    """`model` with int8 image encoder and memory attention (made once per model and weights;
    CPU only). `source_model(result)` is `model`, whose weights identify cached embeddings."""
    if model.device.type != "cpu":
        raise ValueError("precision 'int8' runs on CPUs only; use 'bf16' or 'fp16' on a GPU.")
    versions = tuple(p._version for p in model.parameters())
    memo = _copies.get(model)
    if memo is not None and memo[0] == versions:
        return memo[1]
    quantized = copy.copy(model)
    quantized._modules = dict(model._modules)  # a shallow copy would share the module table
    for part in QUANTIZED_PARTS:
        quantized._modules[part] = quantize_linears(getattr(model, part))
    quantized.__dict__["_source"] = weakref.ref(model)  # not a submodule; no cycle to the memo key
    _copies[model] = (versions, quantized)
    return quantized


def source_model(model: SAM2Model) -> SAM2Model:
    """The model an int8 copy was made from (the model itself otherwise)."""
    source = model.__dict__.get("_source")
    return model if source is None or source() is None else source()


def model_for_precision(model: SAM2Model, dtype: torch.dtype) -> SAM2Model:
    """The int8 copy of `model` for the int8 path (`precision.INT8`), else `model` itself."""
    return int8_model(model) if dtype == torch.qint8 else model
