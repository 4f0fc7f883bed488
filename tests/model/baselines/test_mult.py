"""MulT (rider/model/baselines/mult.py): the authors' parameter counts, padding that never reaches the prediction, the
last real step as read-out, the authors' causal mask, and the configuration."""

import copy
import dataclasses
import math

import pytest
import torch

from rider.config import ConfigError, validate_config
from rider.model import MODEL_KINDS, TaskLoss, count_parameters
from rider.model.baselines.mult import PAPER, MulT, MultConfig
from rider.model.crossmodal import sinusoids
from rider.train.trainer import RunSpec

from conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def tiny(**overrides) -> MultConfig:
    base = dict(d_model=8, heads=2, layers=1, self_layers=1, kernel_text=3, kernel_audio=1, kernel_vision=2,
                text_dim=7, audio_dim=5, vision_dim=4, max_len=10)
    return MultConfig(**{**base, **overrides})


def batch(lengths, L=10, seed=0):
    """(text, audio, vision, lengths) with zeros beyond each sample's length, as the cache stores them."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    words = (torch.arange(L)[None, :] < lengths[:, None])[..., None]
    streams = [torch.randn(len(lengths), L, dim, generator=g) * words for dim in (7, 5, 4)]
    return (*streams, lengths)


# --- Faithfulness: parameter counts of the authors' implementation --------------------------------------------

# Measured with MMSA 2.2.1 (PyPI `mmsa`, torch 2.13.0, CPU) in a scratch environment, never a dependency here:
# AMIO(get_config_regression("mult", dataset)) with train_mode "regression", seq_lens [50, 50, 50], use_bert
# false (MMSA's default for MulT: no text encoder, the text features go straight to the convolution), and
# feature_dims as given; the trainable parameters of the whole model (/work/scratch/baselines/count_params.py,
# counts.json). MMSA's own feature files: MOSI [768, 5, 20], MOSEI [768, 74, 35]; ours: [300, 74, 35].
def test_parameter_count_by_part_at_the_mosi_size():
    """MMSA's MOSI submodules: proj_l 192,000 (768 x 50 x 5), proj_a 1,250, proj_v 5,000; 122,700 per
    crossmodal transformer (4 layers of 12d^2 + 13d, final LayerNorm 2d; d = 50); 485,400 per self-attention
    transformer (the same at 2d = 100); proj1 = proj2 = 90,300 (300 x 300 + 300); out_layer 301."""
    model = MulT(dataclasses.replace(PAPER["mosi"], text_dim=768, audio_dim=5, vision_dim=20))
    parts = {name: count_parameters(module) for name, module in model.named_children()}
    assert [count_parameters(model.conv[m]) for m in ("text", "audio", "vision")] == [192_000, 1_250, 5_000]
    assert {count_parameters(t) for t in model.crossmodal.values()} == {122_700} and len(model.crossmodal) == 6
    assert {count_parameters(t) for t in model.self_attention.values()} == {485_400} and len(model.self_attention) == 3
    assert (parts["proj1"], parts["proj2"], parts["out"]) == (90_300, 90_300, 301)


def test_defaults_are_mmsa_mosi_and_paper_has_both_datasets():
    cfg = MultConfig()
    assert (cfg.d_model, cfg.heads, cfg.layers, cfg.self_layers) == (50, 10, 4, 4)
    assert (cfg.kernel_text, cfg.kernel_audio, cfg.kernel_vision) == (5, 5, 5)
    assert (cfg.text_dropout, cfg.embed_dropout, cfg.attn_dropout, cfg.attn_dropout_audio, cfg.attn_dropout_vision,
            cfg.relu_dropout, cfg.res_dropout, cfg.output_dropout) == (0.5, 0.2, 0.3, 0.2, 0.0, 0.0, 0.0, 0.5)
    assert cfg.causal and not cfg.position_embedding and cfg.readout == "last_step"  # MMSA 2.2.1's MulT
    mosei = PAPER["mosei"]
    assert (mosei.d_model, mosei.heads, mosei.kernel_audio, mosei.kernel_vision) == (30, 6, 1, 3)
    assert (mosei.text_dropout, mosei.embed_dropout, mosei.attn_dropout) == (0.3, 0.0, 0.4)
    kind = MODEL_KINDS["mult"]
    assert kind.config is MultConfig and kind.loss is TaskLoss and kind.absent == "zeros" and not kind.routed
    assert kind.modalities == ("text", "audio", "vision") and set(kind.paper) == {"mosi", "mosei"}


# --- Masking and read-out ---------------------------------------------------------------------------------------

def test_the_mask_is_the_authors_causal_mask_over_real_keys():
    """Query i sees key j when j <= i + |Tk - Tq| (Tq = 3, Tk = 5: offset 2) and j is real (first 4 keys)."""
    model = MulT(tiny())
    mask = model.mask(3, 5, torch.tensor([4, 0]), torch.float32)
    allowed = mask == 0
    expected_first = torch.tensor([[1, 1, 1, 0, 0],
                                   [1, 1, 1, 1, 0],
                                   [1, 1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(allowed[0, 0], expected_first)
    # An empty sample sees its first step only, so every softmax row has a key.
    assert torch.equal(allowed[1, 0], torch.tensor([[1, 0, 0, 0, 0]] * 3, dtype=torch.bool))
    assert mask[0, 0, 0, 3] == float("-inf")
    not_causal = MulT(tiny(causal=False)).mask(3, 5, torch.tensor([4, 0]), torch.float32) == 0
    assert not_causal.shape == (2, 1, 1, 5) and torch.equal(not_causal[0, 0, 0], torch.tensor([1, 1, 1, 1, 0]).bool())


def test_sinusoids_by_hand():
    """dim 4: two frequencies, 1 and 10000^-1; sines then cosines; positions numbered from 1."""
    table = sinusoids(2, 4)
    expected = torch.tensor([[math.sin(1), math.sin(1e-4), math.cos(1), math.cos(1e-4)],
                             [math.sin(2), math.sin(2e-4), math.cos(2), math.cos(2e-4)]])
    torch.testing.assert_close(table, expected)
    assert sinusoids(3, 5).shape == (3, 5) and torch.all(sinusoids(3, 5)[:, 4] == 0)


def test_shapes_gradients_and_an_empty_sample():
    torch.manual_seed(0)
    model = MulT(tiny(embed_dropout=0.0, text_dropout=0.0, attn_dropout=0.0, attn_dropout_audio=0.0,
                      output_dropout=0.0, readout="last_real"))
    text, audio, vision, lengths = batch([10, 4, 1, 0])
    out = model(text, audio, vision, lengths)
    assert out.prediction.shape == (4,) and out.fused.shape == (4, 6 * 8)
    assert torch.isfinite(out.prediction).all()
    assert torch.all(out.fused[3] == 0)  # nothing said: a zero read-out
    (out.prediction - torch.arange(4.0)).abs().mean().backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []


def test_what_lies_past_the_lengths_never_reaches_the_last_real_readout():
    """The generic test (tests/model/test_kinds.py) holds the default read-out, last_step, whose padded steps are
    attended as zeros, like the authors' zero padding; here the other one."""
    torch.manual_seed(0)
    model = MulT(tiny(readout="last_real")).eval()
    text, audio, vision, lengths = batch([10, 6, 3, 0])
    clean = model(text, audio, vision, lengths).prediction
    noisy = [x.clone() for x in (text, audio, vision)]
    for x in noisy:
        for b, n in enumerate(lengths.tolist()):
            x[b, n:] = 50.0 * torch.randn_like(x[b, n:])
    torch.testing.assert_close(model(*noisy, lengths).prediction, clean)


