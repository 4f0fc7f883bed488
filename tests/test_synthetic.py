"""The synthetic source: SDK-readable .csd files, real fold sizes, and the ground truth it promises."""

import itertools
import json

import h5py
import numpy as np
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rider.data.cache import validate_cache
from rider.data.csd import METADATA_KEYS, ROLES, read_metadata, read_sequence
from rider.data.folds import standard_folds
from rider.data.synthetic import RAW_FILES, generate

from conftest import TINY

MODALITIES = ("text_glove", "audio", "vision")


def segment_means(cache, split):
    """Mean over each segment's real words: enough for a probe to see what a modality carries."""
    with h5py.File(cache) as handle:
        group = handle[split]
        lengths = group["lengths"][:]
        real = (np.arange(group["audio"].shape[1])[None] < lengths[:, None])[..., None]
        means = {m: (group[m][:] * real).sum(1) / np.maximum(lengths, 1)[:, None] for m in MODALITIES}
        latents = {name: group[f"latents/{name}"][:] for name in ("r", "s", "u")}
    return means, latents


def test_csd_files_load_with_the_sdk_and_pass_its_checks(tiny_dataset):
    from mmsdk import mmdatasdk
    from mmsdk.mmdatasdk.computational_sequence.integrity_check import validateDataIntegrity

    recipe = {role: str(tiny_dataset[role]) for role in RAW_FILES}
    dataset = mmdatasdk.mmdataset(recipe)
    for role in RAW_FILES:
        sequence = dataset[role]
        assert validateDataIntegrity(sequence.data, role, which=True) is True
        metadata = read_metadata(tiny_dataset[role])
        assert set(METADATA_KEYS) <= set(metadata), role
        read_sequence(tiny_dataset[role], ROLES[role])
    assert dataset["audio"][next(iter(dataset["audio"].keys()))]["features"].shape[1] == 74
    assert dataset["vision"][next(iter(dataset["vision"].keys()))]["features"].shape[1] == 35


def test_generation_is_deterministic_for_a_seed(tmp_path, tiny_dataset):
    again = generate(TINY, tmp_path / "again")
    other = generate(TINY.__class__(**{**TINY.__dict__, "seed": TINY.seed + 1}), tmp_path / "other")
    for role in ("audio", "labels"):
        first, second, third = (read_sequence(p[role], ROLES[role]) for p in (tiny_dataset, again, other))
        video = next(iter(first))
        np.testing.assert_array_equal(first[video]["features"], second[video]["features"])
        assert not np.array_equal(first[video]["features"], third[video]["features"])
    assert tiny_dataset["glove"].read_bytes() == again["glove"].read_bytes()


def test_audio_holds_nonfinite_values_and_the_cache_none(tiny_dataset):
    audio = read_sequence(tiny_dataset["audio"], ROLES["audio"])
    raw_count = sum(int((~np.isfinite(e["features"])).sum()) for e in audio.values())
    assert raw_count > 0
    with h5py.File(tiny_dataset["aligned"]) as handle:
        assert json.loads(handle.attrs["nonfinite"]) == {"audio": raw_count, "vision": 0}
    with h5py.File(tiny_dataset["cache"]) as handle:
        for split in ("train", "valid", "test"):
            for name in MODALITIES:
                assert np.isfinite(handle[split][name][:]).all()


def test_mosi_sized_cache_matches_schema_and_standard_folds(mosi_dataset):
    assert validate_cache(mosi_dataset["cache"]) == {"train": 1284, "valid": 229, "test": 686}
    folds = standard_folds("mosi")
    with h5py.File(mosi_dataset["cache"]) as handle:
        for split in ("train", "valid", "test"):
            videos = {key.split("[")[0] for key in handle[split]["ids"].asstr()[:]}
            assert videos == set(folds[split])
        assert handle.attrs["sequence_length"] == 50
        assert handle["train/text_glove"].shape == (1284, 50, 300)
        lengths = handle["train/lengths"][:]
        padding = handle["train/audio"][0, lengths[0]:]
        assert not padding.any()
        labels = handle["train/labels"][:]
        assert labels.min() >= -3 and labels.max() <= 3 and (labels == 0).any()


def test_ground_truth_synergy_needs_all_three_modalities(mosi_dataset):
    train, train_latents = segment_means(mosi_dataset["cache"], "train")
    test, test_latents = segment_means(mosi_dataset["cache"], "test")
    accuracy = {}
    for k in (1, 2, 3):
        for combo in itertools.combinations(MODALITIES, k):
            probe = make_pipeline(StandardScaler(), MLPClassifier((64, 64), max_iter=400, alpha=1e-3, random_state=0))
            probe.fit(np.concatenate([train[m] for m in combo], 1), train_latents["s"])
            accuracy[combo] = probe.score(np.concatenate([test[m] for m in combo], 1), test_latents["s"])
    assert accuracy[MODALITIES] > 0.85, accuracy
    for combo, value in accuracy.items():
        if len(combo) < 3:
            assert value < 0.6, (combo, value)  # chance is 0.5


@pytest.mark.parametrize("index, modality", list(enumerate(MODALITIES)))
def test_ground_truth_redundancy_and_uniqueness_from_each_modality(mosi_dataset, index, modality):
    train, train_latents = segment_means(mosi_dataset["cache"], "train")
    test, test_latents = segment_means(mosi_dataset["cache"], "test")
    for target in ("r", "u"):
        truth_train = train_latents[target] if target == "r" else train_latents[target][:, index]
        truth_test = test_latents[target] if target == "r" else test_latents[target][:, index]
        ridge = make_pipeline(StandardScaler(), RidgeCV()).fit(train[modality], truth_train)
        assert np.corrcoef(ridge.predict(test[modality]), truth_test)[0, 1] > 0.85, target
    # A modality carries only its own uniqueness latent.
    other = (index + 1) % 3
    ridge = make_pipeline(StandardScaler(), RidgeCV()).fit(train[modality], train_latents["u"][:, other])
    assert abs(np.corrcoef(ridge.predict(test[modality]), test_latents["u"][:, other])[0, 1]) < 0.2
