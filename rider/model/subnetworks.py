"""The modality sub-networks of TFN (Zadeh et al., EMNLP 2017, §3.1; the authors' SubNet and TextSubNet), which
LMF (Liu et al., ACL 2018) reuses unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

def word_mask(lengths: torch.Tensor, L: int) -> torch.Tensor:
    """(B, L) bool: True at the first lengths[b] positions (the real words)."""
    return torch.arange(L, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, L, D) over the real words -> (B, D); 0 for a sample of length 0."""
    weight = word_mask(lengths, x.shape[1]).to(x.dtype)[..., None]  # (B, L, 1)
    return (x * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)  # (B, D)


class FeatureSubNet(nn.Module):
    """Audio or vision embedding sub-network (paper §3.1; the authors' SubNet): the word-level features averaged
    over the real words, BatchNorm, dropout, three Linear+ReLU layers."""

    def __init__(self, in_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled = masked_mean(x, lengths)  # (B, L, D) -> (B, D)
        return self.layers(self.drop(self.norm(pooled)))  # (B, H)


class TextSubNet(nn.Module):
    """Language embedding sub-network (paper §3.1; the authors' TextSubNet): a one-layer LSTM over the words and
    one Linear on its hidden state after the last real word."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.rnn = nn.LSTM(in_dim, hidden, batch_first=True)
        self.linear = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        states, _ = self.rnn(x)  # (B, L, Ht); the state at t depends on positions <= t only
        last = states[torch.arange(B, device=x.device), (lengths - 1).clamp(min=0)]  # (B, Ht) after the last word
        last = torch.where((lengths > 0)[:, None], last, torch.zeros_like(last))  # length 0: the initial state h_0
        return self.linear(last)  # (B, To)


def with_one(z: torch.Tensor) -> torch.Tensor:
    """[1; z]: the constant 1 that keeps lower-order terms in the outer product. (B, H) -> (B, H+1)."""
    return torch.cat([torch.ones_like(z[:, :1]), z], dim=1)
