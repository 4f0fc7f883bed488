"""A training step end to end: which parameters learn, and finiteness under every ablation switch of Table 3."""

import itertools

import pytest
import torch

from rider.model import build_model
from rider.model.rider_moe.config import LossWeights, ModelConfig
from rider.model.rider_moe.losses import compute_loss


def tiny_config(**overrides) -> ModelConfig:
    base = dict(d_model=16, expert_layers=2, expert_heads=2, expert_ff=32, encoder_heads=2, max_len=6, dropout=0.1)
    return ModelConfig(**{**base, **overrides})


def tiny_batch(B=4, L=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(B, L, 300, generator=g), torch.randn(B, L, 74, generator=g),
         torch.randn(B, L, 35, generator=g), torch.tensor([L, 3, 1, 5][:B]))  # one full length: every position
    return x, torch.empty(B).uniform_(-3, 3, generator=g)


ROUTER_GATES = {"router.importance.weight", "router.importance.bias", "router.prior.weight", "router.prior.bias"}

# Parameters that legitimately get no gradient, and why.
NO_GRADIENT = {
    # Full model: every parameter learns.
    "full": set(),
    # No masked view uses MASK_m (and no modality is absent): nothing reads it.
    "masked_views": {"mask"},
    # lambda_p = 0 multiplies log Prior^exp by 0: W_prior gets a zero gradient, and Imp only reaches the loss
    # through r -> f -> Prior^exp (r in DIR is detached by design).
    "prior_strength": ROUTER_GATES,
    # One expert: pi = softmax of one logit = 1, constant; the gate, prior and importance cannot matter.
    # Views are not computed either (no DIR term needs them), so MASK_m is unused.
    "single_expert": ROUTER_GATES | {"router.base.weight", "router.base.bias", "mask"},
}


@pytest.mark.parametrize("case, switch", [
    ("full", {}), ("masked_views", {"masked_views": False}), ("prior_strength", {"prior_strength": 0.0}),
    ("single_expert", {"single_expert": True}), ("full", {"grouped_experts": False}),
    ("full", {"use_consensus": False}), ("full", {"mask_kind": "zeros"}),
])
def test_every_parameter_that_should_learn_gets_a_gradient(case, switch):
    torch.manual_seed(0)
    model = build_model(tiny_config(**switch)).train()
    x, y = tiny_batch()
    total, _ = compute_loss(model(*x), y, LossWeights())
    total.backward()
    silent = {name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().max() == 0}
    assert silent == NO_GRADIENT[case] - ({"mask"} if switch.get("mask_kind") == "zeros" else set())


def test_mask_learns_from_missing_modalities_even_without_views():
    torch.manual_seed(0)
    model = build_model(tiny_config(masked_views=False)).train()
    x, y = tiny_batch()
    presence = torch.tensor([[True, False, True], [True, True, True], [False, True, True], [True, True, False]])
    compute_loss(model(*x, presence=presence), y, LossWeights())[0].backward()
    assert torch.all(model.mask.grad.abs().amax(dim=1) > 0)


MODEL_SWITCHES = list(itertools.product([0.0, 1.0], [True, False], [True, False], [False, True]))
LOSS_SWITCHES = list(itertools.product([True, False], [True, False], [0.0, 0.05], [0.0, 0.05]))


@pytest.mark.parametrize("prior_strength, use_consensus, masked_views, single_expert", MODEL_SWITCHES)
def test_every_switch_combination_is_finite(prior_strength, use_consensus, masked_views, single_expert):
    torch.manual_seed(0)
    cfg = tiny_config(prior_strength=prior_strength, use_consensus=use_consensus, masked_views=masked_views,
                      single_expert=single_expert)
    model = build_model(cfg).train()
    x, y = tiny_batch()
    for use_syn_off, use_syn_res, lambda_pid, lambda_syn in LOSS_SWITCHES:
        weights = LossWeights(lambda_pid=lambda_pid, lambda_syn=lambda_syn, use_syn_off=use_syn_off,
                              use_syn_res=use_syn_res)
        model.zero_grad(set_to_none=True)
        out = model(*x)
        assert all(torch.isfinite(t).all() for t in out), weights
        total, terms = compute_loss(out, y, weights)
        assert torch.isfinite(total) and all(torch.isfinite(t) for t in terms.values()), weights
        total.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None), weights
    model.eval()
    assert torch.isfinite(model(*x).prediction).all()


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = build_model(tiny_config(dropout=0.0)).train()
    x, y = tiny_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        total, _ = compute_loss(model(*x), y, LossWeights())
        total.backward()
        opt.step()
        losses.append(total.item())
    assert losses[-1] < 0.5 * losses[0]


def test_the_training_step_traces_as_one_graph():
    """torch.compile(mode="reduce-overhead") on CUDA needs a graph without breaks; aot_eager checks that on CPU."""
    torch.manual_seed(0)
    model = build_model(tiny_config()).train()
    x, y = tiny_batch()
    step = torch.compile(lambda: compute_loss(model(*x), y, LossWeights())[0], backend="aot_eager", fullgraph=True)
    total = step()
    total.backward()
    assert torch.isfinite(total) and model.router.base.weight.grad.abs().max() > 0
