"""RIDER-MoE, the model of the paper (§3, App. B), and its training objective (Eq. 3).

One concept per module: ``config`` (hyper-parameters), ``encoders`` (g_m), ``fusion`` (f_fuse), ``experts``
(U_T, U_A, U_V, R, S), ``router`` (Eqs. 21-39), ``rider_moe`` (the forward pass and masked views),
``losses`` (Eqs. 2, 23, 43-52), ``params`` (parameter counts beside the paper's Table 6).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch.nn as nn

from rider.model.config import LossWeights, ModelConfig, paper_config
from rider.model.experts import EXPERTS, GroupedExperts, SeparateExperts, copy_expert_weights
from rider.model.losses import TERMS, compute_loss, loss_terms, weighted_loss
from rider.model.rider_moe import MODALITIES, VIEWS, RiderMoE, RiderOutput

__all__ = [
    "EXPERTS", "MODALITIES", "TERMS", "VIEWS", "GroupedExperts", "LossWeights", "ModelConfig", "RiderMoE",
    "RiderOutput", "SeparateExperts", "build_model", "compute_loss", "copy_expert_weights", "count_parameters",
    "loss_terms", "paper_config", "weighted_loss",
]


def build_model(model_cfg: ModelConfig | Mapping[str, Any]) -> RiderMoE:
    """A freshly initialised RIDER-MoE from a ``ModelConfig`` or the plain dict of config.yaml's model section."""
    if not isinstance(model_cfg, ModelConfig):
        model_cfg = ModelConfig.from_dict(model_cfg)
    return RiderMoE(model_cfg)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
