"""A RIDER-MoE and a batch small enough for equation- and shape-level tests."""

import torch

from rider.model.rider_moe.config import ModelConfig


def tiny_config(**overrides) -> ModelConfig:
    base = dict(d_model=16, expert_layers=2, expert_heads=2, expert_ff=32, encoder_heads=2, max_len=6, dropout=0.0)
    return ModelConfig(**{**base, **overrides})


def tiny_batch(B=4, L=6, seed=0):
    """(text, audio, vision, lengths); one sample has the full length so every position is used."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, L, 300, generator=g), torch.randn(B, L, 74, generator=g),
            torch.randn(B, L, 35, generator=g), torch.tensor([L, 3, 1, 5][:B]))
