"""Hiera: the hierarchical vision transformer that is SAM 2's image trunk."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention_kernel import attention
from .common import MLP
from .config import HieraConfig

WINDOW_MIN_TOKENS = 16  # windows of 4x4 tokens and more take the blocked bf16 path (2-4x faster)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * nW, window, window, C), zero-padding H and W to a multiple of window."""
    b, h, w, c = x.shape
    pad_h = (window - h % window) % window
    pad_w = (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of `window_partition`, dropping the padding."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // (hp * wp // window // window)
    x = windows.view(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


def max_pool_2x2(x: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """Max-pool a channels-last (B, H, W, C) tensor."""
    x = x.permute(0, 3, 1, 2)
    x = F.max_pool2d(x, kernel_size=stride, stride=stride)
    return x.permute(0, 2, 3, 1)


def _version(t: torch.Tensor) -> tuple[int, int]:
    """Identifies a tensor's values: its storage and in-place changes (inference tensors have no
    version counter and cannot be changed outside inference mode)."""
    return t.data_ptr(), -1 if t.is_inference() else t._version


class PatchEmbed(nn.Module):
    """7x7 stride-4 convolution from RGB to tokens, output channels-last."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention whose queries may be max-pooled (at a stage change)."""

    def __init__(
        self, dim: int, dim_out: int, num_heads: int, q_stride: tuple[int, int] | None
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)  # each (B, HW, heads, d)
        if self.q_stride is not None:
            q = max_pool_2x2(q.reshape(b, h, w, -1), self.q_stride)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        x = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), min_tokens=WINDOW_MIN_TOKENS)
        x = x.transpose(1, 2).reshape(b, h, w, -1)
        return self.proj(x)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block with windowed or global attention and optional q-pooling."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float,
        q_stride: tuple[int, int] | None,
        window_size: int,
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, 2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = max_pool_2x2(self.proj(x), self.q_stride)
        window = self.window_size
        if window > 0:
            hw = x.shape[1:3]
            x, padded_hw = window_partition(x, window)
        x = self.attn(x)
        if window > 0:
            if self.q_stride is not None:
                # Queries were pooled: the windows shrank and so did the map.
                window = window // self.q_stride[0]
                hw = shortcut.shape[1:3]
                padded_hw = tuple(s + (window - s % window) % window for s in hw)
            x = window_unpartition(x, window, padded_hw, hw)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """Returns the feature map at the end of each stage (strides 4, 8, 16, 32), channels-first."""

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        c = config
        depth = sum(c.stages)
        self.stage_ends = [sum(c.stages[: i + 1]) - 1 for i in range(len(c.stages))]
        q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][: c.q_pool]
        self.patch_embed = PatchEmbed(c.embed_dim)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, c.embed_dim, *c.window_pos_embed_bkg_spatial_size)
        )
        self.pos_embed_window = nn.Parameter(
            torch.zeros(1, c.embed_dim, c.window_spec[0], c.window_spec[0])
        )
        dim, num_heads, stage = c.embed_dim, c.num_heads, 1
        blocks = []
        for i in range(depth):
            dim_out = dim
            # A block uses the window of the stage it is in, except the first block of a
            # stage, which still uses the previous stage's window.
            window = c.window_spec[stage - 1]
            if i - 1 in self.stage_ends:
                dim_out = int(dim * c.dim_mul)
                num_heads = int(num_heads * c.head_mul)
                stage += 1
            if i in c.global_att_blocks:
                window = 0
            blocks.append(
                MultiScaleBlock(
                    dim,
                    dim_out,
                    num_heads,
                    c.mlp_ratio,
                    q_stride=c.q_stride if i in q_pool_blocks else None,
                    window_size=window,
                )
            )
            dim = dim_out
        self.blocks = nn.ModuleList(blocks)
        self.channel_list = list(reversed(c.stage_channels))

    def _position_embedding(self, h: int, w: int) -> torch.Tensor:
        """Bicubic-resized global embedding plus the tiled per-window embedding, channels-last.

        Outside training it is kept per size and weights version (it depends on nothing else).
        """
        key = (h, w, *(_version(p) for p in (self.pos_embed, self.pos_embed_window)), self.pos_embed.device)
        if not torch.is_grad_enabled() and self.__dict__.get("_pos_key") == key:
            return self.__dict__["_pos"]
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        win = self.pos_embed_window
        pos = pos + win.tile([1, 1, h // win.shape[-2], w // win.shape[-1]])
        pos = pos.permute(0, 2, 3, 1).contiguous()
        if not torch.is_grad_enabled():
            self.__dict__["_pos_key"], self.__dict__["_pos"] = key, pos
        return pos

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Contiguous channels-last tokens: layer norms and adds on a permuted view are ~5x slower.
        x = self.patch_embed(x)
        x = (x + self._position_embedding(*x.shape[1:3])).contiguous()
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
