"""The int8 path: the image encoder's and memory attention's linear layers as int8 matrix
products on oneDNN (CPUs with AVX512-VNNI or AVX-VNNI run them about twice as fast as bf16).

Weights are int8 per output channel (symmetric). Activations are quantised per call to uint8
from their own range (asymmetric, per tensor), so no calibration data is needed. The kernel
returns the surrounding compute dtype directly (bf16 under autocast), and the activation inside a
feed-forward block (Hiera's GELU, memory attention's ReLU) runs in the same kernel. Everything
else (norms, convolutions, attention's softmax products, the prompt encoder, mask decoder and
memory encoder) runs as the `auto` precision does. The user's model is never changed:
`int8_model` returns a copy that shares every other module with it.
"""

from __future__ import annotations

import copy
import warnings
import weakref

import torch
from torch import nn

from ..modeling.common import MLP
from ..modeling.sam2 import SAM2Model
from .precision import cpu_has_vnni, int8_kernels_available

QUANTIZED_PARTS = ("image_encoder", "memory_attention")

_copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# torch.quantize_per_tensor (one fused pass) warns that quantized dtypes are deprecated; only its
# uint8 values are used, and a plain-tensor fallback takes over if it is removed.
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel", category=UserWarning)


def quantize_activations(x: torch.Tensor, levels: int) -> tuple[torch.Tensor, float, int]:
    """(uint8 values, scale, zero point) of float `x` over its range (which always holds 0)."""
    x = x.float()
    lo, hi = (float(v) for v in torch.aminmax(x))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / levels, 1e-12)
    zero = min(max(round(-lo / scale), 0), levels)
    if hasattr(torch, "quantize_per_tensor"):  # one fused pass, and a copy of its bytes as uint8
        return torch.quantize_per_tensor(x, scale, zero, torch.quint8).int_repr(), scale, zero
    return torch.round(x / scale).add_(zero).clamp_(0, levels).to(torch.uint8), scale, zero


class Int8Linear(nn.Module):
    """An nn.Linear as a oneDNN int8 product (int8 per-channel weights, uint8 activations),
    optionally followed by a fused exact GELU or ReLU. Returns the autocast dtype inside an autocast
    region, else the input's dtype (or fp32 with `float_out`, for another Int8Linear)."""

    def __init__(self, linear: nn.Linear, post_op: str = "none", float_out: bool = False) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax(dim=1) / 127).clamp_min(1e-12)
        int8_weight = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
        self.register_buffer("packed_weight", torch.ops.onednn.qlinear_prepack(int8_weight, None), persistent=False)
        self.register_buffer("weight_scale", scale, persistent=False)
        self.register_buffer("weight_zero", torch.zeros(len(scale), dtype=torch.int64), persistent=False)
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.register_buffer("bias", bias, persistent=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.post_op = post_op  # "none", or "gelu" (exact) / "relu" run in the same kernel
        self.float_out = float_out  # fp32 out: the next int8 layer quantises it without a conversion
        # Without VNNI, u8 x s8 products are summed in int16 and may saturate: use 7-bit inputs.
        self.levels = 255 if cpu_has_vnni() else 127

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        out_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        out_dtype = torch.float32 if self.float_out else out_dtype
        shape = x.shape
        values, scale, zero = quantize_activations(x.reshape(-1, shape[-1]), self.levels)
        out = torch.ops.onednn.qlinear_pointwise.default(
            values, scale, zero, self.packed_weight, self.weight_scale, self.weight_zero, self.bias,
            1.0, 0, out_dtype, self.post_op, [], "none",
        )
        return out.reshape(*shape[:-1], self.out_features)


def quantize_linears(module: nn.Module) -> nn.Module:
    """A copy of `module` whose nn.Linear layers are Int8Linear, with the activation between two
    linear layers of a feed-forward block (Hiera's GELU MLPs, memory attention's ReLU layers)
    run inside the first layer's kernel."""
    module = copy.deepcopy(module)
    for child in list(module.modules()):
        if isinstance(child, MLP) and type(child.act) is nn.GELU and child.act.approximate == "none":
            last = len(child.layers) - 1
            for i, layer in enumerate(child.layers):
                child.layers[i] = Int8Linear(layer, "gelu" if i < last else "none", float_out=i < last)
            child.act = nn.Identity()
        elif type(getattr(child, "activation", None)) is nn.ReLU and type(getattr(child, "linear1", None)) is nn.Linear:
            child.linear1 = Int8Linear(child.linear1, "relu", float_out=True)
            child.activation = nn.Identity()
    for child in list(module.modules()):
        for attr, sub in list(child.named_children()):
            if type(sub) is nn.Linear:
                setattr(child, attr, Int8Linear(sub))
    return module


def int8_model(model: SAM2Model) -> SAM2Model:
    """`model` with int8 image encoder and memory attention (made once per model and weights;
    CPU only). `source_model(result)` is `model`, whose weights identify cached embeddings."""
    if model.device.type != "cpu":
        raise ValueError("precision 'int8' runs on CPUs only; use 'bf16' or 'fp16' on a GPU.")
    if not int8_kernels_available():
        raise ValueError("precision 'int8' needs a PyTorch build with oneDNN (mkldnn); use 'auto' instead.")
    versions = tuple(p._version for p in model.parameters())
    memo = _copies.get(model)
    if memo is not None and memo[0] == versions:
        return memo[1]
    quantized = copy.copy(model)
    quantized._modules = dict(model._modules)  # a shallow copy would share the module table
    with torch.inference_mode(False), torch.no_grad():  # plain tensors even if called in inference mode
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
