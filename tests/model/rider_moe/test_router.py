"""The reliability-aware router, Eqs. 21-39, on inputs small enough to work out by hand."""

import math

import pytest
import torch

from rider.model import build_model
from rider.model.rider_moe.router import (
    RunningStandardize,
    absolute_reliability,
    blend_absolute,
    ReliabilityRouter,
    blend_reliability,
    consensus_score,
    entropy,
    inject_prior,
    relative_reliability,
)

EPS = 1e-8


from tiny_model import tiny_batch, tiny_config  # noqa: E402


# Eq. 24 ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("K", [2, 3, 7])
def test_entropy_of_uniform_probe_is_log_k(K):
    assert entropy(torch.full((K,), 1.0 / K), EPS).item() == pytest.approx(math.log(K), abs=1e-6)


def test_entropy_of_one_hot_probe_is_zero_and_of_a_pair_is_log_2():
    assert entropy(torch.tensor([0.0, 1.0, 0.0]), EPS).item() == pytest.approx(0.0, abs=1e-6)
    assert entropy(torch.tensor([0.5, 0.5, 0.0]), EPS).item() == pytest.approx(math.log(2), abs=1e-6)


# Eq. 25 ---------------------------------------------------------------------------------------------------------

def test_relative_reliability_from_given_entropies():
    # exp(-H) = 1, 1/2, 1/4 -> normalised 4/7, 2/7, 1/7: the sharpest probe is the most reliable.
    rel = relative_reliability(torch.tensor([[0.0, math.log(2), math.log(4)]]))
    torch.testing.assert_close(rel, torch.tensor([[4 / 7, 2 / 7, 1 / 7]]))


# Eqs. 28-29 -----------------------------------------------------------------------------------------------------

def test_reliability_blend_and_normalisation():
    rel = torch.tensor([[4 / 7, 2 / 7, 1 / 7]])
    imp = torch.tensor([[0.0, 0.0, 1.0]])
    r, r_bar = blend_reliability(rel, imp, alpha=0.7)
    # 0.7 * (4/7, 2/7, 1/7) + 0.3 * (0, 0, 1) = (0.4, 0.2, 0.4), which already sums to 1.
    torch.testing.assert_close(r, torch.tensor([[0.4, 0.2, 0.4]]))
    torch.testing.assert_close(r_bar, torch.tensor([1 / 3]))


def test_reliability_normalisation_of_unnormalised_inputs():
    r, _ = blend_reliability(torch.tensor([[2.0, 1.0, 1.0]]), torch.tensor([[0.0, 0.0, 4.0]]), alpha=0.5)
    # r~ = (1, 0.5, 2.5), sum 4 -> (0.25, 0.125, 0.625)
    torch.testing.assert_close(r, torch.tensor([[0.25, 0.125, 0.625]]))


def test_mean_reliability_is_one_third_whatever_the_inputs():
    # Eq. 29 normalises r to sum 1, so r_bar = (r_T + r_A + r_V) / 3 is always 1/3 (a property of the paper's
    # equations, recorded here so that a change to it is noticed).
    g = torch.Generator().manual_seed(0)
    rel = torch.softmax(torch.randn(8, 3, generator=g), -1)
    imp = torch.softmax(torch.randn(8, 3, generator=g), -1)
    _, r_bar = blend_reliability(rel, imp, alpha=0.3)
    torch.testing.assert_close(r_bar, torch.full((8,), 1 / 3))


# Eqs. 30-33 -----------------------------------------------------------------------------------------------------

def test_identical_probe_distributions_give_consensus_one():
    p = torch.tensor([0.1, 0.2, 0.7]).expand(2, 3, 3)  # (B, M, K): every modality says the same
    torch.testing.assert_close(consensus_score(p, gamma=1.0, eps=EPS), torch.ones(2))


@pytest.mark.parametrize("K", [3, 7])
@pytest.mark.parametrize("gamma", [1.0, 2.5])
def test_one_hot_against_uniform_pair_matches_closed_form(K, gamma):
    one_hot = torch.zeros(K)
    one_hot[0] = 1.0
    p = torch.stack([one_hot, torch.full((K,), 1.0 / K)])[None]  # (1, M=2, K)
    # p_bar = ((1 + 1/K)/2, 1/(2K), ...). KL(one-hot || p_bar) = log(2K / (K+1)).
    # KL(uniform || p_bar) = (1/K) log(2 / (K+1)) + ((K-1)/K) log 2.
    d_one_hot = math.log(2 * K / (K + 1))
    d_uniform = math.log(2 / (K + 1)) / K + (K - 1) / K * math.log(2)
    expected = math.exp(-gamma * (d_one_hot + d_uniform) / 2)
    assert consensus_score(p, gamma, EPS).item() == pytest.approx(expected, abs=1e-5)


