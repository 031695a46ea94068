"""Memory encoder: fuses a frame's features with its predicted mask into a compact memory."""

from __future__ import annotations

import torch
from torch import nn

from .common import LayerNorm2d
from .position_encoding import SineEncoding2d


class MaskDownSampler(nn.Module):
    """Four stride-2 3x3 convolutions (1 -> 4 -> 16 -> 64 -> 256 channels), then a 1x1 conv."""

    def __init__(self, embed_dim: int = 256, num_layers: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for _ in range(num_layers):
            out = channels * 4
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), LayerNorm2d(out), nn.GELU()]
            channels = out
        layers.append(nn.Conv2d(channels, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7 conv, LayerNorm, pointwise MLP, layer scale, residual."""

    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        h = self.gamma * self.pwconv2(self.act(self.pwconv1(h)))
        return x + h.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    def __init__(self, dim: int = 256, num_layers: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    def __init__(self, in_dim: int = 256, out_dim: int = 64) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(in_dim)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim)
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1)
        self.position_encoding = SineEncoding2d(out_dim)

    def forward(self, features: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, C, h, w) at stride 16 and mask values (B, 1, 16h, 16w), already scaled
        -> memory (B, out_dim, h, w) and its position encoding."""
        x = self.pix_feat_proj(features) + self.mask_downsampler(masks)
        x = self.out_proj(self.fuser(x))
        return x, self.position_encoding(x)
