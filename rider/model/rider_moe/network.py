"""RIDER-MoE (paper §3, Algorithm 1): encoders, masked views, fusion, five experts, reliability-aware router.

One training step encodes each modality once, builds the four views p in (0, -T, -A, -V) by swapping one
h_m for MASK_m, and runs fusion + experts on all four as a single batch of 4B (App. D; DESIGN §8). Routing
is computed once, from the full view. Inference runs the full view only: one call of the experts.

Shapes: B batch, V views, M modalities, E experts, L words, D hidden, K probe classes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from rider.model.rider_moe.config import ModelConfig
from rider.model.rider_moe.encoders import ModalityEncoder
from rider.model.rider_moe.experts import build_experts
from rider.model.rider_moe.fusion import Fusion
from rider.model.kind import check_input_widths
from rider.model.recurrent import truncate
from rider.model.rider_moe.router import ReliabilityRouter

MODALITIES = ("T", "A", "V")


class RiderOutput(NamedTuple):
    prediction: torch.Tensor  # Eq. 1: y_hat^(0), (B,)
    expert_outputs: torch.Tensor  # y_e^(p), (V, B, E); V = 4 with views, else 1 (the full view)
    routing: torch.Tensor  # pi^(0), (B, E)
    probe_logits: torch.Tensor  # Eq. 21, (B, M, K)
    reliability: torch.Tensor  # r_m, (B, M)
    mean_reliability: torch.Tensor  # r_bar, (B,)
    consensus: torch.Tensor  # cons_score, (B,)
    entropy: torch.Tensor  # H_m, (B, M)
    importance: torch.Tensor  # Imp_m, (B, M)
    expert_prior: torch.Tensor  # Prior^exp, (B, E)
    fused_tokens: torch.Tensor  # z^(p) as token sets, (V, B, M, D)
    relative_reliability: torch.Tensor  # Rel_m, Eq. 25, (B, M); a_m with absolute reliability


def build_views(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, M, D) -> (V=1+M, B, M, D): view 0 is h, view 1+m has h_m replaced by MASK_m (App. B.2)."""
    M = h.shape[1]
    masked = torch.cat([torch.zeros(1, M, dtype=torch.bool, device=h.device),
                        torch.eye(M, dtype=torch.bool, device=h.device)])  # (V, M): which h_m each view swaps
    return torch.where(masked[:, None, :, None], mask[None, None], h[None])  # (V, B, M, D)


class RiderMoE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        D, M = cfg.d_model, len(MODALITIES)
        self.encoders = nn.ModuleList(ModalityEncoder(dim, cfg)
                                      for dim in (cfg.text_dim, cfg.audio_dim, cfg.vision_dim))
        # MASK_m: learned, so "absent" gets a representation the experts can recognise, or fixed zeros.
        if cfg.mask_kind == "learned":
            self.mask = nn.Parameter(torch.randn(M, D) * 0.02)  # (M, D)
        else:
            self.register_buffer("mask", torch.zeros(M, D))
        self.fusion = Fusion(D, M)
        self.experts = build_experts(cfg)
        self.router = ReliabilityRouter(
            D, self.experts.num_experts, cfg.num_classes, M, cfg.alpha, cfg.gamma, cfg.prior_strength, cfg.eps,
            cfg.use_consensus, cfg.reliability, cfg.prior_features,
        )

    def encode(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor, lengths: torch.Tensor,
               presence: torch.Tensor | None = None) -> torch.Tensor:
        """h_m for each modality, with MASK_m where ``presence`` says a modality is absent (App. C.2)."""
        check_input_widths("RiderMoE", self.cfg, text=text, audio=audio, vision=vision)
        if text.shape[1] > self.cfg.max_len:  # checked before trimming hides it
            raise ValueError(f"RiderMoE: sequence of {text.shape[1]} words, the positional embedding has "
                             f"{self.cfg.max_len}")
        # Padding never reaches h_m (masked attention, masked pooling): the encoders run on the batch's longest
        # sample only, about 1.5x faster per CPU step on synthetic segments of at most 20 of the 50 words.
        inputs = [truncate(x, lengths) for x in (text, audio, vision)]
        h = torch.stack([enc(x, lengths) for enc, x in zip(self.encoders, inputs)], dim=1)  # (B, M, D)
        if presence is not None:
            h = torch.where(presence[:, :, None], h, self.mask)  # (B, M, D)
        return h

    def run_experts(self, tokens: torch.Tensor) -> torch.Tensor:
        """All views through the experts in one call: (V, B, M, D) -> (V, B, E)."""
        V, B, M, D = tokens.shape
        return self.experts(tokens.reshape(V * B, M, D)).view(V, B, -1)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor, lengths: torch.Tensor,
                presence: torch.Tensor | None = None, with_views: bool | None = None) -> RiderOutput:
        """text (B, L, Dt), audio (B, L, Da), vision (B, L, Dv), lengths (B,), presence (B, M) bool.

        ``with_views`` defaults to training with masked views on: DIR needs them, inference does not. Asked for
        explicitly, they are computed whatever the training used (the test-time DIR checks of App. C.4 compare
        every variant), except for the single expert, which has no U/R/S roles to check.
        """
        if with_views is None:
            with_views = self.training and self.cfg.masked_views
        with_views = with_views and not self.cfg.single_expert
        h = self.encode(text, audio, vision, lengths, presence)  # (B, M, D)
        views = build_views(h, self.mask) if with_views else h[None]  # Eq. 5: (V, B, M, D)
        tokens = self.fusion(views)  # Eq. 40: z^(p), (V, B, M, D)
        route = self.router(h, self.fusion.pool(tokens[0]))  # Eqs. 21-39 on the full view: pi (B, E)
        y = self.run_experts(tokens)  # Eq. 41: y_e^(p), (V, B, E)
        prediction = (route.routing * y[0]).sum(dim=-1)  # Eq. 1: (B,)
        return RiderOutput(
            prediction, y, route.routing, route.probe_logits, route.reliability, route.mean_reliability,
            route.consensus, route.entropy, route.importance, route.expert_prior, tokens,
            route.relative_reliability,
        )
