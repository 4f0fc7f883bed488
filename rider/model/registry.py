"""Every model kind the pipeline can train, by name (the ``kind`` of a variant in config.yaml).

Adding a model = one file under ``rider/model/`` that defines its network, config, loss and ``KIND``, plus one
entry here. The trainer, the checkpoint loader and the evaluator build from these entries and nothing else.
"""

from __future__ import annotations

from rider.model.config import LossWeights, ModelConfig, paper_config
from rider.model.dmd import KIND as DMD
from rider.model.experts import EXPERTS
from rider.model.kind import ModelKind
from rider.model.lmf import KIND as LMF
from rider.model.losses import rider_objective
from rider.model.misa import KIND as MISA
from rider.model.mmim import KIND as MMIM
from rider.model.mult import KIND as MULT
from rider.model.objective import TaskLoss, task_objective
from rider.model.rider_moe import RiderMoE
from rider.model.self_mm import KIND as SELF_MM
from rider.model.text_only import TextOnlyModel
from rider.model.tfn import KIND as TFN

RIDER_MOE = ModelKind(
    name="rider_moe", config=ModelConfig, loss=LossWeights, build=RiderMoE, objective=rider_objective,
    absent="presence",  # App. C.2: h_m <- MASK_m
    experts=lambda cfg: ("single",) if cfg.single_expert else EXPERTS, views=True,
    shared_sections=("model", "loss"),
    paper={dataset: paper_config(dataset)[0] for dataset in ("mosi", "mosei")}, title="RIDER-MoE",
)
TEXT_ONLY = ModelKind(
    name="text_only", config=ModelConfig, loss=TaskLoss, build=TextOnlyModel, objective=task_objective,
    modalities=("text",), shared_sections=("model",), title="Text only",
)

MODEL_KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (RIDER_MOE, TEXT_ONLY, TFN, LMF, MULT, MISA,
                                                                  SELF_MM, MMIM, DMD)}
DEFAULT_KIND = RIDER_MOE.name
