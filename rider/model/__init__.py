"""Every model the pipeline trains: RIDER-MoE (§3, App. B) and the baselines of Tables 1-2, behind one interface.

Every model, baseline or not, is a ``ModelKind`` (``kind``: what the pipeline needs to know) registered in
``registry.MODEL_KINDS``; a variant picks one with ``kind`` (config.yaml), the checkpoint's config.json records it,
and the one trainer, checkpoint loader and evaluator build from it. ``objective``: loss terms weighted in one place.

RIDER-MoE, one concept per module: ``config`` (hyper-parameters), ``encoders`` (g_m), ``fusion`` (f_fuse),
``experts`` (U_T, U_A, U_V, R, S), ``router`` (Eqs. 21-39), ``rider_moe`` (the forward pass and masked views),
``losses`` (Eqs. 2, 23, 43-52), ``text_only`` (g_T and a regression head, for text-only data).
The baselines, one module each: ``tfn``, ``lmf``, ``mult``, ``misa``, ``self_mm``, ``emoe``, ``t_hne`` (``recurrent``: the padded LSTMs
MISA and Self-MM share). ``params``: every kind's parameter count at its published sizes (Table 6).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch.nn as nn

from rider.model.config import LossWeights, ModelConfig, paper_config
from rider.model.experts import EXPERTS, GroupedExperts, SeparateExperts, copy_expert_weights
from rider.model.kind import ModelKind
from rider.model.losses import TERMS, compute_loss, loss_terms
from rider.model.objective import Batch, Objective, TaskLoss, weighted_loss
from rider.model.registry import DEFAULT_KIND, MODEL_KINDS
from rider.model.rider_moe import MODALITIES, VIEWS, RiderMoE, RiderOutput
from rider.model.text_only import TextOnlyModel, TextOnlyOutput

__all__ = [
    "DEFAULT_KIND", "EXPERTS", "MODALITIES", "MODEL_KINDS", "TERMS", "VIEWS", "Batch", "GroupedExperts",
    "LossWeights", "ModelConfig", "ModelKind", "Objective", "RiderMoE", "RiderOutput", "SeparateExperts", "TaskLoss",
    "TextOnlyModel", "TextOnlyOutput", "build_model", "compute_loss", "copy_expert_weights", "count_parameters",
    "loss_terms", "model_kind", "paper_config", "weighted_loss",
]


def model_kind(name: str) -> ModelKind:
    if name not in MODEL_KINDS:
        raise ValueError(f"model kind {name!r} is not one of {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[name]


def build_model(model_cfg: Any, kind: str = DEFAULT_KIND) -> nn.Module:
    """A freshly initialised model of ``kind`` (RIDER-MoE by default) from its config dataclass or the plain dict
    of its config section."""
    entry = model_kind(kind)
    if isinstance(model_cfg, Mapping):
        model_cfg = entry.config.from_dict(model_cfg, where=f"{kind} model config")
    if not isinstance(model_cfg, entry.config):
        raise TypeError(f"model kind {kind!r} is built from a {entry.config.__name__}, got {type(model_cfg).__name__}")
    return entry.build(model_cfg)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
