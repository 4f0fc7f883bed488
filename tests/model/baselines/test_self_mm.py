"""Self-MM (rider/model/baselines/self_mm.py): the unimodal label generation and its per-sample memory on a hand-worked
case, the weighted loss, the parameter groups, padding, and the faithfulness count against MMSA 2.2.1."""

import csv
import dataclasses
import math

import pytest
import torch
import yaml

from rider.config import ConfigError, validate_config
from rider.model import MODEL_KINDS, build_model, count_parameters
from rider.model.objective import Batch, weighted_loss
from rider.model.baselines.self_mm import (
    PAPER, SelfMMConfig, SelfMMLoss, SelfMMObjective, SelfMMOutput, class_centres, generated_label,
    momentum_update, relative_distance,
)
from rider.train.trainer import RunSpec, train

from conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TINY = dict(audio_lstm_hidden=4, vision_lstm_hidden=4, audio_out=3, vision_out=3, post_fusion_dim=8,
            post_text_dim=4, post_audio_dim=4, post_vision_dim=4, text_dim=7, audio_dim=5, vision_dim=3, max_len=6,
            post_text_dropout=0.0, post_audio_dropout=0.0)


def tiny_inputs(B=4, L=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, L, 7, generator=g), torch.randn(B, L, 5, generator=g), torch.randn(B, L, 3, generator=g),
            torch.tensor([L, 3, 1, 0][:B]))


def made_output(fusion, text, audio, vision, prediction=None, unimodal=None):
    """A forward's output with chosen one-dimensional representations (B,) per head."""
    columns = [torch.tensor(f, dtype=torch.float32)[:, None] for f in (fusion, text, audio, vision)]
    B = columns[0].shape[0]
    return SelfMMOutput(torch.zeros(B) if prediction is None else prediction,
                        torch.zeros(3, B) if unimodal is None else unimodal, *columns)


def made_batch(index, labels):
    B = len(index)
    return Batch(torch.zeros(B, 1, 1), torch.zeros(B, 1, 1), torch.zeros(B, 1, 1), torch.ones(B, dtype=torch.long),
                 torch.tensor(labels, dtype=torch.float32), torch.tensor(index))


def test_centres_distances_labels_and_momentum_by_hand():
    # Centres: labels 1, 0, -1 -> positive {2}, negative {-2}; with zero counted as positive: mean(2, 100) = 51.
    features, labels = torch.tensor([[2.0], [100.0], [-2.0]]), torch.tensor([1.0, 0.0, -1.0])
    seen = torch.ones(3, dtype=torch.bool)
    torch.testing.assert_close(class_centres(features, labels, seen, True), torch.tensor([[2.0], [-2.0]]))
    torch.testing.assert_close(class_centres(features, labels, seen, False), torch.tensor([[51.0], [-2.0]]))
    # A class with no stored member: a zero centre.
    unseen_first = torch.tensor([False, True, True])
    torch.testing.assert_close(class_centres(features, labels, unseen_first, True), torch.tensor([[0.0], [-2.0]]))
    # α = (D_n - D_p) / D_p with centres +2 / -2: at 3, (5 - 1) / 1 = 4; at 1, (3 - 1) / 1 = 2; at -2, (0 - 4) / 4 = -1.
    centres = torch.tensor([[2.0], [-2.0]])
    torch.testing.assert_close(relative_distance(torch.tensor([[3.0], [1.0], [-2.0]]), centres),
                               torch.tensor([4.0, 2.0, -1.0]))
    # y_s = (α_s / α_m) y_m / 2 + (y_m + α_s - α_m) / 2: y_m = 2, α_m = 4, α_s = 2 -> 0.5 + 0 = 0.5; α_s = -1 ->
    # -0.25 - 1.5 = -1.75; α_s = 40 -> 10 + 19 = 29, clipped to H = 3.
    torch.testing.assert_close(generated_label(torch.full((3,), 2.0), torch.full((3,), 4.0),
                                               torch.tensor([2.0, -1.0, 40.0]), 3.0),
                               torch.tensor([0.5, -1.75, 3.0]))
    # Momentum at epoch 2: 1/3 old + 2/3 new; at epoch 3: 1/2 and 1/2.
    assert momentum_update(torch.tensor(2.0), torch.tensor(0.5), 2).item() == pytest.approx(1.0)
    assert momentum_update(torch.tensor(1.0), torch.tensor(3.0), 3).item() == pytest.approx(2.0)


