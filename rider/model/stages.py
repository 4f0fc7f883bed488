"""Optimisation stages: an epoch made of several passes over the training batches, each with its own loss and its
own optimiser over its own part of the network.

Most kinds train in one stage: every parameter, the kind's loss (``loss.coefficients()``), one pass per epoch. A
kind whose parts learn on different objectives declares its stages (``ModelKind.stages``). MMIM is the first: its
mutual-information estimators first learn to tighten their lower bound (their own Adam, loss -lld), then the rest of
the network learns the task with the CPC and MI terms, the estimators held fixed. Each stage
- passes over ``fraction`` of an epoch's batches, in its own shuffled order (the authors' data loader reshuffles
  every pass; MMIM's MOSEI estimator pass stops halfway);
- weights the objective's terms with its own ``coefficients`` (the objective computes all its terms every step);
- steps only the parameters of its ``modules`` (top-level submodule names), or, with ``modules=None``, every
  parameter no other stage names, with its own ``lr`` / ``weight_decay`` (``None``: the run's ``train`` settings).
Gradients of every parameter are computed and cleared at every step, and gradient clipping (``train.grad_clip``)
sees all of them, as the authors clip ``model.parameters()`` in every stage; only the stage's optimiser steps.
The objective hears which stage starts (``Objective.start_stage``), before the stage's first batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch.nn as nn


@dataclass(frozen=True)
class TrainingStage:
    name: str
    coefficients: Mapping[str, float]  # the stage's loss: weight per objective term (rider.model.objective)
    modules: tuple[str, ...] | None = None  # top-level submodules it steps; None: every parameter no other names
    lr: float | None = None  # None: train.lr
    weight_decay: float | None = None  # None: train.weight_decay
    fraction: float = 1.0  # of an epoch's batches it passes over

    def __post_init__(self):
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"training stage {self.name}: fraction = {self.fraction} must be in (0, 1]")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if value is not None and (value < 0 or (name == "lr" and value == 0)):
                raise ValueError(f"training stage {self.name}: {name} = {value} must be "
                                 f"{'> 0' if name == 'lr' else '>= 0'}")

    def batches(self, n_batches: int) -> int:
        """How many of an epoch's n batches this stage passes over: the authors' loop breaks at the first batch
        i with i / n >= fraction, so ceil(fraction x n)."""
        return math.ceil(self.fraction * n_batches - 1e-9)


def single_stage(coefficients: Mapping[str, float]) -> tuple[TrainingStage, ...]:
    """The stages of a kind that declares none: one pass, every parameter, the kind's loss."""
    return (TrainingStage("train", dict(coefficients)),)


def stage_parameters(model: nn.Module, stages: tuple[TrainingStage, ...]) -> list[list[nn.Parameter]]:
    """The trainable parameters each stage steps, in ``named_parameters`` order: each parameter in exactly one
    stage. Refuses stages that name a submodule the model lacks, name one twice, or leave a parameter to none."""
    if not stages:
        raise ValueError("training stages: none declared")
    names = [stage.name for stage in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"training stages: a name twice in {names}")
    top = {name for name, _ in model.named_children()}
    claimed: dict[str, str] = {}
    for stage in stages:
        for module in stage.modules or ():
            if module not in top:
                raise ValueError(f"training stage {stage.name}: the model has no submodule {module!r} "
                                 f"(it has {sorted(top)})")
            if module in claimed:
                raise ValueError(f"training stages {claimed[module]} and {stage.name} both step {module!r}")
            claimed[module] = stage.name
    rest = [stage.name for stage in stages if stage.modules is None]
    if len(rest) > 1:
        raise ValueError(f"training stages {rest}: only one stage may take the remaining parameters")
    chosen: dict[str, list[nn.Parameter]] = {stage.name: [] for stage in stages}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        owner = claimed.get(name.split(".")[0], rest[0] if rest else None)
        if owner is None:
            raise ValueError(f"training stages {names}: no stage steps parameter {name}")
        chosen[owner].append(parameter)
    return [chosen[stage.name] for stage in stages]
