"""LMF (rider.model.baselines.lmf): the low-rank fusion on a hand-worked case and against the full tensor it factorises,
padding that never leaks, the two learning rates, the config, and the parameter count against the authors'
implementation (MMSA 2.2.1) at their MOSI and MOSEI sizes."""

import copy
import dataclasses

import pytest
import torch

from rider.config import ConfigError, validate_config
from rider.model import MODEL_KINDS, build_model, count_parameters
from rider.model.baselines.lmf import LMF, PAPER, LMFConfig
from rider.model.baselines.tfn import tensor_fusion
from rider.train.trainer import RunSpec

from conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TINY = LMFConfig(text_hidden=8, audio_hidden=3, vision_hidden=4, text_out=5, rank=2, text_dim=7, audio_dim=4,
                 vision_dim=3, max_len=6, audio_dropout=0.0, vision_dropout=0.0, factor_lr=5e-4)


def tiny_inputs(B=4, L=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, L, 7, generator=g), torch.randn(B, L, 4, generator=g), torch.randn(B, L, 3, generator=g),
            torch.tensor([6, 3, 1, 0][:B]))


# The authors' counts: MMSA 2.2.1 (PyPI `mmsa`, beside torch 2.13.0 in a scratch venv), AMIO(args) built from
# get_config_regression("lmf", dataset) in regression mode with feature_dims set and seq_lens 50, trainable
# parameters summed (requires_grad). "mmsa dims" are the feature widths of MMSA's own processed files (MOSI:
# 768-d BERT tokens, 5 audio, 20 vision; MOSEI: 768, 74, 35); "our dims" are our cache's (300, 74, 35).
# MMSA's trainer hands all but fusion_weights (r) and fusion_bias (1) to its optimiser; ours trains those too.
# The authors' feature widths and ours (their counts: tests/model/test_kinds.py AUTHORS_COUNTS).
WIDTHS = [("mosi", (768, 5, 20)), ("mosi", (300, 74, 35)), ("mosei", (768, 74, 35)), ("mosei", (300, 74, 35))]
AUTHORS_OPTIMISED = {
    ("mosi", (768, 5, 20)): 505_067,
    ("mosi", (300, 74, 35)): 268_643,
    ("mosei", (768, 74, 35)): 508_470,
    ("mosei", (300, 74, 35)): 268_854,
}


def closed_form(cfg: LMFConfig) -> int:
    """LMF's parameters counted by hand, part by part."""
    def linear(i, o):
        return i * o + o

    def feature_subnet(i, h):  # BatchNorm (weight, bias) + three Linear layers
        return 2 * i + linear(i, h) + 2 * linear(h, h)

    lstm = 4 * cfg.text_hidden * (cfg.text_dim + cfg.text_hidden) + 2 * 4 * cfg.text_hidden  # W_ih, W_hh, 2 biases
    factors = cfg.rank * ((cfg.audio_hidden + 1) + (cfg.vision_hidden + 1) + (cfg.text_out + 1))
    return (lstm + linear(cfg.text_hidden, cfg.text_out) + feature_subnet(cfg.audio_dim, cfg.audio_hidden)
            + feature_subnet(cfg.vision_dim, cfg.vision_hidden) + factors + cfg.rank + 1)


@pytest.mark.parametrize("dataset, dims", WIDTHS)
def test_parameter_count_is_the_closed_form(dataset, dims):
    cfg = dataclasses.replace(PAPER[dataset], text_dim=dims[0], audio_dim=dims[1], vision_dim=dims[2])
    ours = count_parameters(build_model(cfg, "lmf"))
    assert ours == closed_form(cfg)  # and the authors' count: tests/model/test_kinds.py
    # What MMSA's optimiser updates: all but the rank weights and the bias, which ours trains as well.
    assert ours - (cfg.rank + 1) == AUTHORS_OPTIMISED[dataset, dims]


def test_paper_sizes_are_the_authors_config():
    # MMSA config_regression.json, lmf.datasetParams (hidden_dims = [text, audio, vision]; text_out = text // 2).
    mosi, mosei = PAPER["mosi"], PAPER["mosei"]
    assert mosi == LMFConfig()
    assert (mosi.text_hidden, mosi.audio_hidden, mosi.vision_hidden, mosi.text_out, mosi.rank) == (128, 16, 128, 64, 3)
    assert (mosei.text_hidden, mosei.audio_hidden, mosei.vision_hidden, mosei.text_out, mosei.rank) == \
        (128, 16, 128, 64, 4)
    assert (mosi.audio_dropout, mosei.vision_dropout, mosi.factor_lr, mosei.factor_lr) == (0.3, 0.2, 1e-3, 1e-3)
    assert MODEL_KINDS["lmf"].paper is PAPER


