"""RIDER-MoE, the model of the paper (§3, App. B), and its training objective (Eq. 3).

One concept per module: ``config`` (hyper-parameters), ``encoders`` (g_m), ``fusion`` (f_fuse), ``experts``
(U_T, U_A, U_V, R, S), ``router`` (Eqs. 21-39), ``rider_moe`` (the forward pass and masked views),
``losses`` (Eqs. 2, 23, 43-52), ``params`` (parameter counts beside the paper's Table 6), ``text_only``
(g_T and a regression head, for text-only data).

Model kinds are registered in ``MODEL_KINDS``; a variant picks one with ``kind`` (config.yaml), the checkpoint's
config.json records it, and the trainer, the checkpoint loader and the evaluation build from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

from rider.model.config import LossWeights, ModelConfig, paper_config
from rider.model.experts import EXPERTS, GroupedExperts, SeparateExperts, copy_expert_weights
from rider.model.losses import TERMS, compute_loss, loss_terms, weighted_loss
from rider.model.rider_moe import MODALITIES, VIEWS, RiderMoE, RiderOutput
from rider.model.text_only import TEXT_ONLY_TERMS, TextOnlyModel, TextOnlyOutput, text_only_loss

__all__ = [
    "DEFAULT_KIND", "EXPERTS", "MODALITIES", "MODEL_KINDS", "TERMS", "VIEWS", "GroupedExperts", "LossWeights",
    "ModelConfig", "ModelKind", "RiderMoE", "RiderOutput", "SeparateExperts", "TextOnlyModel", "TextOnlyOutput",
    "build_model", "compute_loss", "copy_expert_weights", "count_parameters", "loss_terms", "model_kind",
    "paper_config", "weighted_loss",
]


@dataclass(frozen=True)
class ModelKind:
    """What the trainer and the evaluation need to know about a kind of model."""

    build: Callable[[ModelConfig], nn.Module]
    loss: Callable[[Any, torch.Tensor, LossWeights], tuple[torch.Tensor, dict[str, torch.Tensor]]]
    terms: tuple[str, ...]       # the loss terms it logs per epoch
    modalities: tuple[str, ...]  # the inputs it reads (text, audio, vision)
    routed: bool                 # experts and routing: DIR checks, routing means, missingness and conflict apply


MODEL_KINDS: dict[str, ModelKind] = {
    "rider_moe": ModelKind(RiderMoE, compute_loss, TERMS, ("text", "audio", "vision"), routed=True),
    "text_only": ModelKind(TextOnlyModel, text_only_loss, TEXT_ONLY_TERMS, ("text",), routed=False),
}
DEFAULT_KIND = "rider_moe"


def model_kind(name: str) -> ModelKind:
    if name not in MODEL_KINDS:
        raise ValueError(f"model kind {name!r} is not one of {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[name]


def build_model(model_cfg: ModelConfig | Mapping[str, Any], kind: str = DEFAULT_KIND) -> nn.Module:
    """A freshly initialised model of ``kind`` (RIDER-MoE by default) from a ``ModelConfig`` or the plain dict
    of config.yaml's model section."""
    if not isinstance(model_cfg, ModelConfig):
        model_cfg = ModelConfig.from_dict(model_cfg)
    return model_kind(kind).build(model_cfg)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
