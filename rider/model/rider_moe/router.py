"""The reliability-aware router (paper §3.2, App. B.1, Eqs. 21-39).

Unimodal probes say how confident each modality is (entropy) and whether the modalities agree (consensus);
together with an importance read from the fused context they form an expert prior that is added to a base
router's logits as a log-bias. Each equation is a small pure function so it can be checked by hand; the
module wires them in the paper's order.

Shapes: B batch, M modalities, K probe classes, E experts, D hidden.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn


def entropy(p: torch.Tensor, eps: float) -> torch.Tensor:
    return -(p * torch.log(p + eps)).sum(dim=-1)  # Eq. 24: (..., K) -> (...)


def relative_reliability(H: torch.Tensor) -> torch.Tensor:
    return torch.softmax(-H, dim=-1)  # Eq. 25: lower entropy, higher reliability; (B, M)


def blend_reliability(rel: torch.Tensor, imp: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    r_tilde = alpha * rel + (1 - alpha) * imp  # Eq. 28: (B, M)
    r = r_tilde / r_tilde.sum(dim=-1, keepdim=True)  # Eq. 29: normalised reliability weights r_m
    return r, r.mean(dim=-1)  # Eq. 29: r (B, M), r_bar (B,)


def absolute_reliability(H: torch.Tensor, num_classes: int) -> torch.Tensor:
    """1 - H_m / log K in [0, 1]: 1 for a one-hot probe, 0 for a uniform one, whatever the other modalities do.
    Replaces Eq. 25's softmax, which only ranks the modalities against each other."""
    return 1.0 - H / math.log(num_classes)  # (B, M)


def blend_absolute(a: torch.Tensor, imp: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 28 with a_m for Rel_m and without Eq. 29's normalisation: r_m in [0, 1] (alpha a_m <= alpha and
    (1 - alpha) Imp_m <= 1 - alpha), r_bar = alpha mean_m a_m + (1 - alpha) / M falls when all modalities degrade."""
    r = alpha * a + (1 - alpha) * imp  # (B, M)
    return r, r.mean(dim=-1)


def consensus_score(p: torch.Tensor, gamma: float, eps: float) -> torch.Tensor:
    """exp(-gamma * mean_m KL(p_m || p_bar)): 1 when the probes agree, towards 0 when they conflict."""
    p_bar = p.mean(dim=-2, keepdim=True)  # Eq. 30: (B, 1, K)
    kl = (p * torch.log((p + eps) / (p_bar + eps))).sum(dim=-1)  # Eq. 31: D_m, (B, M)
    disagree = kl.mean(dim=-1)  # Eq. 32: (B,)
    return torch.exp(-gamma * disagree)  # Eq. 33: consensus score


def inject_prior(base_logits: torch.Tensor, prior: torch.Tensor, strength: float, eps: float) -> torch.Tensor:
    logits = base_logits + strength * torch.log(prior + eps)  # Eq. 38: log-prior injection
    return torch.softmax(logits, dim=-1)  # Eq. 39: routing weights pi^(0), (B, E)


class RunningStandardize(nn.Module):
    """(x - mean) / std with running statistics, updated from each training batch (momentum, detached).

    Unlike batch normalisation it never normalises by the batch's own statistics, so one sample in a batch is fine
    and training and inference compute the same function of the statistics; no affine part: the next Linear
    (W_prior) decides what a standardised feature means.
    """

    def __init__(self, n_features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("var", torch.ones(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] > 1:
            with torch.no_grad():
                self.mean.lerp_(x.mean(dim=0), self.momentum)
                self.var.lerp_(x.var(dim=0), self.momentum)
        return (x - self.mean) / torch.sqrt(self.var + self.eps)  # (B, F)


class RouterOutput(NamedTuple):
    probe_logits: torch.Tensor  # (B, M, K)
    entropy: torch.Tensor  # (B, M)
    relative_reliability: torch.Tensor  # Rel_m, (B, M); a_m = 1 - H_m / log K with absolute reliability
    importance: torch.Tensor  # (B, M)
    reliability: torch.Tensor  # r, (B, M)
    mean_reliability: torch.Tensor  # r_bar, (B,)
    consensus: torch.Tensor  # (B,)
    expert_prior: torch.Tensor  # Prior^exp, (B, E)
    routing: torch.Tensor  # pi^(0), (B, E)


class ReliabilityRouter(nn.Module):
    """Probes on h_m and routing on z^(0), computed once per sample from the full view (§3.3).

    The base router f_router (Eq. 37) is a single Linear(D -> E), the usual MoE gate: z^(0) is already the
    output of Transformer encoders, and keeping the gate linear leaves the reliability prior as the only
    non-linear path into the routing, which is what the lambda_p = 0 ablation removes.
    """

    def __init__(self, d_model: int, num_experts: int, num_classes: int = 7, num_modalities: int = 3,
                 alpha: float = 0.7, gamma: float = 1.0, prior_strength: float = 1.0, eps: float = 1e-8,
                 use_consensus: bool = True, reliability: str = "relative", prior_features: str = "raw"):
        super().__init__()
        M, K, D = num_modalities, num_classes, d_model
        self.alpha, self.gamma, self.prior_strength, self.eps = alpha, gamma, prior_strength, eps
        self.use_consensus = use_consensus
        self.absolute = reliability == "absolute"
        n_features = M + int(use_consensus)
        self.prior_norm = RunningStandardize(n_features) if prior_features == "standardized" else nn.Identity()
        # One probe Linear(D -> K) per modality (Eq. 21), stored stacked so all three run as one einsum.
        bound = 1 / D**0.5
        self.probe_w = nn.Parameter(torch.empty(M, D, K).uniform_(-bound, bound))
        self.probe_b = nn.Parameter(torch.empty(M, K).uniform_(-bound, bound))
        self.importance = nn.Linear(D, M)  # Eq. 26: W_imp
        self.prior = nn.Linear(n_features, num_experts)  # Eq. 35: W_prior on f
        self.base = nn.Linear(D, num_experts)  # Eq. 37: f_router

    def forward(self, h: torch.Tensor, z0: torch.Tensor) -> RouterOutput:
        logits = torch.einsum("bmd,mdk->bmk", h, self.probe_w) + self.probe_b  # Eq. 21: (B, M, K)
        p = torch.softmax(logits, dim=-1)  # Eq. 22: p_m, (B, M, K)
        H = entropy(p, self.eps)  # Eq. 24: (B, M)
        imp = torch.softmax(self.importance(z0), dim=-1)  # Eqs. 26-27: (B, M)
        if self.absolute:  # a_m takes Rel_m's place
            rel = absolute_reliability(H, p.shape[-1])  # (B, M)
            r, r_bar = blend_absolute(rel, imp, self.alpha)  # (B, M), (B,)
        else:
            rel = relative_reliability(H)  # Eq. 25: (B, M)
            r, r_bar = blend_reliability(rel, imp, self.alpha)  # Eqs. 28-29: (B, M), (B,)
        cons = consensus_score(p, self.gamma, self.eps)  # Eqs. 30-33: (B,)
        f = torch.cat([r, cons[:, None]], dim=-1) if self.use_consensus else r  # Eq. 34: (B, M+1) or (B, M)
        prior = torch.softmax(self.prior(self.prior_norm(f)), dim=-1)  # Eqs. 35-36: Prior^exp, (B, E)
        pi = inject_prior(self.base(z0), prior, self.prior_strength, self.eps)  # Eqs. 37-39: (B, E)
        return RouterOutput(logits, H, rel, imp, r, r_bar, cons, prior, pi)
