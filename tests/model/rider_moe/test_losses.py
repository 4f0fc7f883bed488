"""Eq. 3's terms on hand-made expert outputs, and where their gradients may and may not go."""

import math

import pytest
import torch

from rider.model import build_model, weighted_loss
from rider.model.rider_moe.config import LossWeights, ModelConfig
from rider.model.rider_moe.losses import loss_terms
from rider.model.rider_moe.losses import (
    probe_loss,
    redundancy_loss,
    sentiment_class,
    synergy_off_loss,
    synergy_residual_loss,
    task_loss,
    uniqueness_loss,
)


def tiny_config(**overrides) -> ModelConfig:
    base = dict(d_model=16, expert_layers=2, expert_heads=2, expert_ff=32, encoder_heads=2, max_len=6, dropout=0.0)
    return ModelConfig(**{**base, **overrides})


def tiny_batch(B=4, L=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(B, L, 300, generator=g), torch.randn(B, L, 74, generator=g),
         torch.randn(B, L, 35, generator=g), torch.tensor([L, 3, 1, 5][:B]))
    return x, torch.empty(B).uniform_(-3, 3, generator=g)


def hand_views() -> torch.Tensor:
    """One sample's y_e^(p): rows are views (0, -T, -A, -V), columns experts (U_T, U_A, U_V, R, S)."""
    return torch.tensor([
        [1.0, 0.0, 2.0, 1.0, 5.0],  # p = 0
        [9.0, 1.0, 2.0, 2.0, 1.0],  # p = -T
        [2.0, 99.0, 2.0, 3.0, 2.0],  # p = -A
        [4.0, 0.0, 100.0, 6.0, 3.0],  # p = -V
    ])[:, None, :]  # (V=4, B=1, E=5)


# Eqs. 2 and 23 --------------------------------------------------------------------------------------------------

def test_task_loss_is_mean_absolute_error():
    assert task_loss(torch.tensor([1.0, -1.0]), torch.tensor([0.0, 1.0])).item() == pytest.approx(1.5)


def test_sentiment_class_clips_and_rounds_half_to_even():
    y = torch.tensor([-3.7, -2.5, -0.4, 0.5, 1.5, 2.6, 3.2])
    assert sentiment_class(y).tolist() == [0, 1, 3, 3, 5, 6, 6]


def test_probe_loss_sums_cross_entropy_over_modalities():
    # Flat logits: CE = log 7 for each of the three probes.
    assert probe_loss(torch.zeros(2, 3, 7), torch.tensor([0.3, -2.0])).item() == pytest.approx(3 * math.log(7))
    # A probe that puts all its mass on the right class contributes ~0; only the other two remain.
    logits = torch.zeros(1, 3, 7)
    logits[0, 0, 5] = 50.0  # y = 2.2 -> class 5
    assert probe_loss(logits, torch.tensor([2.2])).item() == pytest.approx(2 * math.log(7), abs=1e-5)


# Eqs. 43-51 -----------------------------------------------------------------------------------------------------

def test_uniqueness_loss_uses_only_views_where_the_modality_is_present():
    r = torch.tensor([[0.5, 0.3, 0.2]])
    # U_T over P_T \ {0} = {-A, -V}: ((1-2)^2 + (1-4)^2) / 2 = 5   (the -T value 9 is ignored)
    # U_A over {-T, -V}: ((0-1)^2 + (0-0)^2) / 2 = 0.5             (the -A value 99 is ignored)
    # U_V over {-T, -A}: 0                                         (the -V value 100 is ignored)
    expected = 0.5 * 5 + 0.3 * 0.5 + 0.2 * 0
    assert uniqueness_loss(hand_views(), r).item() == pytest.approx(expected)


def test_redundancy_loss_is_reliability_times_variance_over_four_views():
    # y_R = (1, 2, 3, 6): mean 3, squared deviations (4, 1, 0, 9), population variance 3.5.
    assert redundancy_loss(hand_views(), torch.tensor([0.5])).item() == pytest.approx(0.5 * 3.5)


def test_synergy_off_loss_uses_masked_views_only():
    # y_S on (-T, -A, -V) = (1, 2, 3): mean square 14/3; the full-view 5 does not count. r_bar^3 = 1/8.
    assert synergy_off_loss(hand_views(), torch.tensor([0.5])).item() == pytest.approx(14 / 3 / 8)


def test_synergy_residual_loss_by_hand():
    routing = torch.tensor([[0.1, 0.1, 0.1, 0.2, 0.5]])
    y_full = torch.tensor([[1.0, 2.0, 3.0, 4.0, 2.0]])
    # y_hat without S = 0.1 + 0.2 + 0.3 + 0.8 = 1.4; delta = 3 - 1.4 = 1.6; pi_S y_S = 1.0
    # r_bar^3 (1.0 - 1.6)^2 = 0.125 * 0.36
    loss = synergy_residual_loss(y_full, routing, torch.tensor([3.0]), torch.tensor([0.5]))
    assert loss.item() == pytest.approx(0.045)


def test_dir_terms_average_over_the_batch():
    two = torch.cat([hand_views(), 2 * hand_views()], dim=1)  # second sample: every output doubled
    r_bar = torch.tensor([0.5, 0.5])
    assert redundancy_loss(two, r_bar).item() == pytest.approx(0.5 * (3.5 + 4 * 3.5) / 2)


# Gradients ------------------------------------------------------------------------------------------------------