def test_consensus_drops_as_probes_disagree():
    agree = torch.tensor([[[0.8, 0.1, 0.1]] * 3])
    conflict = torch.tensor([[[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]]])
    assert consensus_score(conflict, 1.0, EPS).item() < 0.9 * consensus_score(agree, 1.0, EPS).item()


# Eqs. 38-39 -----------------------------------------------------------------------------------------------------

def test_zero_prior_strength_leaves_the_base_softmax_exactly_unchanged():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g)
    prior = torch.softmax(torch.randn(6, 5, generator=g), -1)
    assert torch.equal(inject_prior(base, prior, 0.0, EPS), torch.softmax(base, -1))


def test_prior_injection_on_flat_base_logits_returns_the_prior_to_the_power_lambda():
    prior = torch.tensor([[0.5, 0.25, 0.125, 0.0625, 0.0625]])
    torch.testing.assert_close(inject_prior(torch.zeros(1, 5), prior, 1.0, EPS), prior)
    squared = prior**2 / (prior**2).sum()
    torch.testing.assert_close(inject_prior(torch.zeros(1, 5), prior, 2.0, EPS), squared)


# The module: Eqs. 21-22 and 34-36 wired together ----------------------------------------------------------------

def _router_with_hand_weights(use_consensus=True):
    """D = 2, K = 3, E = 5. Probes read h directly; importance is flat; the prior sees only one feature."""
    router = ReliabilityRouter(d_model=2, num_experts=5, num_classes=3, alpha=0.5, gamma=1.0,
                               prior_strength=1.0, eps=EPS, use_consensus=use_consensus)
    with torch.no_grad():
        router.probe_w.zero_()
        router.probe_w[:, 0, 0] = 1.0  # logit of class 0 = h[0]
        router.probe_w[:, 1, 2] = 1.0  # logit of class 2 = h[1]
        router.probe_b.zero_()
        router.importance.weight.zero_()
        router.importance.bias.zero_()  # Imp = (1/3, 1/3, 1/3)
        router.prior.weight.zero_()
        router.prior.bias.zero_()
        router.base.weight.zero_()
        router.base.bias.zero_()
    return router


def test_probe_logits_are_a_linear_map_of_h():
    router = _router_with_hand_weights()
    h = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [-1.0, 3.0]]])  # (B=1, M=3, D=2)
    out = router(h, torch.zeros(1, 2))
    torch.testing.assert_close(out.probe_logits, torch.tensor([[[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 3.0]]]))
    # The middle modality's probe is uniform: H = log 3, the largest of the three.
    assert out.entropy[0, 1].item() == pytest.approx(math.log(3), abs=1e-6)
    assert out.entropy[0, 1] > out.entropy[0, 0] and out.entropy[0, 1] > out.entropy[0, 2]


def test_identical_probes_route_through_the_consensus_feature():
    router = _router_with_hand_weights()
    with torch.no_grad():
        router.prior.weight[4, 3] = math.log(4.0)  # Eq. 35: the consensus feature raises the synergy logit
    h = torch.zeros(1, 3, 2)  # all probes uniform and identical: r = (1/3, 1/3, 1/3), cons_score = 1
    out = router(h, torch.zeros(1, 2))
    torch.testing.assert_close(out.reliability, torch.full((1, 3), 1 / 3))
    torch.testing.assert_close(out.consensus, torch.ones(1))
    # Eq. 36: logits (0, 0, 0, 0, log 4) -> prior (1, 1, 1, 1, 4) / 8; flat base logits -> pi = prior.
    expected = torch.tensor([[1, 1, 1, 1, 4]]) / 8.0
    torch.testing.assert_close(out.expert_prior, expected)
    torch.testing.assert_close(out.routing, expected)


def test_without_consensus_the_prior_sees_three_features():
    router = _router_with_hand_weights(use_consensus=False)
    assert router.prior.in_features == 3
    out = router(torch.zeros(1, 3, 2), torch.zeros(1, 2))
    torch.testing.assert_close(out.expert_prior, torch.full((1, 5), 0.2))


