"""MMA (rider/model/baselines/mma.py): one adapter layer on a hand-worked case, padding, the parameter count at the sizes of
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
from rider.model.baselines.mma import MMA, PAPER, MMAConfig, MultimodalAdapterMixture

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


def test_paper_yaml_holds_the_paper_sizes():
    import yaml

    from conftest import REPO
    from rider.train.trainer import RunSpec

    baselines = yaml.safe_load((REPO / "configs/paper.yaml").read_text())["datasets"]
    for dataset, paper in (("synth_mosi", "mosi"), ("synth_mosei", "mosei")):
        spec = RunSpec.from_dict({"kind": "mma", **baselines[dataset]["baselines"]["mma"]})
        assert spec.model == dataclasses.replace(PAPER[paper], text_dim=spec.model.text_dim)


# --- text_encoder: lm, on a tiny BERT built offline (tests/tiny_bert.py) ---

@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from tiny_bert import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def lm_config(folder, **overrides) -> MMAConfig:
    return MMAConfig(text_encoder="lm", lm_path=str(folder), compression=8, dropout=0.0, **DIMS, **overrides)


def test_lm_is_frozen_outside_the_checkpoint_and_counted_like_the_features_mode(tiny_bert):
    model = MMA(lm_config(tiny_bert))
    names = [name for name, _ in model.named_parameters()]
    assert names and all(name.startswith(("adapters.", "head.")) for name in names)
    assert set(model.state_dict()) == set(names)
    assert len(model.adapters) == 2  # one per layer of the tiny BERT
    # Width 16 (the tiny BERT's), r = 16 // 8 = 2, per layer 3 * (16*2 + 2 + 2*16 + 16) = 246, U_A 74*2 + 2 = 150
    # with DIMS' audio 3: 3*2 + 2 = 8, U_V 2*2 + 2 = 6, router (16 + 3 + 2) * 3 + 3 = 66: 326; 2 layers + head 17 = 669.
    assert count_parameters(model) == 669
    features = MMA(MMAConfig(layers=2, compression=8, **{**DIMS, "text_dim": 16}))
    assert count_parameters(features) == count_parameters(model)
    model.train()
    assert not model._lm[1].training  # the PLM keeps dropout off


def test_words_reach_the_lm_with_a_zeroed_word_as_its_mask_token(tiny_bert):
    model = MMA(lm_config(tiny_bert))
    tokenizer = model._lm[0]
    words = np.array([["the", MASKED_WORD, "sp", "movie", "bad"], ["", "", "", "", ""]], dtype=object)
    lengths = torch.tensor([4, 0])  # "bad" is padding of sample 0
    audio = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    vision = torch.ones(2, 5, 2)
    inputs, audio_tokens, vision_tokens = model.lm_inputs(words, lengths, audio, vision)
    ids = inputs["input_ids"]
    expected = tokenizer.convert_tokens_to_ids(["[CLS]", "the", "[MASK]", "movie", "[SEP]"])
    assert ids[0].tolist() == expected  # 'sp' left out, 'bad' beyond the length never read
    assert ids[1].tolist()[:2] == tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])  # no words: two tokens
    # Token t carries the streams of its word: the, [MASK], movie are words 0, 1, 3; CLS and SEP get zeros.
    assert torch.equal(audio_tokens[0, 1:4], audio[0, [0, 1, 3]])
    assert audio_tokens[0, 0].abs().sum() == 0 and audio_tokens[0, 4].abs().sum() == 0
    assert vision_tokens[1].abs().sum() == 0


def test_adapters_run_inside_the_lm(tiny_bert):
    torch.manual_seed(0)
    model = MMA(lm_config(tiny_bert)).eval()
    tokenizer, lm, _ = model._lm
    words = np.array([["the", "movie", "was", "good", ""], ["not", "a", "plot", "", ""]], dtype=object)
    lengths = torch.tensor([4, 3])
    audio, vision = torch.randn(2, 5, 3), torch.randn(2, 5, 2)
    text = torch.zeros(2, 5, DIMS["text_dim"])
    with torch.no_grad():
        for adapter in model.adapters:
            for up in adapter.up:
                up.weight.zero_()
        # With every up-projection zero, each adapter returns its input: the plain PLM's masked mean feeds the head.
        inputs, _, _ = model.lm_inputs(words, lengths, audio, vision)
        plain = lm(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        expected = model.head((plain * mask).sum(1) / mask.sum(1)).squeeze(-1)
        assert torch.allclose(model(text, audio, vision, lengths, words=words).prediction, expected, atol=1e-6)
        # The audio expert of the last layer now writes (after the first, the next layer's LayerNorm would shrink it).
        model.adapters[-1].up[1].weight.fill_(1.0)
        changed = model(text, audio, vision, lengths, words=words).prediction
        # ... and what it writes depends on the audio.
        again = model(text, audio * 3, vision, lengths, words=words).prediction
    assert (changed - expected).abs().min() > 1e-3 and (changed - again).abs().min() > 1e-3
    with pytest.raises(ValueError, match="words"):
        model(text, audio, vision, lengths)


def test_noise_and_missing_text_mark_the_words():
    from rider.stress.missing import zero_absent
    from rider.stress.noise import apply_noise

    words = np.array([["a", "b", "c"], ["d", "e", ""]], dtype=object)
    arrays = {"text_glove": np.ones((2, 3, 2), np.float32), "audio": np.ones((2, 3, 1), np.float32),
              "vision": np.ones((2, 3, 1), np.float32), "lengths": np.array([3, 2]), "words": words}
    text_mask = np.array([[False, True, False], [True, False, False]])
    none = np.zeros((2, 3), bool)
    noisy = apply_noise(arrays, {"text": text_mask, "audio": none, "vision": none}, {}, {}, 0.0)
    assert noisy["words"].tolist() == [["a", MASKED_WORD, "c"], [MASKED_WORD, "e", ""]]
    assert words.tolist() == [["a", "b", "c"], ["d", "e", ""]]  # the input is never modified
    absent = zero_absent(arrays, np.array([[True, True, True], [False, True, True]]))
    assert absent["words"].tolist() == [["a", "b", "c"], [MASKED_WORD, MASKED_WORD, ""]]  # padding stays ''


def test_the_cache_stores_words_and_an_older_cache_asks_for_a_rebuild(tiny_dataset, tmp_path):
    import shutil

    import h5py

    from rider.data.cache import read_words, validate_cache
    from rider.errors import DataError

    words = read_words(tiny_dataset["cache"], "train")
    with h5py.File(tiny_dataset["cache"], "r") as handle:
        lengths = handle["train/lengths"][:]
    real = np.arange(words.shape[1])[None, :] < lengths[:, None]
    assert (words[real] != "").all() and (words[~real] == "").all()
    old = tmp_path / "old.h5"
    shutil.copy(tiny_dataset["cache"], old)
    with h5py.File(old, "a") as handle:
        for split in ("train", "valid", "test"):
            del handle[f"{split}/words"]
    validate_cache(old)  # still a valid cache for every model that reads no words
    with pytest.raises(DataError, match=r"old.h5: no /train/words; rebuild the cache"):
        read_words(old, "train")


def test_lm_mode_trains_and_is_evaluated_under_every_stressor(tiny_dataset, tiny_bert, tmp_path):
    from rider.evaluate import evaluate
    from rider.stress import build_plan
    from rider.train.trainer import RunSpec, train

    spec = RunSpec.from_dict({"kind": "mma", "model": {"text_encoder": "lm", "lm_path": str(tiny_bert)},
                              "train": {"epochs": 2, "lr": 1e-3, "batch_size": 16}})
    metadata = train(spec, tiny_dataset["cache"], tmp_path / "run", seed=0, threads=1)
    assert metadata["parameters"] == 2 * adapter_layer_count(16, 74, 35, 8) + 17  # adapters and head only
    plan = build_plan(tiny_dataset["cache"], tmp_path / "plan.h5", seed=0)
    result = evaluate(tmp_path / "run", tiny_dataset["cache"], plan, tmp_path / "eval.json", threads=1)
    assert set(result["stress"]) == {"noise", "missing", "conflict"}
    noise = [point["metrics"]["mae"] for point in result["stress"]["noise"]]
    assert all(np.isfinite(noise)) and noise[0] == pytest.approx(result["clean"]["mae"])
    assert len(set(noise)) > 1  # masked words change what the PLM reads
