"""MISA (rider/model/baselines/misa.py): the auxiliary losses on hand-worked cases, the sLSTM against packed sequences,
padding, and the faithfulness count against the authors' implementation (MMSA 2.2.1)."""

import dataclasses
import math

import pytest
import torch
import torch.nn as nn
import yaml
from torch.nn.utils.rnn import pack_padded_sequence

from rider.config import ConfigError, validate_config
from rider.model import MODEL_KINDS, build_model, count_parameters
from rider.model.baselines.misa import (
    PAPER, PAPER_LOSS, MISAConfig, MISALoss, UtteranceEncoder, cmd, difference_loss, misa_objective,
    orthogonality, reconstruction_loss, similarity_loss,
)
from rider.model.objective import Batch, weighted_loss

from conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

TINY = dict(hidden_size=8, fusion_ff=16, text_dim=7, audio_dim=5, vision_dim=3, max_len=6, dropout=0.0,
            fusion_dropout=0.0)


def tiny_inputs(B=4, L=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, L, 7, generator=g), torch.randn(B, L, 5, generator=g), torch.randn(B, L, 3, generator=g),
            torch.tensor([L, 3, 1, 0][:B]))


def test_cmd_on_a_hand_worked_case():
    # Means (1, 2) and (0, 2): distance 1. Centred x1 = ±(1, 2), x2 = 0: second moments (1, 4) vs 0 -> sqrt(17);
    # third moments 0 and 0; fourth (1, 16) vs 0 -> sqrt(257).
    x1 = torch.tensor([[0.0, 0.0], [2.0, 4.0]])
    x2 = torch.tensor([[0.0, 2.0], [0.0, 2.0]])
    assert cmd(x1, x2, 1).item() == pytest.approx(1.0)
    assert cmd(x1, x2, 2).item() == pytest.approx(1.0 + math.sqrt(17))
    assert cmd(x1, x2, 4).item() == pytest.approx(1.0 + math.sqrt(17) + math.sqrt(257))
    # The similarity loss averages the three pairs: (T, A) and (T, V) differ by the above, (A, V) not at all.
    shared = torch.stack([x1, x2, x2])
    assert similarity_loss(shared, 2).item() == pytest.approx(2 * (1.0 + math.sqrt(17)) / 3)
    # Equal samples: zero, with a finite gradient (a sqrt of 0 would give NaN).
    x = torch.tensor([[0.2, 0.4], [0.6, 0.8]], requires_grad=True)
    value = cmd(x, x.detach().clone(), 5)
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(x.grad).all()


def test_orthogonality_and_difference_loss_on_hand_worked_cases():
    # Centred over the batch and rows scaled to unit length: a -> [[1, 0], [-1, 0]], b -> [[0, 1], [0, -1]];
    # a^T b = [[0, 2], [0, 0]], mean of squares 4 / 4 = 1 (the 1e-6 added to the norms moves it by < 1e-5).
    a = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    b = torch.tensor([[0.0, 3.0], [0.0, -3.0]])
    assert orthogonality(a, b).item() == pytest.approx(1.0, abs=1e-5)
    assert orthogonality(a, b + 5.0).item() == pytest.approx(1.0, abs=1e-5)  # the batch mean is removed first
    assert orthogonality(a, torch.tensor([[0.0, 3.0], [0.0, 3.0]])).item() == 0.0  # constant over the batch
    # L_diff: three private-shared pairs and three private-private pairs. With private = (a, a, b) and every
    # shared = b: (a, b) twice, (b, b) once, then (a, a), (a, b), (a, b) across the privates.
    # (a, a) and (b, b): a^T a = [[2, 0], [0, 0]] -> 4 / 4 = 1; so L_diff = 6 x 1.
    private, shared = torch.stack([a, a, b]), torch.stack([b, b, b])
    assert difference_loss(private, shared).item() == pytest.approx(6.0, abs=1e-4)
    # One feature per vector, four samples, columns from orthogonal (and centred) Hadamard rows: every pair is
    # uncorrelated over the batch, so L_diff = 0. With shared = private, each own pair gives (4 x 1)^2 = 16.
    h = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]])[..., None]  # (3, 4, 1)
    assert difference_loss(h, h.roll(1, dims=0)).item() == pytest.approx(0.0, abs=1e-6)
    assert difference_loss(h, h).item() == pytest.approx(3 * 16.0, rel=1e-5)


