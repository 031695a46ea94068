"""Two-way transformer: prompt tokens and image tokens attend to each other."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .attention import Attention
from .common import MLP
from .folded_attention import folds, image_to_token, token_to_image


class ImageProjections(NamedTuple):
    """The first layer's projections of the image tokens (1, HW, C'), which no prompt changes:
    keys and values of token->image attention, queries of image->token attention."""

    key: torch.Tensor
    value: torch.Tensor
    query: torch.Tensor


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image, MLP on tokens, image->token; each followed by LayerNorm."""

    def __init__(
        self, dim: int, num_heads: int, mlp_dim: int, downsample_rate: int, skip_first_layer_pe: bool
    ) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample_rate)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_dim, dim, 2, activation=nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
        projected: ImageProjections | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            # The first layer's self-attention replaces the tokens (no PE, no residual).
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q = queries + query_pe
        folded = folds(self.cross_attn_token_to_image, queries.shape[1])
        if projected is None:
            k = keys + key_pe
            to_image = self.cross_attn_token_to_image
            attended = token_to_image(to_image, q, k, keys) if folded else to_image(q, k, keys)
        else:
            b = queries.shape[0]
            key, value = projected.key.expand(b, -1, -1), projected.value.expand(b, -1, -1)
            attended = self.cross_attn_token_to_image(q, key, value, projected="kv")
        queries = self.norm2(queries + attended)
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        to_tokens = self.cross_attn_image_to_token
        if projected is None:
            attended = image_to_token(to_tokens, k, q, queries) if folded else to_tokens(k, q, queries)
        else:
            image_q = projected.query.expand(queries.shape[0], -1, -1)
            if folded:
                attended = image_to_token(to_tokens, image_q, q, queries, projected_q=True)
            else:
                attended = to_tokens(image_q, q, queries, projected="q")
        keys = self.norm4(keys + attended)
        return queries, keys

    def project_image(self, keys: torch.Tensor, key_pe: torch.Tensor) -> ImageProjections:
        """This layer's projections of image tokens (1, HW, C) that no prompt changes."""
        k = keys + key_pe
        return ImageProjections(
            self.cross_attn_token_to_image.k_proj(k),
            self.cross_attn_token_to_image.v_proj(keys),
            self.cross_attn_image_to_token.q_proj(k),
        )


class TwoWayTransformer(nn.Module):
    def __init__(
        self,
        depth: int = 2,
        embedding_dim: int = 256,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim, downsample_rate, i == 0)
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self,
        image: torch.Tensor,
        image_pe: torch.Tensor,
        tokens: torch.Tensor,
        projected: ImageProjections | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image, image_pe: (B, C, H, W); tokens: (B, N, C) -> (tokens, image tokens (B, HW, C)).
        projected: `project_image` of this image (any prompts), to skip those products."""
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for i, layer in enumerate(self.layers):
            queries, keys = layer(queries, keys, tokens, key_pe, projected if i == 0 else None)
        q, k = queries + tokens, keys + key_pe
        final = self.final_attn_token_to_image
        attended = token_to_image(final, q, k, keys) if folds(final, q.shape[1]) else final(q, k, keys)
        queries = self.norm_final_attn(queries + attended)
        return queries, keys

    def project_image(self, image: torch.Tensor, image_pe: torch.Tensor) -> ImageProjections:
        """The first layer's projections of one image (1, C, H, W) with its prompt-free dense
        embedding added: made once per image, they serve every click and box on it."""
        keys = image.flatten(2).transpose(1, 2)
        return self.layers[0].project_image(keys, image_pe.flatten(2).transpose(1, 2))
