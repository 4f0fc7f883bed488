"""MMA (rider/model/mma.py): one adapter layer on a hand-worked case, padding, the parameter count at the sizes of
``PAPER`` (no authors' code exists: the count is ours, with its arithmetic), and the language-model mode on a tiny
BERT built offline: adapters inside the frozen model, the words it reads, the mask token for a zeroed word, and a
training and stress evaluation end to end."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from rider.data.cache import MASKED_WORD
from rider.model import build_model, count_parameters
from rider.model.mma import MMA, PAPER, MMAConfig, MultimodalAdapterMixture

DIMS = {"text_dim": 6, "audio_dim": 3, "vision_dim": 2, "max_len": 5}
GELU_1 = 0.8413447460685429  # GELU(1) = 1 * Phi(1)


def hand_set_adapter(router_bias=(0.0, 0.0, 0.0)) -> MultimodalAdapterMixture:
    """Width 2, compression 2 (bottleneck 1), audio and vision one feature each: the text expert reads h[0], the
    audio expert a, the vision expert 2 v; each writes its bottleneck into channel 0."""
    adapter = MultimodalAdapterMixture(width=2, audio_dim=1, vision_dim=1, compression=2, dropout=0.0)
    with torch.no_grad():
        for p in adapter.parameters():
            p.zero_()
        adapter.down[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        adapter.audio_in.weight.fill_(1.0)
        adapter.vision_in.weight.fill_(2.0)
        for up in adapter.up:
            up.weight.copy_(torch.tensor([[1.0], [0.0]]))
        adapter.router.bias.copy_(torch.tensor(router_bias))
    return adapter.eval()


def test_adapter_mixture_by_hand():
    h, a, v = torch.tensor([[[1.0, 5.0]]]), torch.zeros(1, 1, 1), torch.full((1, 1, 1), 0.5)
    # z_T = GELU(1), z_A = GELU(0) = 0, z_V = GELU(2 * 0.5) = GELU(1); a zero router gives each expert 1/3:
    # h0 <- 1 + (GELU(1) + 0 + GELU(1)) / 3 = 1.56089650; h1 is written by no expert: 5.
    out, gates = hand_set_adapter()(h, a, v)
    assert torch.allclose(gates, torch.full((1, 1, 3), 1 / 3))
    assert out[0, 0].tolist() == pytest.approx([1 + 2 * GELU_1 / 3, 5.0], abs=1e-6)
    # Router bias (0, 0, ln 2): softmax = (1, 1, 2) / 4; h0 <- 1 + GELU(1) / 4 + GELU(1) / 2 = 1.63100856.
    out, gates = hand_set_adapter((0.0, 0.0, math.log(2.0)))(h, a, v)
    assert gates[0, 0].tolist() == pytest.approx([0.25, 0.25, 0.5])
    assert out[0, 0, 0].item() == pytest.approx(1 + 0.75 * GELU_1, abs=1e-6)


def small(**overrides) -> MMAConfig:
    return MMAConfig(layers=2, hidden=8, compression=4, dropout=0.0, **DIMS, **overrides)


def test_padding_does_not_leak_and_an_empty_sample_is_finite():
    torch.manual_seed(0)
    model = MMA(small()).eval()
    g = torch.Generator().manual_seed(1)
    text, audio, vision = (torch.randn(3, 5, DIMS[f"{m}_dim"], generator=g) for m in ("text", "audio", "vision"))
    lengths = torch.tensor([5, 2, 0])
    before = model(text, audio, vision, lengths).prediction
    for x in (text, audio, vision):
        x[1, 2:] = 100.0
        x[2] = -100.0
    after = model(text, audio, vision, lengths).prediction
    assert torch.equal(before, after) and torch.isfinite(after).all()


def test_bad_config_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="text_encoder"):
        MMAConfig(text_encoder="bert")
    with pytest.raises(ValueError, match="lm_path"):
        MMAConfig(text_encoder="lm")
    with pytest.raises(ValueError, match="hidden"):
        MMAConfig(text_encoder="lm", lm_path="/x", hidden=64)
    with pytest.raises(ValueError, match="compression"):
        MMAConfig(compression=0)


def adapter_layer_count(width: int, audio: int, vision: int, compression: int) -> int:
    r = width // compression
    experts = 3 * ((width * r + r) + (r * width + width))  # W_m and P_m of three experts
    return experts + (audio * r + r) + (vision * r + r) + ((width + audio + vision) * 3 + 3)  # U_A, U_V, router R


def test_parameter_count_at_the_paper_sizes():
    # No code of the authors' exists: this is our count at PAPER (BERT-base width and depth, compression 8), in
    # the frozen-feature mode on 768-wide frozen BERT features, which equals the lm mode's on BERT-base (no
    # projection; the PLM is frozen and not counted). Per layer, r = 768 // 8 = 96:
    #   experts 3 * (768*96 + 96 + 96*768 + 768) = 3 * 148,320 = 444,960; U_A 74*96 + 96 = 7,200;
    #   U_V 35*96 + 96 = 3,456; router (768 + 74 + 35) * 3 + 3 = 2,634; together 458,250.
    # 12 layers: 5,499,000; head 768 + 1 = 769; total 5,499,769 (the abstract: "6M").
    assert adapter_layer_count(768, 74, 35, 8) == 458_250
    for dataset in ("mosi", "mosei"):
        cfg = dataclasses.replace(PAPER[dataset], text_dim=768, audio_dim=74, vision_dim=35)
        assert count_parameters(build_model(cfg, "mma")) == 5_499_769
