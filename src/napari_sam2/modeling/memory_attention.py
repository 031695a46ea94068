"""Memory attention: conditions the current frame's features on memories of earlier frames."""

from __future__ import annotations

import torch
from torch import nn

from .attention import RoPEAttention


class MemoryAttentionLayer(nn.Module):
    """Pre-norm RoPE self-attention, RoPE cross-attention to the memory, and a ReLU FFN."""

    def __init__(self, d_model: int = 256, mem_dim: int = 64, dim_feedforward: int = 2048) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(d_model, num_heads=1, dropout=0.1)
        self.cross_attn_image = RoPEAttention(
            d_model, num_heads=1, kv_in_dim=mem_dim, dropout=0.1, repeat_keys=True
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.activation = nn.ReLU()
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(0.1)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_obj_ptr_tokens: int,
        rope: tuple | None = None,
    ) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.dropout(self.self_attn(h, h, h, rope=None if rope is None else (rope[0], rope[0])))
        h = self.norm2(x)
        x = x + self.dropout(
            self.cross_attn_image(h, memory + memory_pos, memory, num_k_exclude_rope=num_obj_ptr_tokens, rope=rope)
        )
        h = self.norm3(x)
        return x + self.dropout(self.linear2(self.dropout(self.activation(self.linear1(h)))))


class MemoryAttention(nn.Module):
    def __init__(self, d_model: int = 256, mem_dim: int = 64, num_layers: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(MemoryAttentionLayer(d_model, mem_dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        current: torch.Tensor,
        current_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_obj_ptr_tokens: int = 0,
        places: tuple[torch.Tensor, torch.Tensor, int] | None = None,
    ) -> torch.Tensor:
        """Batch-first tokens: current (B, HW, C), memory (B, M, mem_dim) whose last
        `num_obj_ptr_tokens` are object-pointer tokens (not rotary-encoded). Returns (B, HW, C).

        places: (current (B, HW), memory (B, M - pointers)) flat cells of a side x side grid,
        `side`: where the tokens lie when they are windows of frames; by default the current
        tokens are the whole grid and each memory frame repeats it."""
        rope = None
        if places is not None:
            current_cells, memory_cells, side = places
            attn = self.layers[0].cross_attn_image
            rope = (attn.rope_at(current_cells, side), attn.rope_at(memory_cells, side))
        x = current + 0.1 * current_pos
        for layer in self.layers:
            x = layer(x, memory, memory_pos, num_obj_ptr_tokens, rope)
        return self.norm(x)
