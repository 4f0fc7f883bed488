"""Unimodal encoders g_m (paper §3.1): a word-aligned feature sequence in, one vector h_m per sample out.

Shapes: B batch, L words, D hidden (d_model).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from rider.model.rider_moe.config import ModelConfig


class ModalityEncoder(nn.Module):
    """Linear(in -> D) + learned positional embedding + Transformer encoder + masked mean pooling.

    Pooling averages only the first ``lengths[b]`` positions, so padding never leaks into h_m. A sample of
    length 0 (nothing to encode) gets h_m = 0 rather than NaN: an all-masked attention row would divide by
    zero, so such rows attend over the padding instead and their pooling weights are all zero. Callers that
    mean "this modality is absent" say so with ``presence`` in ``RiderMoE``, which substitutes MASK_m.
    """

    def __init__(self, in_dim: int, cfg: ModelConfig):
        super().__init__()
        self.in_dim = in_dim
        self.max_len = cfg.max_len
        self.proj = nn.Linear(in_dim, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(cfg.max_len, cfg.d_model) * 0.02)
        # Pre-norm with a final LayerNorm: stable without warm-up at 0.3 dropout. The paper does not say.
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.encoder_heads, dim_feedforward=cfg.expert_ff, dropout=cfg.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(
            layer, cfg.encoder_layers, norm=nn.LayerNorm(cfg.d_model), enable_nested_tensor=False
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        if L > self.max_len:
            raise ValueError(f"ModalityEncoder: sequence of {L} words, the positional embedding has {self.max_len}")
        x = self.proj(x) + self.pos[:L]  # (B, L, D)
        valid = torch.arange(L, device=x.device)[None, :] < lengths[:, None]  # (B, L)
        padding = ~valid & valid.any(dim=1, keepdim=True)  # (B, L); all False for an empty sample
        x = self.transformer(x, src_key_padding_mask=padding)  # (B, L, D)
        weight = valid.to(x.dtype)[..., None]  # (B, L, 1)
        return (x * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)  # (B, D)
