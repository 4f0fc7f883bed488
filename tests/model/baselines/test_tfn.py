"""TFN (rider.model.baselines.tfn): the tensor fusion layer on a hand-worked case, padding that never leaks, the config, and
the parameter count against the authors' implementation (MMSA 2.2.1) at their MOSI and MOSEI sizes."""

import copy
import dataclasses

import pytest
import torch

from rider.config import ConfigError, validate_config
from rider.model import MODEL_KINDS, build_model, count_parameters
from rider.model.baselines.tfn import PAPER, TFN, TFNConfig, tensor_fusion
from rider.model.subnetworks import TextSubNet, masked_mean
from rider.train.trainer import RunSpec

from conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TINY = TFNConfig(text_hidden=8, audio_hidden=3, vision_hidden=4, text_out=5, post_fusion_dim=6, text_dim=7,
                 audio_dim=4, vision_dim=3, max_len=6, audio_dropout=0.0, vision_dropout=0.0, post_fusion_dropout=0.0)


def tiny_inputs(B=4, L=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, L, 7, generator=g), torch.randn(B, L, 4, generator=g), torch.randn(B, L, 3, generator=g),
            torch.tensor([6, 3, 1, 0][:B]))


# The authors' counts: MMSA 2.2.1 (PyPI `mmsa`, beside torch 2.13.0 in a scratch venv), AMIO(args) built from
# get_config_regression("tfn", dataset) in regression mode with feature_dims set and seq_lens 50, trainable
# parameters summed (requires_grad; the fixed output_range/output_shift are not trainable). "mmsa dims" are the
# feature widths of MMSA's own processed files (MOSI: 768-d BERT tokens, 5 audio, 20 vision; MOSEI: 768, 74, 35);
# "our dims" are our cache's (GloVe 300, COVAREP 74, Facet 35). MMSA's trainer gives all of them to Adam.
# The authors' feature widths and ours (their counts: tests/model/test_kinds.py AUTHORS_COUNTS).
WIDTHS = [("mosi", (768, 5, 20)), ("mosi", (300, 74, 35)), ("mosei", (768, 74, 35)), ("mosei", (300, 74, 35))]


def closed_form(cfg: TFNConfig) -> int:
    """TFN's parameters counted by hand, part by part."""
    def linear(i, o):
        return i * o + o

    def feature_subnet(i, h):  # BatchNorm (weight, bias) + three Linear layers
        return 2 * i + linear(i, h) + 2 * linear(h, h)

    lstm = 4 * cfg.text_hidden * (cfg.text_dim + cfg.text_hidden) + 2 * 4 * cfg.text_hidden  # W_ih, W_hh, 2 biases
    fused = (cfg.audio_hidden + 1) * (cfg.vision_hidden + 1) * (cfg.text_out + 1)
    P = cfg.post_fusion_dim
    return (lstm + linear(cfg.text_hidden, cfg.text_out) + feature_subnet(cfg.audio_dim, cfg.audio_hidden)
            + feature_subnet(cfg.vision_dim, cfg.vision_hidden) + linear(fused, P) + linear(P, P) + linear(P, 1))


@pytest.mark.parametrize("dataset, dims", WIDTHS)
def test_parameter_count_is_the_closed_form(dataset, dims):
    cfg = dataclasses.replace(PAPER[dataset], text_dim=dims[0], audio_dim=dims[1], vision_dim=dims[2])
    ours = count_parameters(build_model(cfg, "tfn"))
    assert ours == closed_form(cfg)  # and the authors' count: tests/model/test_kinds.py


def test_paper_sizes_are_the_authors_config():
    # MMSA config_regression.json, tfn.datasetParams (hidden_dims = [text, audio, vision]).
    mosi, mosei = PAPER["mosi"], PAPER["mosei"]
    assert mosi == TFNConfig()
    assert (mosi.text_hidden, mosi.audio_hidden, mosi.vision_hidden, mosi.text_out, mosi.post_fusion_dim) == \
        (128, 32, 128, 32, 64)
    assert (mosei.text_hidden, mosei.audio_hidden, mosei.vision_hidden, mosei.text_out, mosei.post_fusion_dim) == \
        (128, 16, 128, 128, 16)
    assert (mosi.audio_dropout, mosi.post_fusion_dropout, mosei.vision_dropout) == (0.3, 0.5, 0.4)
    assert MODEL_KINDS["tfn"].paper is PAPER


