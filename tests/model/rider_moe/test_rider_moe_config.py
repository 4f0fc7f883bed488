"""Model and loss configuration: the paper's defaults, and loud failure on a key or value config.yaml got wrong."""

import dataclasses

import pytest

from rider.model import build_model, count_parameters
from rider.model.rider_moe.config import LossWeights, ModelConfig, paper_config
from rider.model.rider_moe.network import RiderMoE


def test_defaults_are_the_mosi_values_of_appendix_c5():
    cfg = ModelConfig()
    assert (cfg.d_model, cfg.expert_layers, cfg.expert_heads, cfg.expert_ff, cfg.dropout) == (128, 4, 4, 256, 0.3)
    assert (cfg.num_classes, cfg.alpha, cfg.gamma, cfg.prior_strength, cfg.eps) == (7, 0.7, 1.0, 1.0, 1e-8)
    assert (cfg.text_dim, cfg.audio_dim, cfg.vision_dim, cfg.max_len) == (300, 74, 35, 50)
    assert cfg.use_consensus and cfg.masked_views and not cfg.single_expert
    assert LossWeights() == LossWeights(lambda_cls=0.05, lambda_pid=0.05, lambda_syn=0.05, use_syn_off=True,
                                        use_syn_res=True)


def test_mosei_values_of_appendix_c5():
    cfg, weights = paper_config("mosei")
    assert (cfg.d_model, cfg.expert_layers, cfg.expert_heads, cfg.expert_ff, cfg.dropout) == (512, 8, 8, 1024, 0.3)
    assert (weights.lambda_cls, weights.lambda_pid, weights.lambda_syn) == (0.1, 0.05, 0.05)
    with pytest.raises(ValueError, match="'iemocap'"):
        paper_config("iemocap")


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().d_model = 64


def test_from_dict_round_trips_and_accepts_ints_for_floats():
    cfg = ModelConfig.from_dict({"d_model": 64, "expert_heads": 2, "prior_strength": 0, "use_consensus": False})
    assert cfg.d_model == 64 and cfg.prior_strength == 0.0 and isinstance(cfg.prior_strength, float)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert LossWeights.from_dict(LossWeights(lambda_pid=0).to_dict()) == LossWeights(lambda_pid=0.0)


@pytest.mark.parametrize("cls, key", [(ModelConfig, "use_concensus"), (LossWeights, "lambda_PID")])
def test_from_dict_rejects_an_unknown_key_by_name(cls, key):
    with pytest.raises(ValueError, match=repr(key)):
        cls.from_dict({key: True})


@pytest.mark.parametrize("values, message", [
    ({"d_model": "128"}, "d_model = '128' is a str, expected int"),
    ({"masked_views": 0}, "masked_views = 0 is a int, expected bool"),
    ({"d_model": 130}, "not divisible by expert_heads"),
    ({"mask_kind": "random"}, "mask_kind = 'random'"),
    ({"alpha": 1.5}, "alpha = 1.5"),
    ({"num_classes": 5}, "num_classes = 5"),
    ({"prior_strength": -1}, "prior_strength = -1.0"),
])
def test_from_dict_rejects_bad_values_with_the_value_in_the_message(values, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ModelConfig.from_dict(values, where="config.yaml: model")


def test_where_names_the_source():
    with pytest.raises(ValueError, match=r"^config.yaml: loss: unknown key\(s\) \['x'\]"):
        LossWeights.from_dict({"x": 1}, where="config.yaml: loss")
    with pytest.raises(ValueError, match="lambda_syn = -0.1"):
        LossWeights.from_dict({"lambda_syn": -0.1})


def test_build_model_from_a_plain_dict():
    model = build_model({"d_model": 16, "expert_layers": 1, "expert_heads": 2, "expert_ff": 16, "encoder_heads": 2})
    assert isinstance(model, RiderMoE) and model.cfg.d_model == 16
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="'dmodel'"):
        build_model({"dmodel": 16})
