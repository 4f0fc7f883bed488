"""MMIM: its MI terms and entropy memory worked out by hand, the optimisation stages (which parameters move in which
stage), the trainer driving both stages, and the faithfulness count against MMSA 2.2.1."""

import copy
import csv
import dataclasses
import math

import pytest
import torch
import torch.nn as nn
import yaml
from snakemake.utils import update_config

from rider.config import ConfigError, validate_config
from rider.model import MODEL_KINDS, Batch, build_model, count_parameters, weighted_loss
from rider.model.baselines.mmim import (ESTIMATOR_STAGE, MAIN_STAGE, PAPER, MMIMConfig, MMIMLoss, MMIMObjective, MMIMOutput,
                              class_entropy, cpc_nce, gaussian_log_likelihood)
from rider.model.stages import TrainingStage, single_stage, stage_parameters
from rider.train.trainer import RunSpec, optimisation_step, run_config, stage_optimizers, train, TrainConfig

from conftest import REPO

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
TINY = {"audio_hidden": 4, "vision_hidden": 4, "audio_out": 8, "vision_out": 8, "fusion_dim": 8,
        "text_dim": 6, "audio_dim": 5, "vision_dim": 3, "max_len": 5}


def tiny_inputs(B=8, L=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, L, 6, generator=g), torch.randn(B, L, 5, generator=g), torch.randn(B, L, 3, generator=g),
            torch.tensor([5, 3, 1, 4, 2, 5, 5, 3][:B]))


def tiny_batch(B=8):
    text, audio, vision, lengths = tiny_inputs(B)
    # Six labels above any prediction near 0, two below: the L1 gradient of the output bias, the mean of the
    # signs, is not 0 (with four and four it would be).
    labels = torch.tensor([2.0, -1.5, 0.5, 2.5, 1.0, -2.0, 3.0, 2.9][:B])
    return Batch(text, audio, vision, lengths, labels, torch.arange(B))


def test_log_likelihood_and_nce_by_hand():
    # Row 1: μ = (0, 0), logvar = (0, ln 2), y = (1, 2): -1/2 - 4/(2 x 2) = -1.5; row 2: μ = y: 0. Mean -0.75.
    mean = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    log_var = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    y = torch.tensor([[1.0, 2.0], [1.0, 1.0]])
    assert gaussian_log_likelihood(mean, log_var, y).item() == pytest.approx(-0.75)
    # Normalised, the predictions (2, 0), (0, 3) are the targets' unit vectors: scores = I; each row
    # -(1 - log(e + 1)), so the loss is log(1 + e) - 1 whatever the scale of either side.
    target, predicted = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    assert cpc_nce(target, predicted).item() == pytest.approx(math.log(1 + math.e) - 1)
    # Swapped predictions: each row's own score is 0, the other's 1: -(0 - log(1 + e)) = log(1 + e).
    assert cpc_nce(target, predicted.flip(0)).item() == pytest.approx(math.log(1 + math.e))


def test_class_entropy_by_hand():
    # K = 1. Positive {0, 4}: mean 2, variance (4 + 4) / 2 = 4; negative {1, 3, 5}: variance (4 + 0 + 4) / 3 = 8/3;
    # the zero label's 100 belongs to neither. H = (ln 4 + ln 8/3) / 4.
    projected = torch.tensor([[0.0], [1.0], [4.0], [3.0], [100.0], [5.0]])
    labels = torch.tensor([1.0, -1.0, 2.0, -0.5, 0.0, -3.0])
    assert class_entropy(projected, labels).item() == pytest.approx((math.log(4) + math.log(8 / 3)) / 4)
    # A negative class of one sample (singular covariance) contributes 0, and the gradient stays finite.
    projected = torch.tensor([[0.0], [1.0], [4.0]], requires_grad=True)
    h = class_entropy(projected, torch.tensor([1.0, -1.0, 2.0]))
    assert h.item() == pytest.approx(math.log(4) / 4)
    h.backward()
    assert torch.isfinite(projected.grad).all() and projected.grad[1].item() == 0.0
    # K = 2: positives (±2, 0), (0, ±2): Σ = diag(2, 2), log det = ln 4; no negative: 0.
    square = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    assert class_entropy(square, torch.ones(4)).item() == pytest.approx(math.log(4) / 4)


