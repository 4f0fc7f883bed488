"""The text-only model kind: RIDER-MoE's text encoder and a regression head, registered like RIDER-MoE.

Trained and evaluated by the same trainer, checkpoint and evaluation as every model; a dataset without audio
or vision (zero columns in the cache) trains it and refuses RIDER-MoE by name.
"""

import csv
import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from rider.checkpoint import load_checkpoint
from rider.data.align import align
from rider.data.cache import build_cache, validate_cache
from rider.errors import DataError
from rider.data.folds import standard_folds
from rider.evaluate import evaluate
from rider.metrics import METRIC_KEYS
from rider.model import MODEL_KINDS, build_model
from rider.model.rider_moe.config import ModelConfig
from rider.model.rider_moe.network import RiderMoE
from rider.model.rider_moe.text_only import TextOnlyModel
from rider.stress import DEFAULT_GRIDS, build_plan
from rider.train.trainer import RunSpec, train

from conftest import TINY_RUN

TEXT_ONLY_RUN = {"kind": "text_only", "model": TINY_RUN["model"], "train": {"epochs": 6, "lr": 3e-3}}


def test_kinds_are_registered_and_built_by_name():
    cfg = ModelConfig(d_model=16, expert_layers=1, expert_heads=2, expert_ff=16, encoder_heads=2)
    assert isinstance(build_model(cfg), RiderMoE)
    assert isinstance(build_model(cfg, "text_only"), TextOnlyModel)
    assert {"rider_moe", "text_only"} <= set(MODEL_KINDS)
    with pytest.raises(ValueError, match="text_only"):
        build_model(cfg, "text-only")
    with pytest.raises(ValueError, match="model kind"):
        RunSpec.from_dict({"kind": "no_such_model"})
    assert RunSpec.from_dict({}).kind == "rider_moe"
    assert RunSpec.from_dict(TEXT_ONLY_RUN).to_dict()["kind"] == "text_only"


def test_text_only_reads_only_the_text_and_every_parameter_learns():
    cfg = ModelConfig(d_model=16, encoder_heads=2, expert_ff=32, text_dim=7, max_len=6, dropout=0.0)
    model = build_model(cfg, "text_only")
    text, lengths = torch.randn(4, 6, 7), torch.tensor([6, 3, 1, 0])
    out = model(text, None, None, lengths)
    assert out.prediction.shape == (4,) and out.text.shape == (4, 16)
    assert torch.isfinite(out.prediction).all()  # an empty sample too
    (out.prediction - torch.arange(4.0)).abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # Padding never reaches the prediction; audio and vision are never read.
    model.eval()
    padded = text.clone()
    padded[1, 3:] = 100.0
    torch.testing.assert_close(model(padded, torch.ones(4, 6, 74), None, lengths).prediction,
                               model(text, None, None, lengths).prediction)