def test_the_last_real_readout_does_not_depend_on_the_batch():
    """last_real cuts each batch to its longest sample (plus the widest kernel): a sample predicts the same alone
    and beside a full-length one (last_step keeps every padded step: tests/model/test_kinds.py)."""
    torch.manual_seed(0)
    model = MulT(tiny(readout="last_real")).eval()
    text, audio, vision, lengths = batch([10, 5, 2])
    together = model(text, audio, vision, lengths).prediction
    for b in (1, 2):
        alone = model(text[b:b + 1], audio[b:b + 1], vision[b:b + 1], lengths[b:b + 1]).prediction
        torch.testing.assert_close(alone, together[b:b + 1])


def test_the_last_real_word_reaches_the_prediction():
    """The read-out is the last real step, which under the causal mask is the one step that has seen every word:
    a change at the last word of a short sample changes its prediction."""
    torch.manual_seed(0)
    model = MulT(tiny(readout="last_real")).eval()
    text, audio, vision, lengths = batch([4])
    before = model(text, audio, vision, lengths).prediction
    changed = audio.clone()
    changed[0, 3] += 1.0
    assert not torch.allclose(model(text, changed, vision, lengths).prediction, before)


def test_the_two_readouts_agree_on_full_length_samples_and_differ_on_short_ones():
    """On a full-length sample the last real step is the last step and no key is padding, so the authors'
    read-out and ours coincide; on a short one the authors' step T - 1 lies in the padding and has attended over
    the padded steps, ours is the last real step."""
    torch.manual_seed(0)
    authors = MulT(tiny(readout="last_step")).eval()
    ours = MulT(tiny(readout="last_real")).eval()
    ours.load_state_dict(authors.state_dict())
    text, audio, vision, lengths = batch([10, 10, 4, 1])
    a, o = authors(text, audio, vision, lengths), ours(text, audio, vision, lengths)
    torch.testing.assert_close(a.prediction[:2], o.prediction[:2])
    assert not torch.allclose(a.prediction[2:], o.prediction[2:])
    assert torch.isfinite(a.prediction).all()


