"""The mask decoder's attention between a few prompt tokens and many image tokens, with the
image-side projections folded into the tokens (same result up to float rounding).

Per head, token->image scores are q_h . (W_k,h x + b) = (W_k,h^T q_h) . x + q_h . b, and the
values average to W_v,h (sum_j p_j x_j) + b_v: so the N tokens are carried back to the C input
channels instead of projecting all L image tokens. Image->token attention folds the same way:
its image queries meet W_q,h^T k_h, and its output projection is applied to the N token values
before they are spread over the image. Each (L x C x C') product becomes an (L x C x heads N)
one: half the work for a click (8 heads x 8 tokens against 128 channels), used when smaller.
"""

from __future__ import annotations

import torch

from .attention import Attention


def folds(attn: Attention, tokens: int) -> bool:
    """True when the folded products are smaller than the plain ones (and outside training,
    where the plain path's kernels and memory use are what was tuned)."""
    return not attn.training and attn.num_heads * tokens < attn.internal_dim


def _per_head(linear: torch.nn.Linear, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A projection's weight as (heads, d, C) and bias as (heads, d)."""
    out, c = linear.weight.shape
    return linear.weight.view(heads, out // heads, c), linear.bias.view(heads, out // heads)


def token_to_image(attn: Attention, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`attn(q, keys, values)` for (B, N, C) tokens over (B, L, C) image keys and values."""
    b, n, c = q.shape
    h = attn.num_heads
    w_k, b_k = _per_head(attn.k_proj, h)
    w_v, b_v = _per_head(attn.v_proj, h)
    qh = attn._heads(attn.q_proj(q)) * (w_k.shape[1] ** -0.5)  # (B, h, N, d), scaled
    folded = torch.einsum("bhnd,hdc->bhnc", qh, w_k).reshape(b, h * n, c)
    scores = torch.bmm(folded, keys.transpose(1, 2)).view(b, h, n, -1)
    scores = scores + torch.einsum("bhnd,hd->bhn", qh, b_k).unsqueeze(-1)
    weights = torch.softmax(scores, dim=-1).reshape(b, h * n, -1)
    pooled = torch.bmm(weights, values).view(b, h, n, c)  # each head's average of the image
    out = torch.einsum("bhnc,hdc->bhnd", pooled, w_v) + b_v[None, :, None]
    return attn.out_proj(out.transpose(1, 2).reshape(b, n, -1))


def image_to_token(
    attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, projected_q: bool = False
) -> torch.Tensor:
    """`attn(q, k, v, projected="q" if projected_q else "")` for (B, L, C) image queries (or
    their projection, (B, L, C')) over (B, N, C) token keys and values."""
    b, n, c = k.shape
    h = attn.num_heads
    kh = attn._heads(attn.k_proj(k))  # (B, h, N, d)
    vh = attn._heads(attn.v_proj(v))
    d = kh.shape[-1]
    # scores as (B, heads, N, L): a softmax over N with L contiguous (over a last axis of N
    # it is about 20x slower on a CPU)
    if projected_q:
        scores = torch.einsum("bhnd,bhld->bhnl", kh, attn._heads(q))
    else:
        w_q, b_q = _per_head(attn.q_proj, h)
        folded = torch.einsum("bhnd,hdc->bhnc", kh, w_q).reshape(b, h * n, c)
        scores = torch.bmm(folded, q.transpose(1, 2)).view(b, h, n, -1)
        scores = scores + torch.einsum("bhnd,hd->bhn", kh, b_q).unsqueeze(-1)
    weights = torch.softmax(scores * d**-0.5, dim=2).reshape(b, h * n, -1)
    w_out = attn.out_proj.weight.view(-1, h, d)  # (C_out, h, d)
    spread = torch.einsum("bhnd,chd->bhnc", vh, w_out).reshape(b, h * n, -1)
    return torch.baddbmm(attn.out_proj.bias.expand(b, 1, -1), weights.transpose(1, 2), spread)