def made_output(projected, prediction):
    """An output whose entropy projections (both pairs) are the given (B, 1) values."""
    B = len(prediction)
    h = torch.eye(B, 3)
    return MMIMOutput(torch.tensor(prediction), h, h, h, h, (h, h, h), (h, h), (torch.zeros(B, 3),) * 2,
                      (torch.tensor(projected)[:, None],) * 2)


def test_the_entropy_memory_follows_the_authors_schedule():
    objective = MMIMObjective(MMIMLoss(memory_batches=1))
    labels = [torch.tensor([1.0, -1.0]), torch.tensor([2.0, -2.0]), torch.tensor([3.0, -3.0])]
    outputs = [made_output([0.0, 1.0], [0.0, 0.0]), made_output([4.0, 3.0], [0.0, 0.0]),
               made_output([2.0, 5.0], [0.0, 0.0])]

    def batch(i):
        return Batch(*tiny_inputs(2), labels[i], torch.arange(2))

    # The estimator pass neither reads nor fills the memory.
    objective.start_stage(ESTIMATOR_STAGE)
    for i in range(3):
        assert objective(outputs[i], batch(i))["entropy"].item() == 0.0
        objective.after_step(outputs[i], batch(i))
    assert objective.memory == []
    # Main pass: batches 0 and 1 have no entropy term (the memory fills at batch 0; the authors' i_batch > 1).
    objective.start_stage(MAIN_STAGE)
    for i in range(2):
        assert objective(outputs[i], batch(i))["entropy"].item() == 0.0
        objective.after_step(outputs[i], batch(i))
    # Batch 2 sees the memory = batch 1 only: positive {4, 2} -> variance 1 -> ln 1 = 0; negative {3, 5} -> 1 -> 0.
    assert objective(outputs[2], batch(2))["entropy"].item() == pytest.approx(0.0, abs=1e-6)
    objective.after_step(outputs[2], batch(2))
    # Had batch 0 still been in it, positive {0, 4, 2} would give variance 8/3: the oldest was replaced.
    assert len(objective.memory) == 1 and objective.memory[0][1].tolist() == [3.0, -3.0]
    # Batch 0's values again, against the memory = batch 2: positive {0, 2} -> variance 1; negative {1, 5} -> 4:
    # per pair (0 + ln 4) / 4, two pairs.
    assert objective(outputs[0], batch(0))["entropy"].item() == pytest.approx(2 * math.log(4) / 4)
    # A new main pass starts with an empty memory.
    objective.start_stage(MAIN_STAGE)
    assert objective.memory == [] and objective.step == 0


def test_the_stage_loss_weights():
    loss = MMIMLoss(alpha=0.2, beta=0.3)
    stages = MODEL_KINDS["mmim"].training_stages(MMIMConfig(**TINY), loss)
    assert [s.name for s in stages] == [ESTIMATOR_STAGE, MAIN_STAGE]
    assert dict(stages[0].coefficients) == {"lld": -1.0}
    assert dict(stages[1].coefficients) == {"task": 1.0, "nce": 0.2, "lld": -0.3, "entropy": -0.3}
    terms = {"task": torch.tensor(1.0), "nce": torch.tensor(2.0), "lld": torch.tensor(-4.0),
             "entropy": torch.tensor(0.5)}
    assert weighted_loss(terms, stages[0].coefficients)[0].item() == pytest.approx(4.0)  # -lld
    assert weighted_loss(terms, stages[1].coefficients)[0].item() == pytest.approx(1 + 0.4 + 1.2 - 0.15)


