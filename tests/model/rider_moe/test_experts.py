"""The grouped experts (stacked weights) against the plain five-module reference, and the single-expert collapse."""

import pytest
import torch

from rider.model import build_model, count_parameters
from rider.model.rider_moe.config import ModelConfig
from rider.model.rider_moe.experts import GroupedExperts, SeparateExperts, copy_expert_weights
from rider.model.rider_moe.experts import _paired_parameters, single_expert_ff

SIZES = dict(num_experts=5, d_model=16, layers=3, heads=4, d_ff=24)


def pair(dropout=0.0, **sizes):
    torch.manual_seed(0)
    kw = {**SIZES, **sizes, "dropout": dropout}
    return GroupedExperts(**kw), SeparateExperts(**kw)


@pytest.mark.parametrize("direction", ["separate_to_grouped", "grouped_to_separate"])
def test_grouped_equals_separate_in_eval(direction):
    grouped, separate = pair(dropout=0.3)  # dropout must be off in eval for both
    src, dst = (separate, grouped) if direction == "separate_to_grouped" else (grouped, separate)
    tokens = torch.randn(7, 3, 16)
    assert (grouped.eval()(tokens) - separate.eval()(tokens)).abs().max() > 1e-3  # independent draws differ
    copy_expert_weights(src, dst)
    diff = (grouped(tokens) - separate(tokens)).abs().max().item()
    assert diff <= 1e-5, diff


def test_grouped_equals_separate_at_mosi_width():
    grouped, separate = pair(d_model=128, layers=4, heads=4, d_ff=256)
    copy_expert_weights(separate, grouped)
    tokens = torch.randn(32, 3, 128)
    with torch.no_grad():
        assert (grouped.eval()(tokens) - separate.eval()(tokens)).abs().max().item() <= 1e-5


def test_grouped_gradients_equal_separate_gradients():
    grouped, separate = pair()
    copy_expert_weights(separate, grouped)
    tokens = torch.randn(6, 3, 16)
    target = torch.randn(6, 5)
    for module in (grouped.train(), separate.train()):
        ((module(tokens) - target) ** 2).sum().backward()
    for stacked, e, param, transposed in _paired_parameters(grouped, separate):
        g = stacked.grad[e]
        ref = (param.grad.T if transposed else param.grad).reshape(g.shape)
        torch.testing.assert_close(g, ref, atol=1e-5, rtol=1e-4)


def test_every_expert_weight_is_paired_exactly_once():
    grouped, separate = pair()
    seen_grouped, seen_separate = {}, set()
    for stacked, e, param, _ in _paired_parameters(grouped, separate):
        seen_grouped[(id(stacked), e)] = seen_grouped.get((id(stacked), e), 0) + 1
        seen_separate.add(id(param))
    assert set(seen_grouped.values()) == {1}
    assert len(seen_grouped) == sum(p.shape[0] for p in grouped.parameters())
    assert seen_separate == {id(p) for p in separate.parameters()}
    assert count_parameters(grouped) == count_parameters(separate)


def test_each_expert_depends_only_on_its_own_weights():
    grouped, _ = pair()
    grouped.eval()
    tokens = torch.randn(4, 3, 16)
    before = grouped(tokens)
    with torch.no_grad():
        grouped.blocks[1].ff1_w[3] += torch.randn(16, 24)  # perturb expert R only
    changed = (grouped(tokens) - before).abs().amax(dim=0)
    assert changed[3] > 1e-4 and torch.all(changed[[0, 1, 2, 4]] == 0)


def test_copy_rejects_two_modules_of_the_same_kind():
    grouped, separate = pair()
    with pytest.raises(TypeError):
        copy_expert_weights(grouped, grouped)
    with pytest.raises(ValueError):
        copy_expert_weights(separate, GroupedExperts(5, 16, 2, 4, 24, 0.0))


def test_dropout_is_active_in_training_only():
    grouped, _ = pair(dropout=0.5)
    tokens = torch.randn(4, 3, 16)
    grouped.train()
    assert not torch.equal(grouped(tokens), grouped(tokens))
    grouped.eval()
    assert torch.equal(grouped(tokens), grouped(tokens))


# Single expert (Table 3, "expert collapse") ---------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [
    dict(d_model=16, expert_layers=2, expert_heads=2, expert_ff=32, encoder_heads=2, max_len=6),
    dict(),  # the MOSI sizes of App. C.5
])
@pytest.mark.parametrize("grouped", [True, False])
def test_single_expert_matches_the_parameter_count_of_five(sizes, grouped):
    full = count_parameters(build_model(ModelConfig(**sizes, grouped_experts=grouped)))
    single_model = build_model(ModelConfig(**sizes, grouped_experts=grouped, single_expert=True))
    single = count_parameters(single_model)
    assert abs(single - full) / full < 0.10
    assert single_model.experts.num_experts == 1


def test_single_expert_ff_accounts_for_every_expert_parameter():
    cfg = ModelConfig(d_model=16, expert_layers=2, expert_heads=2, expert_ff=32, encoder_heads=2)
    five = count_parameters(GroupedExperts(5, 16, 2, 2, 32, 0.0))
    one = count_parameters(GroupedExperts(1, 16, 2, 2, single_expert_ff(cfg), 0.0))
    assert abs(one - five) <= 2 * (2 * 16 + 1)  # within one rounding step of the feed-forward width


def test_grouped_and_separate_models_agree_end_to_end():
    cfg = dict(d_model=16, expert_layers=2, expert_heads=2, expert_ff=32, encoder_heads=2, max_len=6)
    torch.manual_seed(0)
    a = build_model(ModelConfig(**cfg)).eval()
    b = build_model(ModelConfig(**cfg, grouped_experts=False)).eval()
    rest = {k: v for k, v in a.state_dict().items() if not k.startswith("experts.")}
    b.load_state_dict(rest, strict=False)
    copy_expert_weights(a.experts, b.experts)
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(3, 6, 300, generator=g), torch.randn(3, 6, 74, generator=g), torch.randn(3, 6, 35, generator=g),
         torch.tensor([6, 2, 4]))
    out_a, out_b = a(*x, with_views=True), b(*x, with_views=True)
    assert (out_a.expert_outputs - out_b.expert_outputs).abs().max().item() <= 1e-5
    assert (out_a.prediction - out_b.prediction).abs().max().item() <= 1e-5