def test_reconstruction_loss_on_a_hand_worked_case():
    utterance = torch.zeros(3, 2, 2)
    reconstruction = torch.zeros(3, 2, 2)
    reconstruction[0] = 2.0  # text: mean squared error 4; audio and vision: 0
    reconstruction[2, 0, 0] = 4.0  # vision: 16 / 4 = 4
    assert reconstruction_loss(reconstruction, utterance).item() == pytest.approx((4.0 + 0.0 + 4.0) / 3)


def test_the_objective_names_its_terms_and_the_loss_weights_them():
    model = build_model(MISAConfig(**TINY), "misa")
    text, audio, vision, lengths = tiny_inputs()
    labels = torch.tensor([2.5, -2.0, 3.0, 1.5])  # not two errors of each sign: the head bias gets a gradient
    output = model(text, audio, vision, lengths)
    terms = misa_objective(model.cfg, MISALoss())(output, Batch(text, audio, vision, lengths, labels, torch.arange(4)))
    assert set(terms) == {"task", "sim", "diff", "recon"}
    assert terms["task"].item() == pytest.approx((output.prediction - labels).abs().mean().item())
    total, _ = weighted_loss(terms, MISALoss(sim_weight=0.5, diff_weight=0.25, recon_weight=2.0).coefficients())
    expected = terms["task"] + 0.5 * terms["sim"] + 0.25 * terms["diff"] + 2.0 * terms["recon"]
    assert total.item() == pytest.approx(expected.item())
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_utterance_encoder_equals_packed_bidirectional_rnns(cell):
    """What the authors compute with pack_padded_sequence, from our padded forward/backward RNNs."""
    torch.manual_seed(0)
    D, H = 5, 4
    ours = UtteranceEncoder(D, H, cell)
    rnn = nn.LSTM if cell == "lstm" else nn.GRU
    first, second = rnn(D, H, bidirectional=True), rnn(2 * H, H, bidirectional=True)
    for packed, forward, backward in ((first, ours.forward1, ours.backward1), (second, ours.forward2, ours.backward2)):
        for name, parameter in forward.named_parameters():
            getattr(packed, name).data.copy_(parameter)
            getattr(packed, f"{name}_reverse").data.copy_(getattr(backward, name))
    x, lengths = torch.randn(3, 6, D), torch.tensor([6, 2, 4])
    x[1, 2:] = 7.0  # padding that must not matter

    def final(out):
        return out[0] if cell == "lstm" else out

    h1 = final(first(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))[1])  # (2, B, H)
    outputs, _ = nn.utils.rnn.pad_packed_sequence(
        first(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))[0], batch_first=True)
    normed = ours.norm(outputs)
    h2 = final(second(pack_padded_sequence(normed, lengths, batch_first=True, enforce_sorted=False))[1])
    expected = torch.cat([h1[0], h1[1], h2[0], h2[1]], dim=-1)  # (B, 4H)
    torch.testing.assert_close(ours(x, lengths), expected)


