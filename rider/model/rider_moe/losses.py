"""The training objective (Eq. 3): the task loss, the probe losses and Disentangled Interaction Regularization.

``loss_terms`` turns a ``RiderOutput`` into named, unweighted terms; ``LossWeights.coefficients`` gives each its
weight, and ``rider.model.objective.weighted_loss`` is the one place they are applied. Each term is a pure function of tensors so it can be checked on hand-made values.

The reliability weights r_m and r_bar that scale DIR terms are detached inside each function (DESIGN §3):
they weight a loss, and a gradient through them would teach the router to shrink them instead of teaching
the experts their roles. The router still learns r through the prior (Eq. 34) and the task loss.

Shapes: V views in the order (0, -T, -A, -V), B batch, E experts (U_T, U_A, U_V, R, S), M modalities, K classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rider.model.rider_moe.config import LossWeights
from rider.model.rider_moe.experts import EXPERTS, REDUNDANCY, SYNERGY, UNIQUE
from rider.model.objective import PureObjective, task_loss, weighted_loss
from rider.model.rider_moe.network import RiderOutput

TERMS = ("task", "cls", "uni", "red", "syn_off", "syn_res")


def sentiment_class(y: torch.Tensor) -> torch.Tensor:
    """round(clip(y, -3, 3)) + 3 in {0..6}; torch.round rounds halves to even, as np.round does for Acc-7."""
    return (torch.round(y.clamp(-3.0, 3.0)) + 3).long()


def probe_loss(probe_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 23 summed over the modalities (as Eq. 3 sums it), each cross-entropy a batch mean."""
    B, M, K = probe_logits.shape
    target = sentiment_class(y).repeat_interleave(M)  # (B*M,), matches logits flattened (b, m)
    return F.cross_entropy(probe_logits.reshape(B * M, K), target) * M  # Eq. 23: sum_m CE(p_m, y~)


def uniqueness_loss(y_views: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """U_m should not move when another modality is masked: p in P_m \\ {0} are the views -m' for m' != m."""
    w = r.detach()  # (B, M): DESIGN §3
    V = y_views.shape[0]
    total = 0.0
    for m, e in enumerate(UNIQUE):
        others = [1 + m2 for m2 in range(V - 1) if m2 != m]  # Eq. 42: P_m \ {0} as indices on the V axis
        diff = y_views[0:1, :, e] - y_views[others, :, e]  # (|P_m|-1, B)
        total = total + w[:, m] * diff.pow(2).mean(dim=0)  # Eqs. 43-44: r_m * L_uni,m, (B,)
    return total.mean()


def redundancy_loss(y_views: torch.Tensor, r_bar: torch.Tensor) -> torch.Tensor:
    y_r = y_views[:, :, REDUNDANCY]  # (V, B)
    y_r_mean = y_r.mean(dim=0)  # Eq. 45: (B,)
    return (r_bar.detach() * (y_r - y_r_mean).pow(2).mean(dim=0)).mean()  # Eq. 46: r_bar * var over views


def synergy_off_loss(y_views: torch.Tensor, r_bar: torch.Tensor) -> torch.Tensor:
    y_s = y_views[1:, :, SYNERGY]  # (V-1, B): masked views only
    return (r_bar.detach().pow(3) * y_s.pow(2).mean(dim=0)).mean()  # Eq. 48


def synergy_residual_loss(y_full: torch.Tensor, routing: torch.Tensor, y: torch.Tensor,
                          r_bar: torch.Tensor) -> torch.Tensor:
    """S on the full view fits what the other experts leave; only S and pi_S receive its gradient."""
    contrib = routing * y_full  # (B, E): pi_e y_e^(0)
    y_without_s = contrib[:, :SYNERGY].sum(dim=-1) + contrib[:, SYNERGY + 1:].sum(dim=-1)  # Eq. 49: (B,)
    delta = y - y_without_s.detach()  # Eq. 50: stop-gradient
    return (r_bar.detach().pow(3) * (contrib[:, SYNERGY] - delta).pow(2)).mean()  # Eq. 51


def loss_terms(out: RiderOutput, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every term of Eq. 3, unweighted. Terms that need what the forward did not compute are zero:
    uni/red/syn_off without masked views (V = 1), every DIR term for the single expert (E = 1)."""
    zero = out.prediction.new_zeros(())
    has_views = out.expert_outputs.shape[0] == 4
    has_experts = out.expert_outputs.shape[-1] == len(EXPERTS)
    y_views = out.expert_outputs
    return {
        "task": task_loss(out.prediction, y),
        "cls": probe_loss(out.probe_logits, y),
        "uni": uniqueness_loss(y_views, out.reliability) if has_views and has_experts else zero,
        "red": redundancy_loss(y_views, out.mean_reliability) if has_views and has_experts else zero,
        "syn_off": synergy_off_loss(y_views, out.mean_reliability) if has_views and has_experts else zero,
        "syn_res": (synergy_residual_loss(y_views[0], out.routing, y, out.mean_reliability)
                    if has_experts else zero),
    }


def compute_loss(out: RiderOutput, y: torch.Tensor,
                 weights: LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 3 from a forward's output: (total, unweighted terms)."""
    return weighted_loss(loss_terms(out, y), weights.coefficients())


def rider_objective(config=None, weights: LossWeights | None = None, train_size: int = 0) -> PureObjective:
    """RIDER-MoE's objective for the trainer: the terms of Eq. 3, stateless."""
    return PureObjective(TERMS, loss_terms)
