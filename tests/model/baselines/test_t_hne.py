"""t-HNE (rider/model/baselines/t_hne.py): the InfoNCE terms on hand-worked cases, the text injection, padding, and the
parameter count of our decided sizes (no authors' code exists to count against)."""

import dataclasses
import math

import pytest
import torch
import yaml

from rider.config import ConfigError, validate_config
from rider.model import MODEL_KINDS, build_model, count_parameters
from rider.model.objective import Batch, weighted_loss
from rider.model.baselines.t_hne import PAPER, THNEConfig, THNELoss, critic_scores, info_nce, masked_mean, thne_objective

from conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

TINY = dict(d_model=8, heads=2, text_layers=1, text_dim=7, audio_dim=5, vision_dim=3, max_len=6, embed_dropout=0.0,
            attn_dropout=0.0, relu_dropout=0.0, res_dropout=0.0, output_dropout=0.0)


def tiny_inputs(B=4, L=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, L, 7, generator=g), torch.randn(B, L, 5, generator=g), torch.randn(B, L, 3, generator=g),
            torch.tensor([L, 3, 1, 0][:B]))


def test_info_nce_and_the_critic_on_hand_worked_cases():
    # Scores I (B = 2): each row's positive has e^1 against e^0: -log(e / (e + 1)) = log(1 + e^-1).
    assert info_nce(torch.eye(2)).item() == pytest.approx(math.log(1 + math.exp(-1)))
    # Cosine / τ: (3, 0) and (0, 2) against (1, 0) and (0, 5) are orthonormal after normalising: I / 0.5 = 2 I.
    scores = critic_scores(torch.tensor([[3.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 0.0], [0.0, 5.0]]), 0.5)
    torch.testing.assert_close(scores, 2 * torch.eye(2))
    assert info_nce(scores).item() == pytest.approx(math.log(1 + math.exp(-2)))
    # Swapped partners: the positives score 0 and the negatives 2, a larger loss log(1 + e^2).
    assert info_nce(scores.flip(1)).item() == pytest.approx(math.log(1 + math.exp(2)))


def test_masked_mean_on_a_hand_worked_case():
    x = torch.tensor([[[1.0], [2.0], [100.0]], [[7.0], [7.0], [7.0]]])
    words = torch.tensor([[[True], [True], [False]], [[False], [False], [False]]])
    torch.testing.assert_close(masked_mean(x, words), torch.tensor([[1.5], [0.0]]))  # (1 + 2) / 2; empty -> 0


def test_the_objective_names_its_terms_and_the_loss_weights_them():
    model = build_model(THNEConfig(**TINY), "t_hne")
    text, audio, vision, lengths = tiny_inputs()
    labels = torch.tensor([2.5, -2.0, 3.0, 1.5])
    output = model(text, audio, vision, lengths)
    terms = thne_objective(model.cfg, THNELoss())(output, Batch(text, audio, vision, lengths, labels, torch.arange(4)))
    assert set(terms) == {"task", "mi", "recovery"}
    assert terms["mi"].item() == pytest.approx(((info_nce(output.mi_scores[0]) + info_nce(output.mi_scores[1])) / 2)
                                               .item())
    total, _ = weighted_loss(terms, THNELoss(mi_weight=0.5, recovery_weight=2.0).coefficients())
    assert total.item() == pytest.approx((terms["task"] + 0.5 * terms["mi"] + 2.0 * terms["recovery"]).item())
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_text_reaches_audio_and_vision_through_the_injection():
    """Stage 1: the audio and vision utterance vectors change with the text; the text vector does not change
    with the audio."""
    model = build_model(THNEConfig(**TINY), "t_hne").eval()
    text, audio, vision, lengths = tiny_inputs()
    clean = model(text, audio, vision, lengths).utterance  # (M, B, D)
    other_text = model(text + 1.0, audio, vision, lengths).utterance
    assert not torch.allclose(other_text[1, 0], clean[1, 0]) and not torch.allclose(other_text[2, 0], clean[2, 0])
    torch.testing.assert_close(model(text, audio * 2.0, vision, lengths).utterance[0], clean[0])


def test_config_and_loss_round_trip_and_name_bad_values():
    cfg = THNEConfig(d_model=64, cross_layers=2)
    assert THNEConfig.from_dict(cfg.to_dict()) == cfg
    assert THNELoss.from_dict(THNELoss(mi_weight=0.3).to_dict()) == THNELoss(mi_weight=0.3)
    with pytest.raises(ValueError, match="heads = 3"):
        THNEConfig(heads=3)
    with pytest.raises(ValueError, match="temperature = 0"):
        THNEConfig(temperature=0)
    with pytest.raises(ValueError, match="text_layers = 0"):
        THNEConfig(text_layers=0)
    with pytest.raises(ValueError, match="recovery_weight = -1"):
        THNELoss(recovery_weight=-1)
    with pytest.raises(ValueError, match="unknown key"):
        THNELoss.from_dict({"cl_weight": 1.0})


def test_parameter_count_of_the_decided_sizes():
    """No authors' code exists: the count records ours at the sizes decided here (d = 128, 4 heads, 2 text
    layers, 1 crossmodal layer; GloVe 300, audio 74, vision 35), worked out by hand."""
    with torch.device("meta"):
        model = build_model(PAPER["mosi"], "t_hne")
    d = 128
    layer = 12 * d * d + 13 * d  # MulT layer: 2 LayerNorms (4d), in_proj (3d^2 + 3d), out (d^2 + d), fc1/fc2 (8d^2 + 5d)
    projections = (300 + 74 + 35) * d + 3 * d  # 52,736
    text_encoder = 2 * layer + 2 * d  # + the final LayerNorm: 396,800
    injections = 2 * (layer + 2 * d)  # 397,056
    critics = 4 * (d * d + d)  # 66,048
    fusion_and_head = (3 * d * d + d) + (d * d + d) + (d + 1)  # 65,921
    assert count_parameters(model) == projections + text_encoder + injections + critics + fusion_and_head == 978_561
    assert PAPER["mosei"] == PAPER["mosi"]  # no published sizes for either dataset


def test_registered_with_its_own_denoising_and_zeroed_absence():
    kind = MODEL_KINDS["t_hne"]
    assert kind.config is THNEConfig and kind.loss is THNELoss and kind.absent == "zeros"
    assert not kind.routed and kind.title == "t-HNE" and "abstract" in kind.note


def test_the_schema_describes_every_field_and_checks_a_t_hne_variant():
    schema = yaml.safe_load(SCHEMA.read_text())["$defs"]
    assert set(schema["t_hne_model"]["properties"]) == {f.name for f in dataclasses.fields(THNEConfig)}
    assert set(schema["t_hne_loss"]["properties"]) == {f.name for f in dataclasses.fields(THNELoss)}
    config = {"datasets": {"toy": {"source": "synthetic", "baselines": {"t_hne": {
        "model": {"d_model": 32}, "loss": {"mi_weight": 0.2}, "train": {"lr": 1e-3}}}}},
        "models": {"thne": {"kind": "t_hne", "model": {"cross_layers": 2}}}}
    validate_config(config, SCHEMA)
    bad = {"models": {"thne": {"kind": "t_hne", "model": {"router_hidden": 32}}}}
    with pytest.raises(ConfigError, match="router_hidden"):
        validate_config(bad, SCHEMA)
