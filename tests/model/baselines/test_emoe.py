"""EMOE (rider/model/baselines/emoe.py): the router and the four auxiliary losses on hand-worked cases, padding, the routing
the evaluator reads, and the faithfulness count against the authors' implementation."""

import dataclasses
import math

import pytest
import torch
import yaml

from rider.config import ConfigError, validate_config
from rider.model import MODEL_KINDS, build_model, count_parameters
from rider.model.baselines.emoe import (
    PAPER, EMOEConfig, EMOELoss, Router, emoe_objective, entropy_balance, importance_loss, importance_target,
    unimodal_distillation, unimodal_loss,
)
from rider.model.objective import Batch, weighted_loss

from conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

TINY = dict(d_model=8, heads=2, layers=1, router_hidden=6, kernel_text=3, kernel_audio=1, kernel_vision=2,
            text_dim=7, audio_dim=5, vision_dim=3, max_len=6, text_dropout=0.0, embed_dropout=0.0,
            attn_dropout=0.0, attn_dropout_audio=0.0, output_dropout=0.0)


def tiny_inputs(B=4, L=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, L, 7, generator=g), torch.randn(B, L, 5, generator=g), torch.randn(B, L, 3, generator=g),
            torch.tensor([L, 3, 1, 0][:B]))


def test_the_router_on_a_hand_worked_case():
    # x = (3, 4): W1 = I -> (3, 4), unit length (0.6, 0.8), ReLU keeps it; W2 = I -> (0.6, 0.8) / t = 0.5 -> (1.2, 1.6);
    # softmax: (1, e^0.4) / (1 + e^0.4).
    router = Router(width=2, hidden=2, experts=2, temperature=0.5)
    with torch.no_grad():
        for layer in (router.l1, router.l2):
            layer.weight.copy_(torch.eye(2))
            layer.bias.zero_()
    w = router(torch.tensor([[3.0, 4.0], [30.0, 40.0]]))  # the scale of the input does not matter (normalised)
    expected = torch.tensor([1.0, math.exp(0.4)]) / (1.0 + math.exp(0.4))
    torch.testing.assert_close(w, torch.stack([expected, expected]))


def test_entropy_balance_on_hand_worked_cases():
    # Uniform weights: 3 x 3 x (1/3) ln(1/3) = -3 ln 3. Half-half-zero: 3 x 2 x 0.5 ln 0.5 = -3 ln 2 (the zero is
    # clamped to 1e-9: 3e-9 ln 1e-9 ≈ -6e-8, below the tolerance). The batch mean of the two.
    w = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    assert entropy_balance(w).item() == pytest.approx((-3 * math.log(3) - 3 * math.log(2)) / 2, abs=1e-6)
    # The more balanced, the lower: minimising it spreads the weights.
    assert entropy_balance(w[:1]) < entropy_balance(w[1:])


def test_importance_target_and_loss_on_a_hand_worked_case():
    # ŷ = (1, 2, 1.3), y = 1: squared errors (0, 1, 0.09); 1 / (e + 0.1) = (10, 1/1.1, 1/0.19), normalised.
    outputs = torch.tensor([[[1.0, 2.0, 1.3]]])  # (1, B=1, E=3)
    inverse = [10.0, 1 / 1.1, 1 / 0.19]
    expected = [v / sum(inverse) for v in inverse]  # ≈ (0.6183, 0.0562, 0.3254)
    target = importance_target(outputs, torch.tensor([1.0]), 0.1)
    torch.testing.assert_close(target, torch.tensor([expected]))
    # L_imp against uniform weights: the mean of the three squared differences.
    w = torch.full((1, 3), 1 / 3)
    assert importance_loss(w, target).item() == pytest.approx(sum((e - 1 / 3) ** 2 for e in expected) / 3)
    # The target is detached: only the router's weights learn from L_imp.
    outputs.requires_grad_(True)
    assert not importance_target(outputs, torch.tensor([1.0]), 0.1).requires_grad


def test_unimodal_loss_on_a_hand_worked_case():
    # Sample 1: |1-1|, |2-1|, |3-1| = 0, 1, 2; sample 2: 1, 1, 1; mean of the six = 1.
    outputs = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
    assert unimodal_loss(outputs, torch.tensor([1.0, 1.0])).item() == pytest.approx(1.0)