def test_the_authors_readout_sees_every_real_step_through_the_padding():
    """With last_step, step T - 1 (padding, for a short sample) has seen every real word under the causal mask:
    a change at the first word or the last changes the prediction."""
    torch.manual_seed(0)
    model = MulT(tiny(readout="last_step")).eval()
    text, audio, vision, lengths = batch([4])
    before = model(text, audio, vision, lengths).prediction
    for position in (0, 3):
        changed = audio.clone()
        changed[0, position] += 1.0
        assert not torch.allclose(model(text, changed, vision, lengths).prediction, before)


def test_positions_go_on_the_real_steps_only_as_the_authors_number_them():
    """The authors' positional embedding gives a step whose first feature is exactly 0 (padding) none: with the
    real steps given, positions 1..n go on them and the padded steps stay zero; without, every step has one."""
    transformer = MulT(tiny(position_embedding=True)).crossmodal["audio_to_text"].eval()
    zeros = torch.zeros(2, 5, 8)
    embedded = transformer.embed(zeros, torch.tensor([2, 5]))
    table = sinusoids(10, 8)
    torch.testing.assert_close(embedded[0, :2], table[:2])
    assert torch.all(embedded[0, 2:] == 0)
    torch.testing.assert_close(embedded[1], table[:5])
    torch.testing.assert_close(transformer.embed(zeros)[0], table[:5])


def test_inputs_are_checked():
    model = MulT(tiny())
    text, audio, vision, lengths = batch([4])
    with pytest.raises(ValueError, match="audio has 6 features, the config expects 5"):
        model(text, torch.zeros(1, 10, 6), vision, lengths)
    with pytest.raises(ValueError, match="max_len = 10"):
        model(torch.zeros(1, 11, 7), torch.zeros(1, 11, 5), torch.zeros(1, 11, 4), lengths)
    with pytest.raises(ValueError, match="widest kernel"):
        model(text[:, :2], audio[:, :2], vision[:, :2], torch.tensor([2]))


# --- Configuration ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values, message", [
    ({"d_model": 50, "heads": 3}, "d_model = 50 is not divisible by heads = 3"),
    ({"layers": 0}, "layers = 0 must be >= 1"),
    ({"kernel_audio": 60}, "kernel_audio = 60 is longer than max_len = 50"),
    ({"embed_dropout": 1.0}, r"embed_dropout = 1.0 must be in \[0, 1\)"),
])
def test_bad_config_values_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        MultConfig.from_dict(values)


def test_config_round_trips_and_rejects_unknown_keys():
    cfg = MultConfig.from_dict({"d_model": 32, "heads": 4, "causal": False})
    assert MultConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="nlevels"):
        MultConfig.from_dict({"nlevels": 2})
    spec = RunSpec.from_dict({"kind": "mult", "model": {"d_model": 16, "heads": 2}, "train": {"grad_clip": 0.8}})
    assert isinstance(spec.model, MultConfig) and isinstance(spec.loss, TaskLoss)


def test_schema_checks_mult_sections():
    config = {"datasets": {"toy": {"source": "synthetic",
                                   "baselines": {"mult": {"model": {"d_model": 32, "heads": 4},
                                                          "train": {"lr": 2.0e-3}}}}},
              "models": {"mult": {"kind": "mult", "model": {"layers": 1}}}}
    validate_config(copy.deepcopy(config), SCHEMA)
    bad = copy.deepcopy(config)
    bad["datasets"]["toy"]["baselines"]["mult"]["model"]["nlevels"] = 2
    with pytest.raises(ConfigError, match="nlevels"):
        validate_config(bad, SCHEMA)
    bad = copy.deepcopy(config)
    bad["models"]["mult"]["model"] = {"expert_layers": 2}  # a RIDER-MoE key on a MulT variant
    with pytest.raises(ConfigError, match="expert_layers"):
        validate_config(bad, SCHEMA)
