"""The interface every model goes through, the paper's RIDER-MoE and the baselines of Tables 1-2 alike.

Every model is a ``ModelKind`` (``kind``: what the trainer, the checkpoint loader and the evaluator need to know),
declared as ``KIND`` in a module of its own, found by name (``registry``). The interface: ``kind`` (what a kind
declares), ``registry`` (kinds by name), ``objective`` (named, unweighted loss terms, weighted in one place),
``stages`` (optimisation stages of an epoch), ``params`` (every kind's size at its published configuration). The
pieces any kind may use: ``padding`` (how many word positions a batch needs), ``recurrent`` (LSTMs over padded
sequences), ``crossmodal`` (MulT's transformers), ``subnetworks`` (TFN's modality sub-networks).

The kinds: ``rider_moe/`` (the paper's model, §3 and App. B, and its text-only reduction) and ``baselines/`` (one
module per baseline). They import the interface; the interface never imports them.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch.nn as nn

from rider.model.kind import ModelKind, Signal
from rider.model.objective import Batch, Objective, TaskLoss, weighted_loss
from rider.model.registry import DEFAULT_KIND, MODEL_KINDS, kind_module, kind_names

__all__ = [
    "DEFAULT_KIND", "MODEL_KINDS", "Batch", "ModelKind", "Objective", "Signal", "TaskLoss", "build_model",
    "count_parameters", "kind_module", "kind_names", "model_kind", "weighted_loss",
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
