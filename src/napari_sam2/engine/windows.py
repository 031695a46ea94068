"""Windowed tracking: each small object is tracked in a square window of the frame's feature grid
around its last mask, so that its cost does not grow with the frame's area.

Memory attention over a whole frame is what makes many objects expensive (its cross-attention
grows with the grid's cells times the memories' cells). A window of W x W cells instead of
S x S divides that by (S / W)^4. Tokens keep their place in the frame (rotary and sine
encodings of their cells), memories are read where they were written, and a prompted frame's
whole-frame memory is read in the current window. Each object gets the smallest window (8,
16, 32 ... cells up to the tracker's `window`) that it spans at most half of; objects too large for
the largest are tracked over the whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..modeling.sam2 import NO_OBJECT_SCORE

# An object is windowed while its mask spans at most this share of the window's side: it can
# then move a quarter of the window between frames without leaving it.
MAX_SHARE = 0.5
MIN_SIDE = 8  # cells (128 model-input pixels): the smallest window, for the smallest objects


@dataclass(frozen=True)
class GridWindow:
    """A side x side square of cells at (top, left) of a grid of `grid` x `grid` cells."""

    top: int
    left: int
    side: int
    grid: int

    def cells(self, device: torch.device) -> torch.Tensor:
        """(side * side,) flat row-major indices of the window's cells in the grid."""
        rows = torch.arange(self.top, self.top + self.side, device=device)
        cols = torch.arange(self.left, self.left + self.side, device=device)
        return (rows[:, None] * self.grid + cols[None, :]).reshape(-1)

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """The window of a (..., k * grid, k * grid) map (features at any multiple of the grid)."""
        k = x.shape[-1] // self.grid
        return x[..., k * self.top : k * (self.top + self.side), k * self.left : k * (self.left + self.side)]

    def paste(self, x: torch.Tensor) -> torch.Tensor:
        """A (..., k * side, k * side) map of the window as a whole-grid map, NO_OBJECT_SCORE
        elsewhere (the object is not there)."""
        k = x.shape[-1] // self.side
        full = x.new_full((*x.shape[:-2], k * self.grid, k * self.grid), NO_OBJECT_SCORE)
        full[..., k * self.top : k * (self.top + self.side), k * self.left : k * (self.left + self.side)] = x
        return full


def window_around(low_res: torch.Tensor, max_side: int, grid: int, min_side: int = MIN_SIDE) -> GridWindow | None:
    """The smallest window (min_side cells, doubling up to max_side) centred on the mask of
    `low_res` logits (..., 4 * grid, 4 * grid) that the mask spans at most MAX_SHARE of; None
    when the mask is empty or too large for max_side."""
    mask = low_res.reshape(low_res.shape[-2:]) > 0
    rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
    if len(rows) == 0:
        return None
    k = mask.shape[-1] / grid  # mask pixels per cell
    top, bottom = float(rows[0]) / k, float(rows[-1] + 1) / k
    left, right = float(cols[0]) / k, float(cols[-1] + 1) / k
    span = max(bottom - top, right - left)
    side = min(min_side, max_side)
    while span > MAX_SHARE * side:
        side *= 2
        if side > max_side:
            return None
    return GridWindow(
        _start((top + bottom) / 2, side, grid), _start((left + right) / 2, side, grid), side, grid
    )


def _start(centre: float, side: int, grid: int) -> int:
    return int(min(max(round(centre - side / 2), 0), grid - side))