def test_which_parameters_move_in_which_stage():
    """One step per stage through the trainer's own optimisers and step: the estimator step moves exactly the
    estimators' mean and log-variance networks (their entropy projections get no gradient from lld); the main step
    moves everything else, the estimators held fixed although the main loss reaches them."""
    torch.manual_seed(0)
    cfg = MMIMConfig(**TINY, lr_estimators=1e-2)
    kind = MODEL_KINDS["mmim"]
    model = build_model(cfg, "mmim").train()
    stages = kind.training_stages(cfg, MMIMLoss())
    optimizers = stage_optimizers(model, stages, TrainConfig(lr=1e-2, weight_decay=0.0))
    assert [g["lr"] for g in optimizers[0].param_groups] == [1e-2]
    assert optimizers[0].param_groups[0]["weight_decay"] == cfg.weight_decay_estimators
    objective = kind.objective(cfg, MMIMLoss(), 8)
    x = tiny_batch()

    def moved_by(stage, optimizer):
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        objective.start_stage(stage.name)
        total, _ = weighted_loss(objective(model(x.text, x.audio, x.vision, x.lengths), x), stage.coefficients)
        optimisation_step(model, optimizer, total, grad_clip=1.0)
        return {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}

    estimators = {name for name, _ in model.named_parameters() if name.startswith("mmilb_")}
    projections = {name for name in estimators if ".entropy_projection." in name}
    assert moved_by(stages[0], optimizers[0]) == estimators - projections
    assert moved_by(stages[1], optimizers[1]) == {name for name, _ in model.named_parameters()} - estimators


def test_stage_parameters_partition_the_model_and_name_mistakes():
    model = nn.Sequential()
    model.add_module("a", nn.Linear(2, 2))
    model.add_module("b", nn.Linear(2, 1))
    model.add_module("c", nn.Linear(1, 1))
    model.c.bias.requires_grad_(False)
    first, rest = stage_parameters(model, (TrainingStage("x", {"task": 1.0}, modules=("a",)),
                                           TrainingStage("y", {"task": 1.0})))
    assert first == [model.a.weight, model.a.bias] and rest == [model.b.weight, model.b.bias, model.c.weight]
    (everything,) = stage_parameters(model, single_stage({"task": 1.0}))
    assert len(everything) == 5
    with pytest.raises(ValueError, match="no submodule 'd'"):
        stage_parameters(model, (TrainingStage("x", {}, modules=("d",)),))
    with pytest.raises(ValueError, match="x and y both step 'a'"):
        stage_parameters(model, (TrainingStage("x", {}, modules=("a",)), TrainingStage("y", {}, modules=("a",))))
    with pytest.raises(ValueError, match="only one stage may take"):
        stage_parameters(model, (TrainingStage("x", {}), TrainingStage("y", {})))
    with pytest.raises(ValueError, match="no stage steps parameter b.weight"):
        stage_parameters(model, (TrainingStage("x", {}, modules=("a", "c")),))
    with pytest.raises(ValueError, match="fraction = 0"):
        TrainingStage("x", {}, fraction=0.0)
    # The authors' MOSEI estimator pass breaks at the first batch i with i / n >= 0.5.
    half = TrainingStage("x", {}, fraction=0.5)
    assert (half.batches(41), half.batches(40), TrainingStage("y", {}).batches(41)) == (21, 20, 41)


def test_the_trainer_runs_both_stages(tiny_dataset, tmp_path):
    run = {"kind": "mmim", "model": {k: v for k, v in TINY.items() if not k.endswith(("_dim", "max_len"))},
           "train": {"epochs": 2, "lr": 3e-3, "grad_clip": 1.0, "batch_size": 16}}
    train(RunSpec.from_dict(run), tiny_dataset["cache"], tmp_path, seed=0, threads=1)
    rows = list(csv.DictReader(open(tmp_path / "epochs.csv")))
    for row in rows:
        row = {k: float(v) for k, v in row.items()}
        # The estimator pass's loss is -lld; the main pass's the weighted sum (batch means, averaged alike).
        assert row["train_estimators_total"] == pytest.approx(-row["train_estimators_lld"], rel=1e-5)
        assert row["train_estimators_entropy"] == 0.0
        assert row["train_total"] == pytest.approx(row["train_task"] + 0.1 * row["train_nce"]
                                                   - 0.1 * row["train_lld"] - 0.1 * row["train_entropy"],
                                                   rel=1e-5, abs=1e-6)
    assert float(rows[0]["train_entropy"]) != 0.0  # 48 training rows in batches of 16: the third batch has it


def test_config_and_loss_round_trip_and_name_bad_values():
    cfg = MMIMConfig(estimator_fraction=0.5, bidirectional=False)
    assert MMIMConfig.from_dict(cfg.to_dict()) == cfg
    assert MMIMLoss.from_dict(MMIMLoss(alpha=0.3).to_dict()) == MMIMLoss(alpha=0.3)
    with pytest.raises(ValueError, match="audio_out = 3"):
        MMIMConfig(audio_out=3)
    with pytest.raises(ValueError, match="estimator_fraction = 1.5"):
        MMIMConfig(estimator_fraction=1.5)
    with pytest.raises(ValueError, match="memory_batches = 0"):
        MMIMLoss(memory_batches=0)
    with pytest.raises(ConfigError, match="bidirectional"):
        MMIMConfig.from_dict({"bidirectional": 1})


