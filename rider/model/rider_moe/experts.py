"""The five scalar experts {U_T, U_A, U_V, R, S} (paper §3.1, Eqs. 6, 41).

Each expert is a small Transformer over [its own CLS token + the 3 fused modality tokens]; a Linear(D -> 1)
on the CLS output is its scalar prediction y_e. The experts share their input and their shapes, so
``GroupedExperts`` keeps each weight of all experts stacked along a leading E axis and runs one batched
matmul per projection for all of them: at these sizes the step time is bound by kernel launches, not by
arithmetic (DESIGN §8), and five small matmuls cost about five times one that is five times larger.

``SeparateExperts`` is the plain reading of the paper: five ``nn.TransformerEncoder`` modules. It is kept
as the reference the grouped module is tested against (``copy_expert_weights`` moves weights between them).

Shapes: N samples in this call (B, or V*B when the views are batched), M modalities, S = 1 + M tokens,
E experts, D hidden, F feed-forward, H heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from rider.model.kind import INTERACTION_EXPERTS
from rider.model.rider_moe.config import ModelConfig

EXPERTS = INTERACTION_EXPERTS  # order of the E axis everywhere
UNIQUE = (0, 1, 2)  # U_m for m = T, A, V
REDUNDANCY = 3
SYNERGY = 4
LN_EPS = 1e-5  # nn.TransformerEncoderLayer's default, so the two implementations agree


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """LayerNorm with a separate affine per expert: x (E, N, S, D), weight/bias (E, D)."""
    x = F.layer_norm(x, x.shape[-1:], eps=LN_EPS)
    return x * weight[:, None, None, :] + bias[:, None, None, :]


class GroupedBlock(nn.Module):
    """One pre-norm Transformer layer (attention + GELU feed-forward) for all E experts at once."""

    def __init__(self, num_experts: int, d_model: int, heads: int, d_ff: int, dropout: float):
        super().__init__()
        E, D = num_experts, d_model
        self.heads, self.dropout = heads, dropout
        self.ln1_w, self.ln1_b = nn.Parameter(torch.ones(E, D)), nn.Parameter(torch.zeros(E, D))
        self.qkv_w, self.qkv_b = nn.Parameter(torch.empty(E, D, 3 * D)), nn.Parameter(torch.zeros(E, 3 * D))
        self.out_w, self.out_b = nn.Parameter(torch.empty(E, D, D)), nn.Parameter(torch.zeros(E, D))
        self.ln2_w, self.ln2_b = nn.Parameter(torch.ones(E, D)), nn.Parameter(torch.zeros(E, D))
        self.ff1_w, self.ff1_b = nn.Parameter(torch.empty(E, D, d_ff)), nn.Parameter(torch.empty(E, d_ff))
        self.ff2_w, self.ff2_b = nn.Parameter(torch.empty(E, d_ff, D)), nn.Parameter(torch.empty(E, D))
        # The same distributions nn.MultiheadAttention and nn.Linear draw from.
        nn.init.uniform_(self.qkv_w, -math.sqrt(6 / (4 * D)), math.sqrt(6 / (4 * D)))  # xavier on (3D, D)
        for w, b, fan_in in ((self.out_w, None, D), (self.ff1_w, self.ff1_b, D), (self.ff2_w, self.ff2_b, d_ff)):
            nn.init.uniform_(w, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
            if b is not None:
                nn.init.uniform_(b, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        E, N, S, D = x.shape
        H = self.heads
        p = self.dropout if self.training else 0.0
        a = _layer_norm(x, self.ln1_w, self.ln1_b).reshape(E, N * S, D)
        qkv = torch.baddbmm(self.qkv_b[:, None], a, self.qkv_w)  # (E, N*S, 3D)
        q, k, v = qkv.view(E * N, S, 3, H, D // H).permute(2, 0, 3, 1, 4)  # each (E*N, H, S, D/H)
        if cls_only:  # the last layer: only the CLS row is ever read, so only it is computed
            q, x, S = q[:, :, :1], x[:, :, :1], 1
        att = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (E*N, H, S, D/H)
        att = att.transpose(1, 2).reshape(E, N * S, D)
        x = x + F.dropout(torch.baddbmm(self.out_b[:, None], att, self.out_w), p, self.training).view(E, N, S, D)
        a = _layer_norm(x, self.ln2_w, self.ln2_b).reshape(E, N * S, D)
        f = F.dropout(F.gelu(torch.baddbmm(self.ff1_b[:, None], a, self.ff1_w)), p, self.training)  # (E, N*S, F)
        f = torch.baddbmm(self.ff2_b[:, None], f, self.ff2_w)  # (E, N*S, D)
        return x + F.dropout(f, p, self.training).view(E, N, S, D)


class GroupedExperts(nn.Module):
    """All experts as stacked weights: (N, M, D) fused tokens in, (N, E) scalar predictions out."""

    def __init__(self, num_experts: int, d_model: int, layers: int, heads: int, d_ff: int, dropout: float):
        super().__init__()
        E, D = num_experts, d_model
        self.num_experts = E
        self.cls = nn.Parameter(torch.randn(E, D) * 0.02)
        self.blocks = nn.ModuleList(GroupedBlock(E, D, heads, d_ff, dropout) for _ in range(layers))
        self.lnf_w, self.lnf_b = nn.Parameter(torch.ones(E, D)), nn.Parameter(torch.zeros(E, D))
        self.head_w = nn.Parameter(torch.empty(E, D).uniform_(-1 / math.sqrt(D), 1 / math.sqrt(D)))
        self.head_b = nn.Parameter(torch.empty(E).uniform_(-1 / math.sqrt(D), 1 / math.sqrt(D)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        N, M, D = tokens.shape
        E = self.num_experts
        x = torch.cat([self.cls[:, None, None, :].expand(E, N, 1, D),
                       tokens[None].expand(E, N, M, D)], dim=2)  # (E, N, 1+M, D)
        for i, block in enumerate(self.blocks):
            x = block(x, cls_only=i == len(self.blocks) - 1)  # (E, N, 1+M, D), last: (E, N, 1, D)
        cls = _layer_norm(x[:, :, :1], self.lnf_w, self.lnf_b)[:, :, 0]  # (E, N, D)
        return torch.einsum("end,ed->ne", cls, self.head_w) + self.head_b  # (N, E)


class Expert(nn.Module):
    """One expert as the paper draws it: CLS + tokens through an nn.TransformerEncoder, Linear(D -> 1)."""

    def __init__(self, d_model: int, layers: int, heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.cls = nn.Parameter(torch.randn(d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=d_ff, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model),
                                                 enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        N, M, D = tokens.shape
        x = torch.cat([self.cls.expand(N, 1, D), tokens], dim=1)  # (N, 1+M, D)
        return self.head(self.transformer(x)[:, 0]).squeeze(-1)  # (N,)


class SeparateExperts(nn.Module):
    """Reference implementation: E independent ``Expert`` modules called one after another."""

    def __init__(self, num_experts: int, d_model: int, layers: int, heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.num_experts = num_experts
        self.experts = nn.ModuleList(Expert(d_model, layers, heads, d_ff, dropout) for _ in range(num_experts))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.stack([expert(tokens) for expert in self.experts], dim=-1)  # (N, E)


def _paired_parameters(grouped: GroupedExperts, separate: SeparateExperts):
    """Yield (stacked grouped parameter, expert index, separate parameter, transposed?) for every weight."""
    for e, expert in enumerate(separate.experts):
        yield grouped.cls, e, expert.cls, False
        for block, layer in zip(grouped.blocks, expert.transformer.layers, strict=True):
            attn = layer.self_attn
            yield block.ln1_w, e, layer.norm1.weight, False
            yield block.ln1_b, e, layer.norm1.bias, False
            yield block.qkv_w, e, attn.in_proj_weight, True  # nn.Linear stores (out, in)
            yield block.qkv_b, e, attn.in_proj_bias, False
            yield block.out_w, e, attn.out_proj.weight, True
            yield block.out_b, e, attn.out_proj.bias, False
            yield block.ln2_w, e, layer.norm2.weight, False
            yield block.ln2_b, e, layer.norm2.bias, False
            yield block.ff1_w, e, layer.linear1.weight, True
            yield block.ff1_b, e, layer.linear1.bias, False
            yield block.ff2_w, e, layer.linear2.weight, True
            yield block.ff2_b, e, layer.linear2.bias, False
        yield grouped.lnf_w, e, expert.transformer.norm.weight, False
        yield grouped.lnf_b, e, expert.transformer.norm.bias, False
        yield grouped.head_w, e, expert.head.weight, False
        yield grouped.head_b, e, expert.head.bias, False


@torch.no_grad()
def copy_expert_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy every expert weight from ``src`` to ``dst``, one grouped and the other separate (either way)."""
    if isinstance(src, SeparateExperts) and isinstance(dst, GroupedExperts):
        grouped, separate, to_grouped = dst, src, True
    elif isinstance(src, GroupedExperts) and isinstance(dst, SeparateExperts):
        grouped, separate, to_grouped = src, dst, False
    else:
        raise TypeError(f"copy_expert_weights: need one GroupedExperts and one SeparateExperts, "
                        f"got {type(src).__name__} -> {type(dst).__name__}")
    layers = len(separate.experts[0].transformer.layers)
    if grouped.num_experts != separate.num_experts or len(grouped.blocks) != layers:
        raise ValueError("copy_expert_weights: the two modules have different numbers of experts or layers")
    for stacked, e, param, transposed in _paired_parameters(grouped, separate):
        if to_grouped:
            stacked[e].copy_((param.T if transposed else param).reshape(stacked[e].shape))
        else:
            param.copy_((stacked[e].T if transposed else stacked[e]).reshape(param.shape))


def single_expert_ff(cfg: ModelConfig, num_experts: int = len(EXPERTS)) -> int:
    """Feed-forward width that gives one expert the parameters of ``num_experts`` experts (Table 3 collapse).

    Per expert: layers * (4D^2 + 9D + F(2D + 1)) + 4D + 1 parameters (attention, two LayerNorms and the
    feed-forward per layer; CLS, final LayerNorm and head once). Only the F term grows with width.
    """
    D, Le = cfg.d_model, cfg.expert_layers

    def count(d_ff: int) -> int:
        return Le * (4 * D * D + 9 * D + d_ff * (2 * D + 1)) + 4 * D + 1

    return max(1, round((num_experts * count(cfg.expert_ff) - count(0)) / (Le * (2 * D + 1))))


def build_experts(cfg: ModelConfig) -> nn.Module:
    """The five experts, or the single wide one of the Table 3 collapse, grouped or separate per the config."""
    num, d_ff = (1, single_expert_ff(cfg)) if cfg.single_expert else (len(EXPERTS), cfg.expert_ff)
    cls = GroupedExperts if cfg.grouped_experts else SeparateExperts
    return cls(num, cfg.d_model, cfg.expert_layers, cfg.expert_heads, d_ff, cfg.dropout)
