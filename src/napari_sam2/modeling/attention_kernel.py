"""The attention kernel all of the network's attention layers call.

PyTorch's fused CPU kernel runs no faster in bf16 than in fp32, while bf16 matrix products run
about twice as fast on CPUs with bf16 instructions; so bf16 attention on a CPU, outside
training, is computed as batched matrix products over blocks of queries (memory stays bounded).
Measured in bf16 on an AVX512-BF16 CPU: 2-4x faster than the fused kernel for Hiera's 8x8 and
14x14 windows, its global attention and memory attention over whole frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

QUERY_BLOCK = 256  # queries per block: scores of 256 x 28k keys in bf16 are 14 MB per head
MIN_TOKENS = 1024  # default: blocked from this many queries and keys (see `attention`)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0, min_tokens: int = MIN_TOKENS
) -> torch.Tensor:
    """Softmax attention of (B, heads, N, d) queries over (B, heads, M, d) keys and values.

    min_tokens: the blocked path needs at least this many queries and keys. Its scores are bf16
    (the fused kernel keeps them fp32), which the image encoder's small windows bear (masks
    measured in docs/benchmarks.md) while memory attention's, compounded over a movie, do not
    (GOWT1 SEG 0.769 -> 0.750 with its windows blocked, at no gain in speed)."""
    if _blocked(q, k, dropout_p, min_tokens):
        return _blocked_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)


def _blocked(q: torch.Tensor, k: torch.Tensor, dropout_p: float, min_tokens: int) -> bool:
    return (
        q.device.type == "cpu"
        and q.dtype == torch.bfloat16
        and dropout_p == 0.0
        and not torch.is_grad_enabled()
        and min(q.shape[-2], k.shape[-2]) >= min_tokens
    )


def _blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    *batch, n, d = q.shape
    queries = (q * d**-0.5).reshape(-1, n, d)  # batched 3-D products: no per-block key copies
    keys_t = k.to(q.dtype).reshape(-1, k.shape[-2], d).transpose(1, 2)
    values = v.to(q.dtype).reshape(-1, *v.shape[-2:])
    out = q.new_empty(queries.shape[0], n, values.shape[-1])
    for start in range(0, n, QUERY_BLOCK):
        scores = torch.bmm(queries[:, start : start + QUERY_BLOCK], keys_t)
        torch.bmm(torch.softmax(scores, dim=-1), values, out=out[:, start : start + QUERY_BLOCK])
    return out.reshape(*batch, n, values.shape[-1])