def test_the_schema_describes_every_field_and_paper_yaml_holds_the_authors_sizes():
    schema = yaml.safe_load(SCHEMA.read_text())["$defs"]
    assert set(schema["mmim_model"]["properties"]) == {f.name for f in dataclasses.fields(MMIMConfig)}
    assert set(schema["mmim_loss"]["properties"]) == {f.name for f in dataclasses.fields(MMIMLoss)}
    with pytest.raises(ConfigError, match="hidden_size"):
        validate_config({"models": {"m": {"kind": "mmim", "model": {"hidden_size": 32}}}}, SCHEMA)
    config = copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text()))
    update_config(config, yaml.safe_load((REPO / "configs/paper.yaml").read_text()))
    config = validate_config(config, SCHEMA)
    for dataset, paper in (("synth_mosi", "mosi"), ("synth_mosei", "mosei"), ("mosi", "mosi"), ("mosei", "mosei")):
        spec = RunSpec.from_dict(run_config(config["datasets"][dataset], {"kind": "mmim"}))
        assert spec.model == PAPER[paper] and spec.loss == MMIMLoss(), dataset
        assert (spec.train.lr, spec.train.weight_decay, spec.train.batch_size, spec.train.grad_clip) == \
               (1e-3, 1e-4, 32, 1.0)


# The authors' counts: MMSA 2.2.1 (PyPI) in /work/scratch/mmsa-venv, AMIO(args) built from
# get_config_regression("mmim", dataset) with MMSA's own feature dims (MOSI [768, 5, 20], MOSEI [768, 74, 35]),
# seq_lens 50, BERT built offline as BertModel(BertConfig()) (bert-base-uncased sizes, 109,482,240 parameters, left
# out): 109,763,913 - 109,482,240 = 281,673 (MOSI) and 109,774,665 - 109,482,240 = 292,425 (MOSEI). By hand, MOSI:
# vision biLSTM 2 x (4 x 16 x (20 + 16) + 2 x 4 x 16) + Linear(32, 16) 528 = 5,392; audio 2 x 1,472 + 528 = 3,472;
# each MMILB(768 -> 16): 2 x (768 x 16 + 16 + 16 x 16 + 16) + Linear(16, 4) 68 = 25,220; CPC 128 -> 768, 16, 16:
# 99,072 + 2,064 + 2,064; fusion 800 -> 128 -> 128 -> 1: 102,528 + 16,512 + 129 = 119,169; sum 281,673.
# Ours has no text parameters (the mean of the frozen word features stands for BERT's [CLS] vector), so with the
# 768-d text features MMSA used, the counts are equal.
# The totals are held against ours in tests/model/test_kinds.py (AUTHORS_COUNTS).
MMSA_DIMS = {"mosi": (768, 5, 20), "mosei": (768, 74, 35)}


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_submodule_counts_are_mmsas(dataset):
    t, a, v = MMSA_DIMS[dataset]
    model = build_model(dataclasses.replace(PAPER[dataset], text_dim=t, audio_dim=a, vision_dim=v), "mmim")
    # MMSA's acoustic_enc / visual_enc / mi_tv alone.
    assert count_parameters(model.audio_encoder) == {"mosi": 3_472, "mosei": 12_304}[dataset]
    assert count_parameters(model.vision_encoder) == {"mosi": 5_392, "mosei": 7_312}[dataset]
    assert count_parameters(model.mmilb_text_vision) == 25_220


def test_registered_with_the_authors_sizes():
    kind = MODEL_KINDS["mmim"]
    assert kind.config is MMIMConfig and kind.loss is MMIMLoss and kind.absent == "zeros"
    assert kind.modalities == ("text", "audio", "vision") and not kind.routed
    assert kind.paper["mosei"].estimator_fraction == 0.5 and kind.paper["mosi"].estimator_fraction == 1.0
    assert isinstance(kind.objective(kind.paper["mosi"], MMIMLoss(), 10), MMIMObjective)
