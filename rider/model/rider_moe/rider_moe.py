"""RIDER-MoE as a model kind: what the trainer, the checkpoint loader and the evaluator need to know of the paper's
model (rider.model.kind), built from the modules of this package."""

from __future__ import annotations

from rider.model.kind import INTERACTION_EXPERTS, ModelKind, Signal
from rider.model.rider_moe.config import LossWeights, ModelConfig, paper_config
from rider.model.rider_moe.losses import rider_objective
from rider.model.rider_moe.network import RiderMoE

# What RIDER-MoE's router says about each sample (§3.2), and how the paper says it moves on a corrupted input.
SIGNALS = (
    Signal("entropy", "modality", "rises"),  # H_m, Eq. 24: a corrupted modality's probe grows uncertain
    Signal("relative_reliability", "modality", "falls"),  # Rel_m, Eq. 25
    Signal("importance", "modality", "falls"),  # Imp_m, Eq. 27
    Signal("reliability", "modality", "falls"),  # r_m, Eq. 29
    Signal("mean_reliability", "sample", "falls"),  # r̄, Eq. 29 (≡ 1/M while r sums to 1)
    Signal("consensus", "sample", "falls"),  # cons_score, Eq. 33: the probes disagree
    Signal("expert_prior", "expert"),  # Prior^exp, Eq. 36: which expert gains is Figure 4's question
)

KIND = ModelKind(
    name="rider_moe", config=ModelConfig, loss=LossWeights, build=RiderMoE, objective=rider_objective,
    absent="presence",  # App. C.2: h_m <- MASK_m
    experts=lambda cfg: ("single",) if cfg.single_expert else INTERACTION_EXPERTS, views=True,
    shared_sections=("model", "loss"), signals=SIGNALS,
    paper={dataset: paper_config(dataset)[0] for dataset in ("mosi", "mosei")}, title="RIDER-MoE",
)