def test_tensor_fusion_by_hand():
    # [1, 2] ⊗ [1, 3] ⊗ [1, 5], flattened audio-major: every unimodal, bimodal and trimodal product and the 1.
    fused = tensor_fusion(torch.tensor([[2.0]]), torch.tensor([[3.0]]), torch.tensor([[5.0]]))
    assert fused.tolist() == [[1.0, 5.0, 3.0, 15.0, 2.0, 10.0, 6.0, 30.0]]
    # Two samples stay apart; sizes (Ha+1)(Hv+1)(To+1).
    fused = tensor_fusion(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[2.0], [1.0]]), torch.tensor([[1.0], [-1.0]]))
    assert fused.shape == (2, 3 * 2 * 2)
    # sample 0: a = [1, 1, 0], v = [1, 2], l = [1, 1]
    assert fused[0].tolist() == [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0]
    # sample 1: a = [1, 0, 0], v = [1, 1], l = [1, -1]
    assert fused[1].tolist() == [1.0, -1.0, 1.0, -1.0] + [0.0] * 8


def test_masked_mean_by_hand():
    x = torch.tensor([[[1.0], [3.0], [100.0]], [[4.0], [100.0], [100.0]], [[100.0], [100.0], [100.0]]])
    assert masked_mean(x, torch.tensor([2, 1, 0])).tolist() == [[2.0], [4.0], [0.0]]


def test_text_subnet_reads_the_state_after_the_last_word():
    torch.manual_seed(0)
    net = TextSubNet(7, 8, 5)
    text, _, _, lengths = tiny_inputs()
    out = net(text, lengths)
    for b, n in enumerate(lengths.tolist()):
        if n == 0:  # no word: the zero initial state through the Linear, i.e. its bias
            torch.testing.assert_close(out[b], net.linear.bias)
        else:  # the same as the LSTM run on the real words alone
            _, (h, _) = net.rnn(text[b:b + 1, :n])
            torch.testing.assert_close(out[b], net.linear(h[0, 0]))


def test_outputs_are_bounded_and_shaped():
    torch.manual_seed(0)
    model = TFN(TINY).eval()
    text, audio, vision, lengths = tiny_inputs()
    out = model(text, audio, vision, lengths)
    assert (out.prediction.abs() < 3).all()  # 6·sigmoid(o) − 3
    assert out.text.shape == (4, 5) and out.audio.shape == (4, 3) and out.vision.shape == (4, 4)


def test_every_parameter_learns():
    torch.manual_seed(0)
    model = TFN(TINY).train()
    out = model(*tiny_inputs())
    (out.prediction - torch.tensor([1.0, -1.0, 0.5, 2.0])).abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_config_checks_name_the_field_and_value():
    with pytest.raises(ValueError, match="TFNConfig: audio_hidden = 0 must be >= 1"):
        TFNConfig(audio_hidden=0)
    with pytest.raises(ValueError, match="TFNConfig: post_fusion_dropout = 1.0 must be in"):
        TFNConfig(post_fusion_dropout=1.0)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['text_dropout'\]"):
        TFNConfig.from_dict({"text_dropout": 0.3})
    assert TFNConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="TFN: audio has 5 features, the config expects 4"):
        TFN(TINY)(torch.zeros(1, 6, 7), torch.zeros(1, 6, 5), torch.zeros(1, 6, 3), torch.tensor([2]))


def test_run_spec_and_schema_accept_tfn_sections():
    spec = RunSpec.from_dict({"kind": "tfn", "model": {"text_out": 16}, "train": {"epochs": 1}})
    assert isinstance(spec.model, TFNConfig) and spec.model.text_out == 16 and spec.loss.coefficients() == {"task": 1.0}
    config = {"datasets": {"toy": {"source": "synthetic", "baselines": {"tfn": {
        "model": {"text_hidden": 64, "post_fusion_dropout": 0.2}, "loss": {}, "train": {"lr": 1e-3}}}}},
        "models": {"tfn": {"kind": "tfn", "model": {"audio_hidden": 8}}}}
    validate_config(copy.deepcopy(config), SCHEMA)
    bad = copy.deepcopy(config)
    bad["models"]["tfn"]["model"]["d_model"] = 32  # a RIDER-MoE key on a TFN variant
    with pytest.raises(ConfigError, match="d_model"):
        validate_config(bad, SCHEMA)
    bad = copy.deepcopy(config)
    bad["datasets"]["toy"]["baselines"]["tfn"]["model"]["text_dropout"] = 0.3
    with pytest.raises(ConfigError, match="text_dropout"):
        validate_config(bad, SCHEMA)