def test_synergy_residual_gradient_reaches_only_s_and_pi_s():
    routing = torch.tensor([[0.1, 0.1, 0.1, 0.2, 0.5]], requires_grad=True)
    y_full = torch.tensor([[1.0, 2.0, 3.0, 4.0, 2.0]], requires_grad=True)
    synergy_residual_loss(y_full, routing, torch.tensor([3.0]), torch.tensor([0.5])).backward()
    # d/dy_S = r^3 * 2 (pi_S y_S - delta) pi_S = 0.125 * 2 * (-0.6) * 0.5; d/dpi_S = ... * y_S (= 2)
    torch.testing.assert_close(y_full.grad, torch.tensor([[0.0, 0.0, 0.0, 0.0, -0.075]]))
    torch.testing.assert_close(routing.grad, torch.tensor([[0.0, 0.0, 0.0, 0.0, -0.3]]))


@pytest.mark.parametrize("term", ["uni", "red", "syn_off", "syn_res"])
def test_reliability_weights_of_dir_terms_carry_no_gradient(term):
    views = hand_views().requires_grad_()
    r = torch.tensor([[0.5, 0.3, 0.2]], requires_grad=True)
    r_bar = torch.tensor([0.5], requires_grad=True)
    loss = {
        "uni": lambda: uniqueness_loss(views, r),
        "red": lambda: redundancy_loss(views, r_bar),
        "syn_off": lambda: synergy_off_loss(views, r_bar),
        "syn_res": lambda: synergy_residual_loss(views[0], torch.full((1, 5), 0.2), torch.tensor([1.0]), r_bar),
    }[term]()
    loss.backward()
    assert r.grad is None and r_bar.grad is None
    assert views.grad.abs().sum() > 0  # the experts do learn from it


def _model_and_output(**cfg):
    torch.manual_seed(0)
    model = build_model(tiny_config(**cfg)).train()
    x, y = tiny_batch()
    return model, model(*x), y


def test_synergy_residual_in_the_model_trains_only_s_among_the_experts():
    model, out, y = _model_and_output()
    out.routing.retain_grad()
    loss_terms(out, y)["syn_res"].backward()
    for name, p in model.experts.named_parameters():  # every stacked weight is (E, ...)
        assert p.grad[:4].abs().max() == 0, f"{name}: a non-synergy expert got gradient from syn_res"
        assert p.grad[4].abs().max() > 0, f"{name}: the synergy expert got no gradient from syn_res"
    assert torch.all(out.routing.grad[:, :4] == 0) and torch.all(out.routing.grad[:, 4] != 0)
    assert model.router.base.weight.grad.abs().max() > 0  # pi_S is learnt through the router


def test_synergy_residual_with_separate_experts_trains_only_s():
    model, out, y = _model_and_output(grouped_experts=False)
    loss_terms(out, y)["syn_res"].backward()
    for e, expert in enumerate(model.experts.experts):
        grads = [p.grad for p in expert.parameters()]
        if e == 4:
            assert all(g is not None and g.abs().max() > 0 for g in grads)
        else:
            assert all(g is None or g.abs().max() == 0 for g in grads), f"expert {e} got gradient from syn_res"


def test_reliability_in_the_model_gets_no_gradient_from_dir():
    model, out, y = _model_and_output()
    out.reliability.retain_grad()
    out.mean_reliability.retain_grad()
    terms = loss_terms(out, y)
    (terms["uni"] + terms["red"] + terms["syn_off"]).backward(retain_graph=True)
    assert out.reliability.grad is None and out.mean_reliability.grad is None
    terms["syn_res"].backward()  # reaches r only as a router feature (through pi_S), never through r_bar
    assert out.mean_reliability.grad is None


# Which terms exist ----------------------------------------------------------------------------------------------

def test_without_masked_views_only_syn_res_of_dir_remains():
    _, out, y = _model_and_output(masked_views=False)
    assert out.expert_outputs.shape[0] == 1
    terms = loss_terms(out, y)
    assert terms["uni"].item() == terms["red"].item() == terms["syn_off"].item() == 0.0
    assert terms["syn_res"].item() > 0


def test_single_expert_has_no_dir_terms():
    _, out, y = _model_and_output(single_expert=True)
    assert out.expert_outputs.shape[-1] == 1
    terms = loss_terms(out, y)
    assert all(terms[k].item() == 0.0 for k in ("uni", "red", "syn_off", "syn_res"))
    assert terms["task"].item() > 0 and terms["cls"].item() > 0


# Eq. 3 ----------------------------------------------------------------------------------------------------------

def _terms(**values):
    return {k: torch.tensor(float(v)) for k, v in values.items()}


def test_weighted_loss_applies_eq_3():
    terms = _terms(task=1, cls=2, uni=3, red=4, syn_off=5, syn_res=6)
    w = LossWeights(lambda_cls=0.1, lambda_pid=0.2, lambda_syn=0.3)
    total, returned = weighted_loss(terms, w.coefficients())
    assert total.item() == pytest.approx(1 + 0.1 * 2 + 0.2 * (3 + 4) + 0.3 * (5 + 6))
    assert returned == terms  # unweighted, for the log
    off = weighted_loss(terms, LossWeights(lambda_cls=0.1, lambda_pid=0.2, lambda_syn=0.3, use_syn_off=False).coefficients())[0]
    res = weighted_loss(terms, LossWeights(lambda_cls=0.1, lambda_pid=0.2, lambda_syn=0.3, use_syn_res=False).coefficients())[0]
    assert off.item() == pytest.approx(total.item() - 0.3 * 5)
    assert res.item() == pytest.approx(total.item() - 0.3 * 6)


def test_a_term_with_zero_weight_cannot_leak_nan():
    terms = _terms(task=1, cls=2, uni=float("nan"), red=4, syn_off=float("nan"), syn_res=6)
    total, _ = weighted_loss(terms, LossWeights(lambda_pid=0.0, use_syn_off=False).coefficients())
    assert total.item() == pytest.approx(1 + 0.05 * 2 + 0.05 * 6)