@pytest.fixture(scope="module")
def text_only_run(small_dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("text_only")
    metadata = train(RunSpec.from_dict(TEXT_ONLY_RUN), small_dataset["cache"], folder, seed=2, threads=2)
    return folder, metadata


def test_training_writes_a_checkpoint_of_its_kind(text_only_run, small_dataset):
    folder, metadata = text_only_run
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == "text_only" and metadata["kind"] == "text_only"
    rows = list(csv.DictReader(open(folder / "epochs.csv")))
    assert {"train_total", "train_task"} <= set(rows[0]) and "train_syn_res" not in rows[0]
    model, _, _ = load_checkpoint(folder)
    assert isinstance(model, TextOnlyModel)
    # Text carries the synthetic redundancy and text uniqueness: the text alone predicts well above chance.
    assert metadata["best_valid"]["corr"] > 0.3


def test_evaluation_has_clean_metrics_and_noise_only(text_only_run, small_dataset, tmp_path):
    folder, _ = text_only_run
    plan = build_plan(small_dataset["cache"], tmp_path / "plan.h5", seed=0)
    result = evaluate(folder, small_dataset["cache"], plan, tmp_path / "eval.json", threads=2)
    assert result["kind"] == "text_only" and result["experts"] == [] and "dir" not in result
    assert set(result["clean"]) == set(METRIC_KEYS)
    assert list(result["stress"]) == ["noise"] and list(result["nauc"]) == ["noise"]
    points = result["stress"]["noise"]
    assert [p["severity"] for p in points] == list(DEFAULT_GRIDS["noise"])
    assert points[0]["metrics"] == pytest.approx(result["clean"])
    assert points[-1]["metrics"]["mae"] != pytest.approx(result["clean"]["mae"])  # zeroed tokens reach it
    assert set(result["not_applicable"]) == {"missing", "conflict"}
    assert "reads only text" in result["not_applicable"]["missing"]


@pytest.fixture(scope="module")
def text_only_cache(tiny_dataset, tmp_path_factory):
    """The tiny dataset without audio and vision, as the align stage writes a text-only dataset."""
    folder = tmp_path_factory.mktemp("text_only_cache")
    aligned = folder / "aligned.h5"
    shutil.copy(tiny_dataset["aligned"], aligned)
    with h5py.File(aligned, "a") as handle:
        del handle["audio"], handle["vision"]
    cache = folder / "cache.h5"
    build_cache(aligned, tiny_dataset["glove"], standard_folds("mosi"), cache)
    return cache


def test_a_text_only_cache_has_zero_columns_for_audio_and_vision(text_only_cache):
    sizes = validate_cache(text_only_cache)
    with h5py.File(text_only_cache) as handle:
        assert json.loads(handle.attrs["features"]) == {"text_glove": 300, "audio": 0, "vision": 0}
        assert handle["test/audio"].shape == (sizes["test"], 50, 0)
        assert handle["stats/vision_std"].shape == (0,)
        assert np.any(handle["test/text_glove"][:] != 0)


def test_rider_moe_is_refused_on_a_text_only_cache_and_text_only_trains(text_only_cache, tmp_path):
    with pytest.raises(DataError, match="no audio features"):
        train(RunSpec.from_dict(TINY_RUN), text_only_cache, tmp_path / "moe", seed=0, threads=2)
    run = {**TEXT_ONLY_RUN, "train": {"epochs": 1}}
    metadata = train(RunSpec.from_dict(run), text_only_cache, tmp_path / "text", seed=0, threads=2)
    assert np.isfinite(metadata["best_valid"]["mae"])
    plan = build_plan(text_only_cache, tmp_path / "plan.h5", seed=0)  # zero-column streams: the plan still builds
    result = evaluate(tmp_path / "text", text_only_cache, plan, tmp_path / "eval.json", threads=2)
    assert list(result["stress"]) == ["noise"]


@pytest.mark.parametrize("aligner", ["fast", "sdk"])
def test_a_text_only_dataset_aligns_words_to_labels(tiny_dataset, tmp_path, aligner):
    """Words and labels alone (modalities: [text]): the same segments and words as with audio and vision."""
    raw = {"words": tiny_dataset["words"], "labels": tiny_dataset["labels"]}
    summary = align(raw, tmp_path / "aligned.h5", config={"modalities": ["text"]}, aligner=aligner)
    with h5py.File(tmp_path / "aligned.h5") as text, h5py.File(tiny_dataset["aligned"]) as full:
        assert summary["segments"] == len(full["segments/key"]) and summary["nonfinite"] == {}
        assert "audio" not in text and "vision" not in text and json.loads(text.attrs["streams"]) == []
        assert json.loads(full.attrs["streams"]) == ["audio", "vision"]
        for name in ("segments/key", "words/word"):
            assert list(text[name].asstr()[:]) == list(full[name].asstr()[:])
        np.testing.assert_array_equal(text["segments/offset"][:], full["segments/offset"][:])


def test_modalities_and_raw_sequences_must_agree(tiny_dataset, tmp_path):
    raw = {"words": tiny_dataset["words"], "labels": tiny_dataset["labels"]}
    with pytest.raises(ValueError, match="modalities"):
        align(raw, tmp_path / "aligned.h5", config={"modalities": ["text", "audio"]})
    with pytest.raises(ValueError, match="lack the role"):
        align({"words": tiny_dataset["words"]}, tmp_path / "aligned.h5")


def test_a_cache_without_any_text_feature_is_refused(tiny_dataset, tmp_path):
    with pytest.raises(DataError, match="no text features"):
        build_cache(tiny_dataset["aligned"], None, standard_folds("mosi"), tmp_path / "cache.h5")
    assert not (tmp_path / "cache.h5").exists()