def test_unimodal_distillation_on_a_hand_worked_case():
    # p_c = (0, 0): softmax (0.5, 0.5). w = (1, 0, 0) keeps p_T = (ln 3, 0): softmax (0.75, 0.25).
    # Squared differences 0.0625 and 0.0625, mean 0.0625.
    fused = torch.zeros(1, 2, requires_grad=True)
    unimodal = torch.tensor([[[math.log(3), 0.0]], [[5.0, -5.0]], [[-2.0, 7.0]]], requires_grad=True)  # (E, B, D)
    w = torch.tensor([[1.0, 0.0, 0.0]], requires_grad=True)
    value = unimodal_distillation(fused, unimodal, w)
    assert value.item() == pytest.approx(0.0625)
    value.backward()
    # The weighted unimodal target is detached, as the authors' trainer does: only p_c learns from L_ud.
    assert fused.grad.abs().sum() > 0 and unimodal.grad is None and w.grad is None


def test_the_objective_names_its_terms_and_the_loss_weights_them():
    model = build_model(EMOEConfig(**TINY), "emoe")
    text, audio, vision, lengths = tiny_inputs()
    labels = torch.tensor([2.5, -2.0, 3.0, 1.5])
    output = model(text, audio, vision, lengths)
    loss = EMOELoss(unimodal_weight=0.5, entropy_weight=0.25, importance_weight=2.0, distill_weight=4.0)
    terms = emoe_objective(model.cfg, loss)(output, Batch(text, audio, vision, lengths, labels, torch.arange(4)))
    assert set(terms) == {"task", "unimodal", "entropy", "importance", "distill"}
    assert terms["task"].item() == pytest.approx((output.prediction - labels).abs().mean().item())
    total, _ = weighted_loss(terms, loss.coefficients())
    expected = (terms["task"] + 0.5 * terms["unimodal"] + 0.25 * terms["entropy"] + 2.0 * terms["importance"]
                + 4.0 * terms["distill"])
    assert total.item() == pytest.approx(expected.item())
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # The authors' trainer: L1 + unimodal + 0.1 (L_ent + 0.1 L_imp) + 0.1 L_ud.
    assert EMOELoss().coefficients() == {"task": 1.0, "unimodal": 1.0, "entropy": 0.1, "importance": 0.01,
                                         "distill": 0.1}


def test_the_output_is_what_the_evaluator_and_the_routing_figure_read():
    model = build_model(EMOEConfig(**TINY), "emoe").eval()
    text, audio, vision, lengths = tiny_inputs()
    output = model(text, audio, vision, lengths)
    assert output.prediction.shape == (4,) and output.routing.shape == (4, 3)
    assert output.expert_outputs.shape == (1, 4, 3)  # one view: the full inputs
    torch.testing.assert_close(output.routing.sum(dim=1), torch.ones(4))
    # The fused prediction is the fusion head on Σ_m w_m h_m: with all the weight on one expert and identical
    # heads, it is that expert's prediction.
    with torch.no_grad():
        model.router.l2.weight.zero_()
        model.router.l2.bias.copy_(torch.tensor([0.0, 0.0, 100.0]))  # softmax(bias / t): all on V
        for name, parameter in model.heads["vision"].named_parameters():
            parameter.copy_(dict(model.fusion_head.named_parameters())[name])
    output = model(text, audio, vision, lengths)
    torch.testing.assert_close(output.prediction, output.expert_outputs[0, :, 2])


def test_the_words_reach_the_prediction_and_an_absent_modality_the_router():
    model = build_model(EMOEConfig(**TINY), "emoe").eval()
    text, audio, vision, lengths = tiny_inputs()
    clean = model(text, audio, vision, lengths)
    changed = text.clone()
    changed[1, 0] += 1.0
    assert model(changed, audio, vision, lengths).prediction[1] != clean.prediction[1]
    assert not torch.allclose(model(text, torch.zeros_like(audio), vision, lengths).routing[0], clean.routing[0])