def test_reliability_in_the_module_follows_entropy_and_importance():
    router = _router_with_hand_weights()
    h = torch.tensor([[[10.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])  # text probe nearly one-hot, the others uniform
    out = router(h, torch.zeros(1, 2))
    H = torch.tensor([0.0, math.log(3), math.log(3)])
    rel = torch.exp(-H) / torch.exp(-H).sum()
    expected = 0.5 * rel + 0.5 / 3  # alpha = 0.5, Imp flat
    torch.testing.assert_close(out.reliability[0], expected, atol=2e-3, rtol=0)


def test_model_with_zero_prior_strength_routes_by_the_base_router_alone():
    torch.manual_seed(0)
    model = build_model(tiny_config(prior_strength=0.0)).eval()
    out = model(*tiny_batch())
    z0 = out.fused_tokens[0].mean(dim=1)  # the router input, (B, D)
    assert torch.equal(out.routing, torch.softmax(model.router.base(z0), dim=-1))


def test_model_prior_changes_routing_when_lambda_is_one():
    torch.manual_seed(0)
    model = build_model(tiny_config(prior_strength=1.0)).eval()
    out = model(*tiny_batch())
    z0 = out.fused_tokens[0].mean(dim=1)
    assert not torch.allclose(out.routing, torch.softmax(model.router.base(z0), dim=-1))
    expected = torch.softmax(model.router.base(z0) + torch.log(out.expert_prior + EPS), dim=-1)
    torch.testing.assert_close(out.routing, expected)


# Remedies: absolute reliability and standardised prior features --------------------------------------------------

def test_absolute_reliability_is_one_for_a_certain_probe_and_zero_for_a_uniform_one():
    H = torch.tensor([[0.0, math.log(3), math.log(2)]])  # one-hot, uniform, two classes at 1/2 (K = 3)
    # 1 - log 2 / log 3 = 1 - 0.693147 / 1.098612 = 0.369070
    torch.testing.assert_close(absolute_reliability(H, 3), torch.tensor([[1.0, 0.0, 0.369070]]), atol=1e-6, rtol=0)


def test_absolute_blend_keeps_each_modality_on_its_own_scale():
    a = torch.tensor([[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
    imp = torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])
    r, r_bar = blend_absolute(a, imp, alpha=0.5)
    # Row 0: 0.5 * (1, 0, .5) + 0.5 * (.5, .25, .25) = (.75, .125, .375); mean 1.25 / 3.
    torch.testing.assert_close(r[0], torch.tensor([0.75, 0.125, 0.375]))
    # Row 1, every probe uniform: only importance is left, r_bar = (1 - alpha) / M = 1/6, not the relative 1/3.
    torch.testing.assert_close(r_bar, torch.tensor([1.25 / 3, 1 / 6]))


def test_the_router_uses_absolute_reliability_when_configured():
    router = _router_with_hand_weights()
    router.absolute = True
    h = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [-1.0, 3.0]]])
    out = router(h, torch.zeros(1, 2))
    # Modality 1's probe is uniform: a = 0, r = 0.5 * 0 + 0.5 * 1/3.
    assert out.reliability[0, 1].item() == pytest.approx(1 / 6, abs=1e-6)
    assert out.reliability.sum().item() != pytest.approx(1.0, abs=1e-3)


def test_running_standardize_updates_from_training_batches_only():
    norm = RunningStandardize(1, momentum=0.1, eps=0.0)
    x = torch.tensor([[1.0], [3.0]])  # batch mean 2, unbiased variance 2
    out = norm(x)
    # running mean 0.9 * 0 + 0.1 * 2 = 0.2; running var 0.9 * 1 + 0.1 * 2 = 1.1
    torch.testing.assert_close(norm.mean, torch.tensor([0.2]))
    torch.testing.assert_close(norm.var, torch.tensor([1.1]))
    torch.testing.assert_close(out, (x - 0.2) / math.sqrt(1.1))
    norm(torch.tensor([[5.0]]))  # a batch of one has no variance to learn from
    norm.eval()
    norm(torch.tensor([[7.0], [9.0]]))
    torch.testing.assert_close(norm.mean, torch.tensor([0.2]))


def test_standardised_features_let_a_small_change_in_reliability_move_the_prior():
    raw = _router_with_hand_weights()
    standardized = _router_with_hand_weights()
    standardized.prior_norm = RunningStandardize(4, eps=0.0)
    with torch.no_grad():
        standardized.prior_norm.mean.copy_(torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.9]))
        standardized.prior_norm.var.copy_(torch.tensor([0.05, 0.05, 0.05, 0.02]) ** 2)
        for router in (raw, standardized):
            router.prior.weight[0, 0] = 0.3  # expert 0's prior logit reads r_T with an initial-scale weight
    f_low, f_high = torch.tensor([[0.30, 0.35, 0.35, 0.9]]), torch.tensor([[0.35, 0.30, 0.35, 0.9]])
    for router in (raw, standardized):
        router.eval()
    move_raw = (raw.prior(raw.prior_norm(f_high)) - raw.prior(raw.prior_norm(f_low)))[0, 0].item()
    move_std = (standardized.prior(standardized.prior_norm(f_high))
                - standardized.prior(standardized.prior_norm(f_low)))[0, 0].item()
    assert move_raw == pytest.approx(0.3 * 0.05)  # 0.015: invisible after the softmax
    assert move_std == pytest.approx(0.3 * 0.05 / 0.05)  # one standard deviation of r_T: 0.3