def test_the_label_memory_through_the_trainer_hooks_by_hand():
    """Four training rows, one-dimensional representations; epoch 1 stores, epoch 2 moves the labels of row 0."""
    objective = SelfMMObjective(4, SelfMMLoss())
    y = [2.0, 1.0, -1.0, -2.0]
    objective.start_epoch(1)
    # Epoch 1 in one batch, in shuffled order: every centre is +2 / -2.
    order = [2, 0, 3, 1]
    epoch1 = {"fusion": [3.0, 1.0, -1.0, -3.0], "unimodal": [2.0, 2.0, -2.0, -2.0]}
    output = made_output(*([[epoch1["fusion"][i] for i in order]] + [[epoch1["unimodal"][i] for i in order]] * 3))
    batch = made_batch(order, [y[i] for i in order])
    terms = objective(output, batch)
    assert [terms[m].item() for m in ("text", "audio", "vision")] == [0.0, 0.0, 0.0]  # y_s = y_m: weight 0
    objective.after_step(output, batch)
    torch.testing.assert_close(objective.labels, torch.tensor([y] * 4))  # epoch 1 moves no label
    for head in ("fusion", "text", "audio", "vision"):
        torch.testing.assert_close(objective.centres[head], torch.tensor([[2.0], [-2.0]]))

    # Epoch 2, a batch of row 0 (y_m = 2): F_m = 3 -> α_m = 4 (as above).
    objective.start_epoch(2)
    objective.after_step(made_output([3.0], [1.0], [2.0], [-2.0]), made_batch([0], [2.0]))
    # text: F = 1 -> α = 2 -> new 0.5 -> 1/3 x 2 + 2/3 x 0.5 = 1.
    # audio: F = 2 on the positive centre -> D_p = 0, α = 4 / 1e-8 -> clipped to 3 -> 1/3 x 2 + 2/3 x 3 = 8/3.
    # vision: F = -2 on the negative centre -> α = -1 -> new -1.75 -> 2/3 - 7/6 = -1/2.
    expected = torch.tensor([y, [1.0, *y[1:]], [8 / 3, *y[1:]], [-0.5, *y[1:]]])
    torch.testing.assert_close(objective.labels, expected)
    # Centres from the stored representations and the new labels: text {1, 2} / {-2, -2}; vision {2} / {-2, -2, -2}.
    torch.testing.assert_close(objective.centres["text"], torch.tensor([[1.5], [-2.0]]))
    torch.testing.assert_close(objective.centres["vision"], torch.tensor([[2.0], [-2.0]]))
    torch.testing.assert_close(objective.centres["fusion"], torch.tensor([[2.0], [-2.0]]))

    # The loss of rows 0 and 1 with every prediction 0: task (2 + 1) / 2; row 1's y_s = y_m has weight 0; row 0
    # weighs |y_s - 0| by tanh(|y_s - 2|).
    terms = objective(made_output([0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]), made_batch([0, 1], [2.0, 1.0]))
    assert terms["task"].item() == pytest.approx(1.5)
    assert terms["text"].item() == pytest.approx(math.tanh(1.0) * 1.0 / 2)
    assert terms["audio"].item() == pytest.approx(math.tanh(2 / 3) * (8 / 3) / 2, rel=1e-6)
    assert terms["vision"].item() == pytest.approx(math.tanh(2.5) * 0.5 / 2)
    total, _ = weighted_loss(terms, SelfMMLoss(audio_weight=0.5).coefficients())
    assert total.item() == pytest.approx(1.5 + (terms["text"] + 0.5 * terms["audio"] + terms["vision"]).item())


def test_the_trainer_drives_the_memory(tiny_dataset, tmp_path):
    """Through the real trainer: no unimodal term in epoch 1 (every y_s = y_m), then labels that move."""
    run = {"kind": "self_mm", "model": TINY, "train": {"epochs": 3, "lr": 3e-3}}  # input sizes: the cache's
    train(RunSpec.from_dict(run), tiny_dataset["cache"], tmp_path, seed=0, threads=1)
    rows = list(csv.DictReader(open(tmp_path / "epochs.csv")))
    assert [float(rows[0][f"train_{m}"]) for m in ("text", "audio", "vision")] == [0.0, 0.0, 0.0]
    assert all(float(rows[2][f"train_{m}"]) > 0 for m in ("text", "audio", "vision"))