def test_config_and_loss_round_trip_and_name_bad_values():
    cfg = EMOEConfig(router_hidden=16, kernel_audio=1)
    assert EMOEConfig.from_dict(cfg.to_dict()) == cfg
    assert EMOELoss.from_dict(EMOELoss(distill_weight=0.5).to_dict()) == EMOELoss(distill_weight=0.5)
    with pytest.raises(ValueError, match="router_hidden = 0"):
        EMOEConfig(router_hidden=0)
    with pytest.raises(ValueError, match="heads = 3"):
        EMOEConfig(heads=3)
    with pytest.raises(ValueError, match="temperature = 0"):
        EMOEConfig(temperature=0)
    with pytest.raises(ValueError, match="kernel_text = 60"):
        EMOEConfig(kernel_text=60)
    with pytest.raises(ValueError, match="entropy_weight = -1"):
        EMOELoss(entropy_weight=-1)
    with pytest.raises(ValueError, match="unknown key"):
        EMOELoss.from_dict({"sim_weight": 1.0})
    with pytest.raises(ValueError, match="audio has 4 features"):
        build_model(EMOEConfig(**TINY), "emoe")(torch.zeros(1, 6, 7), torch.zeros(1, 6, 4), torch.zeros(1, 6, 3),
                                                torch.tensor([6]))


# The authors' counts: their code (github.com/fuyyyyy/EMOE at be3da9b, read from the fork Wendy888888888/EMOE),
# trains/singleTask/model/emoe.py built with their config/config.json (emoe, datasetParams.<dataset>, aligned data:
# need_data_aligned true) and their feature dims (MOSI [768, 5, 20], MOSEI [768, 74, 35]), use_bert false (the
# fine-tuned BERT left out, as everywhere here), in the MMSA scratch venv (torch 2.13); trainable parameters.
# Their totals, 207,813,531 (MOSI) and 251,665,905 (MOSEI), are held against ours in tests/model/test_kinds.py.
AUTHORS_DIMS = {"mosi": (768, 5, 20), "mosei": (768, 74, 35)}
AUTHORS_ROUTER = {"mosi": 196_525_227, "mosei": 240_363_777}  # their count of `Router` alone


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_the_router_counts_as_the_authors(dataset):
    t, a, v = AUTHORS_DIMS[dataset]
    cfg = dataclasses.replace(PAPER[dataset], text_dim=t, audio_dim=a, vision_dim=v)
    with torch.device("meta"):  # shapes only: 200 M parameters need no values to be counted
        model = build_model(cfg, "emoe")
    # The router is the authors' to the parameter: R = 50 x (768 + a + v) inputs, R // 8 hidden, 3 outputs.
    R = 50 * (t + a + v)
    assert count_parameters(model.router) == AUTHORS_ROUTER[dataset] == R * (R // 8) + R // 8 + (R // 8) * 3 + 3


def test_registered_as_a_routed_kind_with_the_authors_sizes():
    kind = MODEL_KINDS["emoe"]
    assert kind.config is EMOEConfig and kind.loss is EMOELoss and kind.absent == "zeros"
    assert kind.routed and kind.expert_names(EMOEConfig()) == ("T", "A", "V") and not kind.views
    assert kind.paper["mosei"].kernel_audio == 1 and kind.paper["mosei"].kernel_vision == 3
    assert kind.paper["mosi"].router_hidden is None  # the authors' input width // 8


def test_the_schema_describes_every_field_and_checks_an_emoe_variant():
    schema = yaml.safe_load(SCHEMA.read_text())["$defs"]
    assert set(schema["emoe_model"]["properties"]) == {f.name for f in dataclasses.fields(EMOEConfig)}
    assert set(schema["emoe_loss"]["properties"]) == {f.name for f in dataclasses.fields(EMOELoss)}
    config = {"datasets": {"toy": {"source": "synthetic", "baselines": {"emoe": {
        "model": {"d_model": 32, "router_hidden": None}, "loss": {"distill_weight": 0.2}, "train": {"lr": 1e-3}}}}},
        "models": {"emoe": {"kind": "emoe", "model": {"router_hidden": 64}}}}
    validate_config(config, SCHEMA)
    bad = {"models": {"emoe": {"kind": "emoe", "model": {"hidden_size": 32}}}}
    with pytest.raises(ConfigError, match="hidden_size"):
        validate_config(bad, SCHEMA)