def test_low_rank_fusion_by_hand():
    model = LMF(dataclasses.replace(TINY, audio_hidden=1, vision_hidden=1, text_out=1, rank=1))
    with torch.no_grad():
        model.audio_factor.copy_(torch.tensor([[1.0, 1.0]]))  # w_a·[1; 2] = 1 + 2 = 3
        model.vision_factor.copy_(torch.tensor([[0.0, 2.0]]))  # w_v·[1; 3] = 0 + 6 = 6
        model.text_factor.copy_(torch.tensor([[1.0, -1.0]]))  # w_l·[1; 5] = 1 - 5 = -4
        model.fusion_weights.copy_(torch.tensor([0.5]))
        model.fusion_bias.copy_(torch.tensor([1.0]))
    prediction, terms = model.fuse(torch.tensor([[2.0]]), torch.tensor([[3.0]]), torch.tensor([[5.0]]))
    assert terms.tolist() == [[-72.0]]  # 3 · 6 · (-4)
    assert prediction.tolist() == [-35.0]  # 0.5 · (-72) + 1


def test_low_rank_fusion_is_the_full_tensor_it_factorises():
    # W = Σ_i λ_i w_a^(i) ⊗ w_v^(i) ⊗ w_l^(i) applied to TFN's Z = [z_a; 1] ⊗ [z_v; 1] ⊗ [z_l; 1] (paper §3.2).
    torch.manual_seed(0)
    model = LMF(TINY)
    z_a, z_v, z_l = torch.randn(5, 3), torch.randn(5, 4), torch.randn(5, 5)
    W = torch.einsum("i,ia,iv,il->avl", model.fusion_weights, model.audio_factor, model.vision_factor,
                     model.text_factor)  # (Ha+1, Hv+1, To+1)
    full = tensor_fusion(z_a, z_v, z_l) @ W.flatten() + model.fusion_bias  # (B,)
    torch.testing.assert_close(model.fuse(z_a, z_v, z_l)[0], full)


def test_outputs_are_shaped():
    torch.manual_seed(0)
    out = LMF(TINY).eval()(*tiny_inputs())
    assert out.fusion.shape == (4, 2) and out.text.shape == (4, 5) and out.audio.shape == (4, 3)


def test_every_parameter_learns_and_the_fusion_has_its_own_rate():
    torch.manual_seed(0)
    model = LMF(TINY).train()
    out = model(*tiny_inputs())
    (out.prediction - torch.tensor([1.0, -1.0, 0.5, 2.0])).abs().mean().backward()
    # The rank weights and the bias too, which the authors' optimiser leaves out.
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    fusion, rest = model.parameter_groups(lr=1e-2, weight_decay=0.005)
    assert fusion["lr"] == 5e-4 and rest["lr"] == 1e-2 and fusion["weight_decay"] == rest["weight_decay"] == 0.005
    assert {id(p) for p in fusion["params"]} == {id(p) for p in (
        model.audio_factor, model.vision_factor, model.text_factor, model.fusion_weights, model.fusion_bias)}
    grouped = [id(p) for group in (fusion, rest) for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each parameter in exactly one group


def test_config_checks_name_the_field_and_value():
    with pytest.raises(ValueError, match="LMFConfig: rank = 0 must be >= 1"):
        LMFConfig(rank=0)
    with pytest.raises(ValueError, match="LMFConfig: audio_dropout = -0.1 must be in"):
        LMFConfig(audio_dropout=-0.1)
    with pytest.raises(ValueError, match="LMFConfig: factor_lr = 0.0 must be > 0"):
        LMFConfig(factor_lr=0.0)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['post_fusion_dropout'\]"):
        LMFConfig.from_dict({"post_fusion_dropout": 0.3})
    assert LMFConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="LMF: vision has 2 features, the config expects 3"):
        LMF(TINY)(torch.zeros(1, 6, 7), torch.zeros(1, 6, 4), torch.zeros(1, 6, 2), torch.tensor([2]))


def test_run_spec_and_schema_accept_lmf_sections():
    spec = RunSpec.from_dict({"kind": "lmf", "model": {"rank": 4}, "train": {"epochs": 1}})
    assert isinstance(spec.model, LMFConfig) and spec.model.rank == 4 and spec.loss.coefficients() == {"task": 1.0}
    config = {"datasets": {"toy": {"source": "synthetic", "baselines": {"lmf": {
        "model": {"rank": 4, "factor_lr": 5e-4}, "train": {"weight_decay": 0.005}}}}},
        "models": {"lmf": {"kind": "lmf", "model": {"audio_hidden": 8}}}}
    validate_config(copy.deepcopy(config), SCHEMA)
    bad = copy.deepcopy(config)
    bad["models"]["lmf"]["model"]["post_fusion_dim"] = 32  # a TFN key on an LMF variant
    with pytest.raises(ConfigError, match="post_fusion_dim"):
        validate_config(bad, SCHEMA)
    bad = copy.deepcopy(config)
    bad["datasets"]["toy"]["baselines"]["lmf"]["loss"] = {"lambda_cls": 0.1}
    with pytest.raises(ConfigError, match="lambda_cls"):
        validate_config(bad, SCHEMA)
