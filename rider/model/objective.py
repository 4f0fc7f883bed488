"""The training objective of any model kind: named, unweighted loss terms, weighted in one place.

``Objective`` turns a forward's output and its ``Batch`` into ``{term: tensor}``; ``weighted_loss`` applies the
kind's coefficients (its loss dataclass's ``coefficients()``). ``TaskLoss`` is the loss of a model trained on the
task alone: the absolute error of Eq. 2, which every baseline here is trained with (MMSA's regression setting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple

import torch

from rider.config import ConfigSection


class Batch(NamedTuple):
    """One training batch: inputs, labels, and the rows of the training split they came from."""

    text: torch.Tensor  # (B, L, Dt)
    audio: torch.Tensor  # (B, L, Da)
    vision: torch.Tensor  # (B, L, Dv)
    lengths: torch.Tensor  # (B,)
    labels: torch.Tensor  # (B,)
    index: torch.Tensor  # (B,) rows of the training split (per-sample memories key on them)
    words: Any = None  # (B, L) str numpy array for a kind that reads words (ModelKind.words), else None


class Objective:
    """The named, unweighted loss terms of a model's output. The trainer weights them (``weighted_loss``) with the
    kind's coefficients, so the weights live in one place and every term is logged per epoch.

    Subclasses that keep state across steps (a label memory) override ``start_epoch``, ``start_stage`` and
    ``after_step``.
    """

    terms: tuple[str, ...] = ()

    def __call__(self, output: Any, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def start_epoch(self, epoch: int) -> None:
        """Called before the first step of every epoch (1-based)."""

    def start_stage(self, name: str) -> None:
        """Called before the first step of each optimisation stage of an epoch (rider.model.stages), after
        ``start_epoch``; a kind with one stage hears of it once per epoch ("train")."""

    def after_step(self, output: Any, batch: Batch) -> None:
        """Called after every optimiser step, with the step's output (its tensors still attached to the graph)."""


class PureObjective(Objective):
    """An objective without state: ``terms_of(output, labels) -> {term: tensor}``."""

    def __init__(self, terms: tuple[str, ...], terms_of: Callable[[Any, torch.Tensor], dict[str, torch.Tensor]]):
        self.terms = terms
        self._terms_of = terms_of

    def __call__(self, output: Any, batch: Batch) -> dict[str, torch.Tensor]:
        return self._terms_of(output, batch.labels)


def weighted_loss(terms: Mapping[str, torch.Tensor],
                  coefficients: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The one place loss weights are applied: sum of weight x term. A term with weight 0 is left out of the sum,
    not multiplied by 0, so a NaN there cannot leak. Returns (total, the unweighted terms)."""
    missing = sorted(set(coefficients) - set(terms))
    if missing:
        raise KeyError(f"loss coefficients for term(s) {missing} that the objective does not compute "
                       f"({sorted(terms)})")
    parts = [coefficients[name] * terms[name] for name in coefficients if coefficients[name]]
    if not parts:
        raise ValueError("every loss coefficient is 0: nothing to train")
    return sum(parts), dict(terms)


def task_loss(prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (prediction - y).abs().mean()  # Eq. 2: mean over the batch


@dataclass(frozen=True)
class TaskLoss(ConfigSection):
    """A model trained on the task loss alone (no coefficients to set)."""

    def coefficients(self) -> dict[str, float]:
        return {"task": 1.0}



def task_objective(config: Any = None, loss: Any = None, train_size: int = 0) -> Objective:
    """The objective of a kind trained on Eq. 2 alone."""
    return PureObjective(("task",), lambda output, y: {"task": task_loss(output.prediction, y)})
