"""f_fuse (Eqs. 6, 40): the three modality vectors become a set of three tokens the experts attend over.

A modality embedding is added so that an expert can tell which token is text, audio or vision even when a
token is MASK_m. z^(p) is the token set; where a single vector is needed (the router's input, Eqs. 26 and
37) it is the mean of the set. Shapes: ... any leading dims (views, batch), M modalities, D hidden.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class Fusion(nn.Module):
    def __init__(self, d_model: int, num_modalities: int = 3):
        super().__init__()
        self.modality_emb = nn.Parameter(torch.randn(num_modalities, d_model) * 0.02)  # (M, D)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.modality_emb  # (..., M, D): z^(p) as a token set

    @staticmethod
    def pool(tokens: torch.Tensor) -> torch.Tensor:
        return tokens.mean(dim=-2)  # (..., D): z^(p) as one vector, the router input