def test_parameter_groups_cover_every_parameter_once_at_the_configured_rates():
    cfg = SelfMMConfig(**TINY, lr_audio=0.1, lr_vision=0.2, weight_decay_audio=0.3, weight_decay_vision=0.4)
    model = build_model(cfg, "self_mm")
    groups = model.parameter_groups(0.01, 0.05)
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.1, 0.3), (0.2, 0.4), (0.01, 0.05)]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.audio_subnet.parameters()}
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.vision_subnet.parameters()}
    torch.optim.AdamW(groups, lr=0.01, weight_decay=0.05)  # what the trainer builds from them


def test_three_unimodal_predictions_beside_the_fused_one():
    out = build_model(SelfMMConfig(**TINY), "self_mm").eval()(*tiny_inputs())
    assert out.prediction.shape == (4,) and out.unimodal.shape == (3, 4)


def test_config_and_loss_round_trip_and_name_bad_values():
    cfg = SelfMMConfig(lr_vision=1e-4)
    assert SelfMMConfig.from_dict(cfg.to_dict()) == cfg
    assert SelfMMLoss.from_dict(SelfMMLoss(exclude_zero=False).to_dict()) == SelfMMLoss(exclude_zero=False)
    with pytest.raises(ValueError, match="post_text_dim = 0"):
        SelfMMConfig(post_text_dim=0)
    with pytest.raises(ValueError, match="lr_audio = 0"):
        SelfMMConfig(lr_audio=0.0)
    with pytest.raises(ValueError, match="label_bound = -1"):
        SelfMMLoss(label_bound=-1.0)
    with pytest.raises(ConfigError, match="exclude_zero"):
        SelfMMLoss.from_dict({"exclude_zero": 1})


def test_the_schema_describes_every_field_and_checks_a_self_mm_variant():
    schema = yaml.safe_load(SCHEMA.read_text())["$defs"]
    assert set(schema["self_mm_model"]["properties"]) == {f.name for f in dataclasses.fields(SelfMMConfig)}
    assert set(schema["self_mm_loss"]["properties"]) == {f.name for f in dataclasses.fields(SelfMMLoss)}
    config = {"datasets": {"toy": {"source": "synthetic", "baselines": {"self_mm": {
        "model": {"post_fusion_dim": 32, "lr_audio": 1e-3}, "loss": {"exclude_zero": False},
        "train": {"lr": 1e-3}}}}}, "models": {"self_mm": {"kind": "self_mm", "loss": {"label_bound": 2.0}}}}
    validate_config(config, SCHEMA)
    with pytest.raises(ConfigError, match="hidden_size"):
        validate_config({"models": {"s": {"kind": "self_mm", "model": {"hidden_size": 32}}}}, SCHEMA)


# The authors' counts: MMSA 2.2.1 (PyPI) in a scratch venv, AMIO(args) built from get_config_regression("self_mm",
# dataset) with MMSA's own feature dims (MOSI [768, 5, 20], MOSEI [768, 74, 35]), seq_lens 50; BERT built offline
# as BertModel(BertConfig()) (bert-base-uncased sizes); trainable parameters counted, the fine-tuned BERT text
# encoder (109,482,240) left out (/work/scratch/baselines/count_params.py -> counts.json: params_without_text_encoder).
# Ours has no text parameters (the mean of the frozen word features stands for BERT's [CLS] vector), so with the
# 768-d text features MMSA used, the two counts are equal.
# Their totals, 159,332 (MOSI) and 165,668 (MOSEI), are held against ours in tests/model/test_kinds.py.
MMSA_DIMS = {"mosi": (768, 5, 20), "mosei": (768, 74, 35)}


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_submodule_counts_are_mmsas(dataset):
    t, a, v = MMSA_DIMS[dataset]
    model = build_model(dataclasses.replace(PAPER[dataset], text_dim=t, audio_dim=a, vision_dim=v), "self_mm")
    # MMSA's audio_model / video_model alone (counts.json by_submodule).
    assert count_parameters(model.audio_subnet) == {"mosi": 1_744, "mosei": 6_160}[dataset]
    assert count_parameters(model.vision_subnet) == {"mosi": 7_968, "mosei": 9_888}[dataset]


def test_registered_with_the_authors_sizes():
    kind = MODEL_KINDS["self_mm"]
    assert kind.config is SelfMMConfig and kind.loss is SelfMMLoss and kind.absent == "zeros"
    assert kind.modalities == ("text", "audio", "vision") and not kind.routed
    assert kind.paper["mosei"].lr_vision == 1e-4 and kind.paper["mosi"].lr_vision == 5e-3
    assert isinstance(kind.objective(kind.paper["mosi"], SelfMMLoss(), 10), SelfMMObjective)
