"""MulT's transformers (Tsai et al., ACL 2019, §3; equation numbers are that paper's), the layers MulT, DMD, EMOE
and t-HNE build from: crossmodal attention of a target stream over a source stream, or self-attention, with the
authors' sinusoidal positions, pre-norm layers and initialisation.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from rider.model.kind import MODALITY_NAMES

# Every (source, target) direction of §3.2, in the authors' order within a target: the target's stream is
# [the first other modality -> target; the second -> target].
DIRECTIONS = tuple((source, target) for target in MODALITY_NAMES for source in MODALITY_NAMES if source != target)


def sinusoids(steps: int, dim: int) -> torch.Tensor:
    """(steps, dim) sinusoidal positional embedding of positions 1..steps (Eq. 3), in the tensor2tensor layout
    the authors use: sines in the first half of the channels, cosines in the second, a zero column if dim is
    odd."""
    half = dim // 2
    rate = math.log(10000) / max(half - 1, 1)
    angles = torch.arange(1, steps + 1, dtype=torch.float32)[:, None] * torch.exp(-rate * torch.arange(half))[None]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # (steps, 2 * half)
    return F.pad(table, (0, dim - 2 * half))  # (steps, dim)


class TransformerLayer(nn.Module):
    """One pre-norm layer (Eq. 4): attention of the target stream over a source (itself for self-attention),
    then a ReLU feed-forward of width 4D; each sub-layer's output is added to its input."""

    def __init__(self, dim: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.heads, self.attn_dropout = heads, attn_dropout
        self.relu_dropout, self.res_dropout = relu_dropout, res_dropout
        self.norm_attn = nn.LayerNorm(dim)  # also normalises the source's keys and values (Eq. 4: LN(Z_source))
        self.in_proj = nn.Linear(dim, 3 * dim)  # W_Q, W_K, W_V stacked, as the authors keep them
        self.out = nn.Linear(dim, dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        for linear in (self.in_proj, self.out, self.fc1, self.fc2):  # the authors' initialisation
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        return x.view(B, T, self.heads, D // self.heads).transpose(1, 2)  # (B, H, T, D/H)

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None, values: torch.Tensor | None,
                mask: torch.Tensor) -> torch.Tensor:
        """x (B, Tq, D) target; keys, values (B, Tk, D) embedded source, None for self-attention;
        mask (B, 1, Tq, Tk): 0 where a query may see a key, -inf elsewhere."""
        B, Tq, D = x.shape
        h = self.norm_attn(x)  # (B, Tq, D)
        if keys is None:  # self-attention: one projection gives Q, K and V
            q, k, v = self.in_proj(h).chunk(3, dim=-1)  # 3 x (B, Tq, D)
        else:  # crossmodal: Q from the target, K and V from the source (Eq. 1)
            w, b = self.in_proj.weight.chunk(3), self.in_proj.bias.chunk(3)
            q = F.linear(h, w[0], b[0])  # (B, Tq, D)
            k = F.linear(self.norm_attn(keys), w[1], b[1])  # (B, Tk, D)
            v = F.linear(self.norm_attn(values), w[2], b[2])  # (B, Tk, D)
        attended = F.scaled_dot_product_attention(  # Eq. 1: softmax(Q K^T / sqrt(D/H) + mask) V, per head
            self.split_heads(q), self.split_heads(k), self.split_heads(v), attn_mask=mask,
            dropout_p=self.attn_dropout if self.training else 0.0,
        )  # (B, H, Tq, D/H)
        attended = self.out(attended.transpose(1, 2).reshape(B, Tq, D))  # (B, Tq, D)
        x = x + F.dropout(attended, self.res_dropout, self.training)  # (B, Tq, D)
        h = F.dropout(F.relu(self.fc1(self.norm_ff(x))), self.relu_dropout, self.training)  # (B, Tq, 4D)
        return x + F.dropout(self.fc2(h), self.res_dropout, self.training)  # (B, Tq, D)


class Transformer(nn.Module):
    """A crossmodal transformer (source given) or a self-attention transformer (source None): embedding
    (Eq. 3), ``layers`` layers, a final LayerNorm. ``cfg``: any kind's config with MulT's fields ``heads``,
    ``embed_dropout``, ``relu_dropout``, ``res_dropout``, ``max_len`` and ``position_embedding``."""

    def __init__(self, dim: int, layers: int, cfg: Any, attn_dropout: float):
        super().__init__()
        self.scale = math.sqrt(dim)
        self.embed_dropout = cfg.embed_dropout
        self.layers = nn.ModuleList(TransformerLayer(dim, cfg.heads, attn_dropout, cfg.relu_dropout, cfg.res_dropout)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        positions = sinusoids(cfg.max_len, dim) if cfg.position_embedding else torch.zeros(cfg.max_len, dim)
        self.register_buffer("positions", positions, persistent=False)  # (max_len, dim); not learned

    def embed(self, x: torch.Tensor, steps: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 3 on x (B, T, dim). Given the real steps of each sample, ``steps`` (B,), positions are added to
        those only, as the authors' code numbers the non-padding steps and leaves padding without an embedding;
        without, to every step."""
        positions = self.positions[:x.shape[1]]  # (T, dim)
        if steps is not None:
            positions = positions * (torch.arange(x.shape[1], device=x.device)[None, :]
                                     < steps[:, None])[..., None]  # (B, T, dim)
        return F.dropout(self.scale * x + positions, self.embed_dropout, self.training)  # Eq. 3

    def forward(self, x: torch.Tensor, source: torch.Tensor | None, mask: torch.Tensor,
                x_steps: torch.Tensor | None = None, source_steps: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, Tq, dim), source (B, Tk, dim) or None, mask (B, 1, Tq, Tk) additive, x_steps / source_steps (B,)
        real steps of each (None: positions on every step) -> (B, Tq, dim)."""
        x = self.embed(x, x_steps)  # (B, Tq, dim)
        # Keys and values are the same source, embedded with separate dropout masks, as the authors do.
        keys, values = ((None, None) if source is None
                        else (self.embed(source, source_steps), self.embed(source, source_steps)))  # (B, Tk, dim)
        for layer in self.layers:
            x = layer(x, keys, values, mask)  # (B, Tq, dim)
        return self.norm(x)  # (B, Tq, dim)
