"""What the pipeline needs to know about a kind of model: the one interface every model, baseline or not, goes
through (one trainer, one evaluator, one stress plan).

A kind declares
- ``config``: its frozen hyper-parameter dataclass (``from_dict``/``to_dict``; fields ``text_dim``, ``audio_dim``,
  ``vision_dim`` and ``max_len``, which the trainer sets from the cache);
- ``loss``: its frozen loss-coefficient dataclass, whose ``coefficients()`` maps each term to its weight;
- ``build``: config -> a fresh ``nn.Module`` whose ``forward(text, audio, vision, lengths, **extra)`` returns a
  NamedTuple with at least ``prediction`` (B,);
- ``objective``: (config, loss, training-split size) -> an ``Objective``, the named, unweighted loss terms of an
  output (stateful where a model learns from a per-sample memory, as Self-MM does);
- ``modalities``: the inputs it reads, and ``absent``: how it receives an absent modality (App. C.2):
  ``"presence"`` — the model is called with ``presence=(B, 3) bool`` and substitutes its own representation
  (RIDER-MoE's MASK_m, or a model's own missing-modality mechanism); ``"zeros"`` — the evaluator zeroes the
  absent modality's features and the model never sees the mask (the baselines, as App. C.2 says);
- ``experts``: config -> the names of the experts its ``routing`` (B, E) and ``expert_outputs`` (V, B, E) cover,
  or ``None`` for a model without routing; ``views``: it computes RIDER-MoE's masked views when called with
  ``with_views=True`` (``VIEWS``), so the DIR checks of App. C.4 apply to its ``INTERACTION_EXPERTS``;
- ``shared_sections``: the parts of a dataset's config section it takes (RIDER-MoE: ``model`` and ``loss``; the
  text-only model: ``model``); every other kind reads ``baselines.<name>`` of the dataset;
- ``words``: config -> whether the model reads the segments' words (a model that tokenises them itself, such as
  MMA inside a language model); the trainer and evaluator then read ``/<split>/words`` from the cache (B, L strings,
  '' for padding) and pass each batch's rows as the call option ``words``; a word the stress plan zeroed arrives as
  ``rider.data.cache.MASKED_WORD``;
- ``signals``: the per-sample reliability signals its output carries (``Signal``: the output field, its axis, and
  which way the paper says it moves on a corrupted input); the evaluator averages them and measures how well they
  separate the inputs the stress plan corrupted (rider.chain). RIDER-MoE: H_m, Rel_m, Imp_m, r_m, r̄, cons_score
  and Prior^exp; a kind without reliability signals: none;
- ``paper``: its configuration at the published sizes, by paper dataset (Table 6, the faithfulness counts);
  ``title`` and ``note``: its name and what a table's reader must know about it here (the evaluation records both).

Three general training hooks serve models that need more than one loss and one learning rate: a stateful
``Objective`` (``start_epoch``, ``start_stage``, ``after_step``, with the training rows of each batch in
``Batch.index``); a model method ``parameter_groups(lr, weight_decay) -> list[dict]`` for parameter groups with
their own rates; and ``stages``: (config, loss) -> the optimisation stages of an epoch
(rider.model.stages.TrainingStage: several passes, each with its own loss coefficients, its own parameters and its
own optimiser, as MMIM trains its mutual-information estimators apart from the rest). A kind without ``stages``
trains in one stage on ``loss.coefficients()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn as nn

from rider.model.objective import Objective
from rider.model.stages import TrainingStage, single_stage

ABSENT_MODES = ("presence", "zeros")
MODALITY_NAMES = ("text", "audio", "vision")
SIGNAL_AXES = ("sample", "modality", "expert")  # the axis beyond the batch: (B,), (B, M) or (B, E)
SIGNAL_MOVES = ("falls", "rises", None)  # on a corrupted input, as the paper says; None: no direction claimed
# A kind with masked views (``views``) computes its experts on these four views, in this order (§3.3: the full view,
# then each modality replaced by MASK_m), and its experts are the interaction experts of §3.1, in this order: the
# DIR checks of App. C.4 read its outputs by these names.
VIEWS = ("0", "-T", "-A", "-V")
INTERACTION_EXPERTS = ("U_T", "U_A", "U_V", "R", "S")


@dataclass(frozen=True)
class Signal:
    """One per-sample reliability signal of a kind's output.

    ``field``: the output's field, a tensor (B,), (B, M) over the kind's ``modalities`` in their order, or (B, E)
    over its experts, as ``axis`` says. ``corrupted``: how the paper says the signal moves when an input is
    corrupted ("falls": reliability, consensus; "rises": entropy); a signal without a direction (the expert prior,
    whose shift between experts is what the routing figure shows) is averaged but not scored as a separator.
    """

    field: str
    axis: str
    corrupted: str | None = None

    def __post_init__(self):
        if self.axis not in SIGNAL_AXES:
            raise ValueError(f"signal {self.field}: axis = {self.axis!r}, expected one of {SIGNAL_AXES}")
        if self.corrupted not in SIGNAL_MOVES:
            raise ValueError(f"signal {self.field}: corrupted = {self.corrupted!r}, expected one of {SIGNAL_MOVES}")


@dataclass(frozen=True)
class ModelKind:
    name: str
    config: type
    loss: type
    build: Callable[[Any], nn.Module]
    objective: Callable[[Any, Any, int], Objective]
    modalities: tuple[str, ...] = MODALITY_NAMES
    absent: str = "zeros"
    experts: Callable[[Any], tuple[str, ...]] | None = None
    views: bool = False
    shared_sections: tuple[str, ...] = ()
    words: Callable[[Any], bool] | None = None  # config -> reads the segments' words (call option ``words``)
    signals: tuple[Signal, ...] = ()  # its per-sample reliability signals (none for a kind without them)
    # The authors' published sizes by paper dataset ("mosi", "mosei"): Table 6's counts and the faithfulness check.
    paper: Mapping[str, Any] = field(default_factory=dict)
    # (config, loss) -> the optimisation stages of an epoch; None: one stage on loss.coefficients().
    stages: Callable[[Any, Any], tuple[TrainingStage, ...]] | None = None
    title: str = ""  # the model's name as its paper writes it (tables)
    note: str = ""  # what a reader of the tables must know about it here (a deviation from the original)

    def __post_init__(self):
        if self.absent not in ABSENT_MODES:
            raise ValueError(f"model kind {self.name}: absent = {self.absent!r}, expected one of {ABSENT_MODES}")
        unknown = sorted(set(self.modalities) - set(MODALITY_NAMES))
        if unknown or not self.modalities:
            raise ValueError(f"model kind {self.name}: modalities {self.modalities}; expected some of {MODALITY_NAMES}")
        if any(signal.axis == "expert" for signal in self.signals) and self.experts is None:
            raise ValueError(f"model kind {self.name}: a signal over experts, but the kind declares no experts")

    @property
    def routed(self) -> bool:
        return self.experts is not None

    def expert_names(self, cfg: Any) -> tuple[str, ...]:
        return () if self.experts is None else tuple(self.experts(cfg))

    def training_stages(self, cfg: Any, loss: Any) -> tuple[TrainingStage, ...]:
        """The optimisation stages of one epoch for this configuration and loss."""
        return single_stage(loss.coefficients()) if self.stages is None else tuple(self.stages(cfg, loss))

    def reads_words(self, cfg: Any) -> bool:
        return self.words is not None and bool(self.words(cfg))

    def call_options(self, presence: torch.Tensor | None, with_views: bool,
                     words: np.ndarray | None = None) -> dict[str, Any]:
        """The keyword arguments a forward call of this kind takes: the presence mask where the model handles
        absence itself, masked views where it computes them, the batch's words (B, L) where it reads them (the
        caller passes ``words`` only when ``reads_words`` says so)."""
        options: dict[str, Any] = {}
        if self.absent == "presence" and presence is not None:
            options["presence"] = presence
        if self.views:
            options["with_views"] = with_views
        if words is not None:
            options["words"] = words
        return options

    def stressors(self, available: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, str]]:
        """Which of the plan's stressors measure something about this kind, and why the others do not: noise
        always; conflict (audio/vision swapped, text kept) only for a kind that reads audio or vision beside the
        text; missingness only for a kind that reads more than one modality (with one, dropping it leaves nothing
        to predict from, and dropping the others changes nothing)."""
        reads = set(self.modalities)
        skipped = {}
        if "conflict" in available and not ({"audio", "vision"} & reads and "text" in reads):
            skipped["conflict"] = (f"{self.name} reads {', '.join(self.modalities)}: conflict swaps audio and vision "
                                   "and keeps the text, so it changes nothing this model can compare")
        if "missing" in available and len(reads) < 2:
            skipped["missing"] = (f"{self.name} reads only {self.modalities[0]}: dropping it leaves nothing to "
                                  "predict from, dropping the others changes nothing")
        return tuple(s for s in available if s not in skipped), skipped


def check_input_widths(model: str, cfg: Any, **inputs: torch.Tensor) -> None:
    """Refuse inputs whose feature width is not the one ``cfg`` was built for (``<name>_dim``), naming both: a wrong
    width would otherwise surface as a shape error deep inside the network."""
    for name, x in inputs.items():
        expected = getattr(cfg, f"{name}_dim")
        if x.shape[-1] != expected:
            raise ValueError(f"{model}: {name} has {x.shape[-1]} features, the config expects {expected}")