def test_config_and_loss_round_trip_and_name_bad_values():
    cfg = MISAConfig(text_rnn_dim=16, rnncell="gru")
    assert MISAConfig.from_dict(cfg.to_dict()) == cfg
    assert MISALoss.from_dict(MISALoss(sim_weight=0.8).to_dict()) == MISALoss(sim_weight=0.8)
    with pytest.raises(ValueError, match="text_rnn_dim = 0"):
        MISAConfig(text_rnn_dim=0)
    with pytest.raises(ValueError, match="fusion_heads = 3"):
        MISAConfig(fusion_heads=3)
    with pytest.raises(ValueError, match="rnncell = 'rnn'"):
        MISAConfig(rnncell="rnn")
    with pytest.raises(ValueError, match="diff_weight = -1"):
        MISALoss(diff_weight=-1)
    with pytest.raises(ValueError, match="unknown key"):
        MISALoss.from_dict({"sp_weight": 1.0})


# The authors' counts: MMSA 2.2.1 (PyPI) in a scratch venv, AMIO(args) built from get_config_regression("misa",
# dataset) with MMSA's own feature dims (MOSI [768, 5, 20], MOSEI [768, 74, 35]), seq_lens 50; BERT built offline
# as BertModel(BertConfig()) (bert-base-uncased sizes); trainable parameters counted, the BERT text encoder
# (109,482,240) left out (/work/scratch/baselines/count_params.py -> counts.json: params_without_text_encoder).
# Their totals, 1,138,033 (MOSI) and 1,435,105 (MOSEI), are held against ours in tests/model/test_kinds.py.
MMSA_DIMS = {"mosi": (768, 5, 20), "mosei": (768, 74, 35)}
# Parts of MMSA's count per module at those dims (counts.json, by_submodule).
MMSA_AUDIO = {"mosi": 480 + 680 + 20, "mosei": 88_800 + 132_608 + 296}  # arnn1 + arnn2 + alayer_norm
MMSA_VISION = {"mosi": 6_720 + 9_920 + 80, "mosei": 20_160 + 29_960 + 140}  # vrnn1 + vrnn2 + vlayer_norm


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_counts_without_the_text_encoder_and_per_path(dataset):
    t, a, v = MMSA_DIMS[dataset]
    cfg = dataclasses.replace(PAPER[dataset], text_dim=t, audio_dim=a, vision_dim=v)
    with torch.device("meta"):  # shapes only: 25 M parameters need no values to be counted
        model = build_model(cfg, "misa")
    # Without our text sLSTM (the total against MMSA's: tests/model/test_kinds.py).
    assert count_parameters(model) - count_parameters(model.encoders[0]) == {"mosi": 1_429_357, "mosei": 1_726_429}[dataset]
    # Audio and vision paths are the authors' to the parameter.
    assert count_parameters(model.encoders[1]) == MMSA_AUDIO[dataset]
    assert count_parameters(model.encoders[2]) == MMSA_VISION[dataset]


def test_registered_with_the_authors_sizes():
    kind = MODEL_KINDS["misa"]
    assert kind.config is MISAConfig and kind.loss is MISALoss and kind.absent == "zeros"
    assert kind.modalities == ("text", "audio", "vision") and not kind.routed
    assert kind.paper["mosei"].dropout == 0.5 and PAPER_LOSS["mosei"].coefficients()["sim"] == 0.8


def test_the_schema_describes_every_field_and_checks_a_misa_variant():
    schema = yaml.safe_load(SCHEMA.read_text())["$defs"]
    assert set(schema["misa_model"]["properties"]) == {f.name for f in dataclasses.fields(MISAConfig)}
    assert set(schema["misa_loss"]["properties"]) == {f.name for f in dataclasses.fields(MISALoss)}
    config = {"datasets": {"toy": {"source": "synthetic", "baselines": {"misa": {
        "model": {"hidden_size": 32, "text_rnn_dim": None}, "loss": {"sim_weight": 0.8}, "train": {"lr": 1e-3}}}}},
        "models": {"misa": {"kind": "misa", "model": {"dropout": 0.5}}}}
    validate_config(config, SCHEMA)
    bad = {"models": {"misa": {"kind": "misa", "model": {"d_model": 32}}}}
    with pytest.raises(ConfigError, match="d_model"):
        validate_config(bad, SCHEMA)
