"""Prompt encoder: points (and boxes, as two corner points) to sparse tokens, masks to a dense map."""

from __future__ import annotations

import torch
from torch import nn

from .common import LayerNorm2d
from .position_encoding import RandomFourierEncoding

# Point labels as the network understands them.
LABEL_PAD, LABEL_NEGATIVE, LABEL_POSITIVE, LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT = -1, 0, 1, 2, 3


class PromptEncoder(nn.Module):
    def __init__(self, embed_dim: int, image_size: int, feat_size: int, mask_in_chans: int = 16):
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = (image_size, image_size)
        self.image_embedding_size = (feat_size, feat_size)
        self.mask_input_size = (4 * feat_size, 4 * feat_size)
        self.pe_layer = RandomFourierEncoding(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_pe(self) -> torch.Tensor:
        """(1, C, h, w) position encoding of the image-embedding grid."""
        return self.pe_layer.grid(*self.image_embedding_size).unsqueeze(0)

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) (x, y) coordinates in model-input pixels and (B, N) labels -> (B, N+1, C).

        A padding point is always appended, as SAM 2 never passes boxes separately.
        """
        b = coords.shape[0]
        coords = torch.cat([coords + 0.5, coords.new_zeros(b, 1, 2)], dim=1)
        labels = torch.cat([labels, labels.new_full((b, 1), LABEL_PAD)], dim=1)
        emb = self.pe_layer.points(coords, self.input_image_size)
        labels = labels.unsqueeze(-1)
        emb = torch.where(labels == LABEL_PAD, self.not_a_point_embed.weight.expand_as(emb), emb)
        for label, table in enumerate(self.point_embeddings):
            emb = torch.where(labels == label, emb + table.weight, emb)
        return emb

    def embed_mask(self, masks: torch.Tensor | None, batch: int, size: tuple[int, int] | None = None) -> torch.Tensor:
        """(B, 1, 4h, 4w) mask logits -> (B, C, h, w); no mask -> the learned no-mask embedding
        (over `size`, default the whole embedding grid)."""
        if masks is not None:
            return self.mask_downscaling(masks)
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
            batch, -1, *(size or self.image_embedding_size)
        )

    def forward(
        self,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        masks: torch.Tensor | None = None,
        batch: int = 1,
        size: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse (B, N+1, C) point tokens (or (B, 0, C) without points) and the dense map."""
        if coords is None:
            sparse = self.not_a_point_embed.weight.new_zeros(batch, 0, self.embed_dim)
        else:
            sparse = self.embed_points(coords, labels)
            batch = coords.shape[0]
        return sparse, self.embed_mask(masks, batch, size)
