"""Image encoder: the Hiera trunk followed by a feature pyramid neck."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import HieraConfig
from .hiera import Hiera
from .position_encoding import SineEncoding2d


class _Lateral(nn.Module):
    """A 1x1 convolution (wrapped so that its parameters are named `conv.*`)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FpnNeck(nn.Module):
    """Projects each trunk level to d_model channels; top-down fusion into the two coarsest levels."""

    def __init__(self, channel_list: list[int], d_model: int = 256) -> None:
        super().__init__()
        # convs[0] takes the coarsest (stride-32) level.
        self.convs = nn.ModuleList(_Lateral(c, d_model) for c in channel_list)
        self.position_encoding = SineEncoding2d(d_model)
        self.top_down_levels = (2, 3)

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        n = len(self.convs) - 1
        features: list[torch.Tensor] = [None] * (n + 1)  # type: ignore[list-item]
        previous = None
        for i in range(n, -1, -1):
            lateral = self.convs[n - i](xs[i])
            if i in self.top_down_levels and previous is not None:
                top_down = F.interpolate(previous.to(torch.float32), scale_factor=2.0, mode="nearest")
                previous = lateral + top_down
            else:
                previous = lateral
            features[i] = previous
        positions = [self.position_encoding(f) for f in features]
        return features, positions


class ImageEncoder(nn.Module):
    """Trunk + neck; drops the stride-32 level, returning strides 4, 8 and 16."""

    def __init__(self, trunk_config: HieraConfig, d_model: int = 256) -> None:
        super().__init__()
        self.trunk = Hiera(trunk_config)
        self.neck = FpnNeck(self.trunk.channel_list, d_model)

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        features, positions = self.neck(self.trunk(images))
        return features[:-1], positions[:-1]
