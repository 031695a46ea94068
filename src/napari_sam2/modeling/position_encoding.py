"""Position encodings: 2-D sine maps, random Fourier features, 1-D sine and axial rotary tables."""

from __future__ import annotations

import math

import torch
from torch import nn


def sine_encoding_2d(
    channels: int, height: int, width: int, device: torch.device | None = None
) -> torch.Tensor:
    """(1, channels, H, W) sine/cosine map of normalised pixel positions (temperature 10000).

    The first half of the channels encodes y, the second x; within a half, channels
    alternate sin and cos of geometrically spaced frequencies.
    """
    half = channels // 2
    scale = 2 * math.pi
    eps = 1e-6
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    y = y / (y[-1] + eps) * scale
    x = x / (x[-1] + eps) * scale
    dim_t = torch.arange(half, dtype=torch.float32, device=device)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)
    pos_y = y[:, None] / dim_t  # (H, half)
    pos_x = x[:, None] / dim_t  # (W, half)
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    pe = torch.cat(
        (pos_y[:, None, :].expand(height, width, half), pos_x[None, :, :].expand(height, width, half)),
        dim=2,
    )
    return pe.permute(2, 0, 1).unsqueeze(0)


class SineEncoding2d(nn.Module):
    """Cached `sine_encoding_2d` for feature maps: parameter-free, so not in the state dict."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self._cache: dict[tuple, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        key = (h, w, x.device)
        pe = self._cache.get(key)
        if pe is None:
            pe = sine_encoding_2d(self.channels, h, w, x.device)
            self._cache[key] = pe
        return pe.to(x.dtype).expand(b, -1, -1, -1)


def sine_encoding_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(..., dim) encoding of scalar positions: sines of dim/2 frequencies, then their cosines."""
    half = dim // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=positions.device)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)
    angles = positions.unsqueeze(-1) / dim_t
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class RandomFourierEncoding(nn.Module):
    """Position encoding with random spatial frequencies, used for prompts and the image grid."""

    def __init__(self, num_pos_feats: int = 128, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer(
            "positional_encoding_gaussian_matrix", torch.normal(0.0, scale, (2, num_pos_feats))
        )

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        """Coordinates in [0, 1] (..., 2) as (x, y) -> (..., 2 * num_pos_feats)."""
        coords = 2 * coords - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def grid(self, height: int, width: int) -> torch.Tensor:
        """(C, H, W) encoding of the centres of an H x W grid."""
        m = self.positional_encoding_gaussian_matrix
        y = (torch.arange(height, device=m.device, dtype=m.dtype) + 0.5) / height
        x = (torch.arange(width, device=m.device, dtype=m.dtype) + 0.5) / width
        xy = torch.stack([x[None, :].expand(height, width), y[:, None].expand(height, width)], -1)
        return self._encode(xy).permute(2, 0, 1)

    def points(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Encode (x, y) pixel coordinates of a (height, width) image."""
        h, w = image_size
        size = torch.tensor([w, h], dtype=torch.float32, device=coords.device)
        return self._encode(coords.float() / size)


def axial_rope_angles(dim: int, end_x: int, end_y: int, theta: float = 10000.0) -> torch.Tensor:
    """(end_x * end_y, dim / 2) rotation angles of 2-D axial RoPE over a row-major grid.

    The first dim/4 angle columns rotate by the x position, the last dim/4 by the y position.
    """
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))
    t = torch.arange(end_x * end_y, dtype=torch.float32)
    t_x = t % end_x
    t_y = torch.div(t, end_x, rounding_mode="floor")
    return torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)


def rope_tables(angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) cos and signed sin of (N, D/2) angles, each repeated over its channel pair, for
    `apply_rope`: channel 2i gets -sin, channel 2i + 1 gets +sin."""
    cos, sin = angles.cos(), angles.sin()
    return cos.repeat_interleave(2, dim=-1), torch.stack((-sin, sin), dim=-1).flatten(-2)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of x (..., N, D) by angles whose `rope_tables` are cos and
    sin (N, D): (real, imag) -> (real cos - imag sin, imag cos + real sin), in fp32.

    Real arithmetic (no complex tensors) so that it runs on every device; the same results bit
    for bit as rotating the pairs one by one, in fewer passes over x."""
    xf = x.float()
    swapped = xf.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (imag, real) of each pair
    out = xf * cos
    out += swapped * sin
    return out.type_as(x)
