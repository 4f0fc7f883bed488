"""Every model kind the pipeline can train, by name (the ``kind`` of a variant in config.yaml).

Adding a model = one file under ``rider/model/`` that defines its network, config, loss and ``KIND``, plus one
entry here. The trainer, the checkpoint loader and the evaluator build from these entries and nothing else.
"""

from __future__ import annotations

from rider.model.config import LossWeights, ModelConfig, paper_config
from rider.model.dmd import KIND as DMD
from rider.model.emoe import KIND as EMOE
from rider.model.experts import EXPERTS
from rider.model.kind import ModelKind, Signal
from rider.model.lmf import KIND as LMF
from rider.model.losses import rider_objective
from rider.model.misa import KIND as MISA
from rider.model.mmim import KIND as MMIM
from rider.model.mma import KIND as MMA
from rider.model.mult import KIND as MULT
from rider.model.objective import TaskLoss, task_objective
from rider.model.rider_moe import RiderMoE
from rider.model.self_mm import KIND as SELF_MM
from rider.model.t_hne import KIND as T_HNE
from rider.model.text_only import TextOnlyModel
from rider.model.tfn import KIND as TFN

# What RIDER-MoE's router says about each sample (§3.2), and how the paper says it moves on a corrupted input.
RIDER_SIGNALS = (
    Signal("entropy", "modality", "rises"),  # H_m, Eq. 24: a corrupted modality's probe grows uncertain
    Signal("relative_reliability", "modality", "falls"),  # Rel_m, Eq. 25
    Signal("importance", "modality", "falls"),  # Imp_m, Eq. 27
    Signal("reliability", "modality", "falls"),  # r_m, Eq. 29
    Signal("mean_reliability", "sample", "falls"),  # r̄, Eq. 29 (≡ 1/M while r sums to 1)
    Signal("consensus", "sample", "falls"),  # cons_score, Eq. 33: the probes disagree
    Signal("expert_prior", "expert"),  # Prior^exp, Eq. 36: which expert gains is Figure 4's question
)
RIDER_MOE = ModelKind(
    name="rider_moe", config=ModelConfig, loss=LossWeights, build=RiderMoE, objective=rider_objective,
    absent="presence",  # App. C.2: h_m <- MASK_m
    experts=lambda cfg: ("single",) if cfg.single_expert else EXPERTS, views=True,
    shared_sections=("model", "loss"), signals=RIDER_SIGNALS,
    paper={dataset: paper_config(dataset)[0] for dataset in ("mosi", "mosei")}, title="RIDER-MoE",
)
TEXT_ONLY = ModelKind(
    name="text_only", config=ModelConfig, loss=TaskLoss, build=TextOnlyModel, objective=task_objective,
    modalities=("text",), shared_sections=("model",), title="Text only",
)

MODEL_KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (RIDER_MOE, TEXT_ONLY, TFN, LMF, MULT, MISA,
                                                                  SELF_MM, MMIM, DMD, EMOE, T_HNE, MMA)}
DEFAULT_KIND = RIDER_MOE.name
