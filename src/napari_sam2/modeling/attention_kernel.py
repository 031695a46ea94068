"""The attention kernel all of the network's attention layers call.

PyTorch's fused CPU kernel runs no faster in bf16 than in fp32, while bf16 matrix products run
about twice as fast on CPUs with bf16 instructions; so bf16 attention on a CPU, outside
training, is computed as matrix products over blocks of queries (memory stays bounded).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

QUERY_BLOCK = 256  # queries per block: scores of 256 x 28k keys in bf16 are 14 MB per head
MIN_TOKENS = 1024  # with fewer queries or keys the fused kernel is as fast


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    """Softmax attention of (B, heads, N, d) queries over (B, heads, M, d) keys and values."""
    if _blocked(q, k, dropout_p):
        return _blocked_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)


def _blocked(q: torch.Tensor, k: torch.Tensor, dropout_p: float) -> bool:
    return (
        q.device.type == "cpu"
        and q.dtype == torch.bfloat16
        and dropout_p == 0.0
        and not torch.is_grad_enabled()
        and min(q.shape[-2], k.shape[-2]) >= MIN_TOKENS
    )


def _blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    k, v = k.to(q.dtype), v.to(q.dtype)
    keys_t = k.transpose(-1, -2)
    scale = q.shape[-1] ** -0.5
    out = q.new_empty(q.shape[:-1] + (v.shape[-1],))
    for start in range(0, q.shape[-2], QUERY_BLOCK):
        scores = torch.matmul(q[..., start : start + QUERY_BLOCK, :] * scale, keys_t)
        out[..., start : start + QUERY_BLOCK, :] = torch.matmul(torch.softmax(scores, dim=-1), v)
    return out
