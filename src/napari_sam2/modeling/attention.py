"""Multi-head attention with separate q/k/v projections, optionally with axial rotary encoding."""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention_kernel import attention
from .position_encoding import apply_rope, axial_rope_angles, rope_tables


class Attention(nn.Module):
    """Attention that can project to a smaller internal width and take keys of another width."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        kv_in_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        kv_in_dim = kv_in_dim or embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, heads, N, C / heads)."""
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        out = attention(q, k, v, dropout_p=p)
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, projected: str = "") -> torch.Tensor:
        """projected: which of "q", "k", "v" are already projected (made once per image)."""
        q = self._heads(q if "q" in projected else self.q_proj(q))
        k = self._heads(k if "k" in projected else self.k_proj(k))
        v = self._heads(v if "v" in projected else self.v_proj(v))
        return self._attend(q, k, v)


class RoPEAttention(Attention):
    """Attention over a square grid of queries with 2-D axial rotary position encoding.

    Keys may hold several grids of the same size (memories of several frames, `repeat_keys`)
    followed by `num_k_exclude_rope` tokens that are not rotated (object pointers).
    """

    def __init__(self, *args, rope_theta: float = 10000.0, repeat_keys: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.rope_theta = rope_theta
        self.repeat_keys = repeat_keys
        self._tables: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _rope_table(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (n, device)
        if key not in self._tables:
            side = int(math.isqrt(n))
            if side * side != n:
                raise ValueError(f"rotary attention needs a square grid of queries, got {n} tokens")
            angles = axial_rope_angles(self.internal_dim // self.num_heads, side, side, self.rope_theta)
            self._tables[key] = tuple(t.to(device) for t in rope_tables(angles))
        return self._tables[key]

    def rope_at(self, index: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin tables (B, 1, N, D) of the cells `index` (B, N) (flat, row-major) of a side x
        side grid: tokens of windows cut out of a frame keep their place in it."""
        cos, sin = self._rope_table(side * side, index.device)
        return cos[index].unsqueeze(1), sin[index].unsqueeze(1)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        num_k_exclude_rope: int = 0,
        rope: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """rope: explicit ((cos, sin) of the queries, (cos, sin) of the rotated keys), from
        `rope_at`; by default the queries are a whole square grid and the keys repeat it."""
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        n_rope = k.shape[-2] - num_k_exclude_rope
        if rope is not None:
            (cos, sin), (k_cos, k_sin) = rope
        else:
            cos, sin = self._rope_table(q.shape[-2], q.device)
            repeats = n_rope // q.shape[-2]
            if n_rope > 0 and repeats != 1 and not self.repeat_keys:
                raise ValueError("keys and queries differ in length but repeat_keys is off")
            k_cos, k_sin = cos.repeat(max(repeats, 1), 1), sin.repeat(max(repeats, 1), 1)
        q = apply_rope(q, cos, sin)
        if n_rope > 0:
            k_rope = apply_rope(k[:, :, :n_rope], k_cos, k_sin)
            k = torch.cat([k_rope, k[:, :, n_rope:]], dim=2) if num_k_exclude_rope else k_rope
        return self._attend(q, k, v)
