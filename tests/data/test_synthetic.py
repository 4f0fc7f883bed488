"""The synthetic source: SDK-readable .csd files, real fold sizes, and the ground truth it promises."""

import itertools
import json
import shutil

import h5py
import numpy as np
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rider.data.cache import build_cache, validate_cache
from rider.data.csd import METADATA_KEYS, ROLES, read_metadata, read_sequence
from rider.data.folds import standard_folds
from rider.data.modality_probes import ALL, label_probes, quality_probes, segment_statistics
from rider.data.split import read_arrays, read_latents
from rider.data.synthetic import RAW_FILES, LabelWeights, QualityConfig, SyntheticConfig, _draw_quality, _garble, generate

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
    first, second, third = (h5py.File(p["latents"])["quality"][:] for p in (tiny_dataset, again, other))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, third)


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
    recovered = {}
    for target in ("r", "u"):
        truth_train = train_latents[target] if target == "r" else train_latents[target][:, index]
        truth_test = test_latents[target] if target == "r" else test_latents[target][:, index]
        ridge = make_pipeline(StandardScaler(), RidgeCV()).fit(train[modality], truth_train)
        recovered[target] = np.corrcoef(ridge.predict(test[modality]), truth_test)[0, 1]
    assert recovered["u"] > 0.85, recovered
    # r is in all three modalities (DESIGN §2), but audio and vision carry it faintly (redundancy_gain 0.15 against
    # text's 1): present, well above the ≈ 0.04 a probe of an absent latent reaches on 686 test segments, far below
    # text's.
    if modality == "text_glove":
        assert recovered["r"] > 0.85, recovered
    else:
        assert 0.15 < recovered["r"] < 0.7, recovered
    # A modality carries only its own uniqueness latent.
    other = (index + 1) % 3
    ridge = make_pipeline(StandardScaler(), RidgeCV()).fit(train[modality], train_latents["u"][:, other])
    assert abs(np.corrcoef(ridge.predict(test[modality]), test_latents["u"][:, other])[0, 1]) < 0.2


def test_quality_draws_match_the_rate_and_the_severity_range():
    rng = np.random.default_rng(0)
    assert (_draw_quality(rng, 50, QualityConfig(degraded_rate=0.0)) == 1.0).all()
    always = _draw_quality(rng, 50, QualityConfig(degraded_rate=1.0, severity=(0.2, 0.4)))
    assert always.shape == (50, 3) and (always >= 0.2).all() and (always <= 0.4).all()
    # Each of 3 × 4000 cells degraded with probability 0.25: 3,000 expected, binomial std ≈ 47.
    some = _draw_quality(rng, 4000, QualityConfig(degraded_rate=0.25))
    assert abs(int((some < 1.0).sum()) - 3000) < 250


def test_garbling_replaces_a_share_one_minus_quality_of_the_tokens():
    rng = np.random.default_rng(0)
    tokens = np.zeros(20000, dtype=np.int64)  # every token word 0
    assert (_garble(rng, tokens, np.ones(20000), 1000) == 0).all()  # clean: nothing replaced
    # q = 0.25: 75 % of the tokens replaced by a uniform draw from 1,000 words, of which 1/1000 happen to be word 0,
    # so 0.75 · 0.999 ≈ 74.9 % change; binomial std over 20,000 tokens ≈ 0.3 %.
    changed = (_garble(rng, tokens, np.full(20000, 0.25), 1000) != 0).mean()
    assert abs(changed - 0.749) < 0.015


def test_bad_quality_settings_name_the_field():
    with pytest.raises(ValueError, match="synthetic.quality.severity"):
        QualityConfig(severity=(0.5, 1.0))
    with pytest.raises(ValueError, match="synthetic.label_weights.uniqueness = 0.5: give one number per modality"):
        LabelWeights(uniqueness=0.5)  # the scalar w_u of earlier configs
    with pytest.raises(ValueError, match="synthetic.redundancy_gain"):
        SyntheticConfig(redundancy_gain=(1.0, 1.0))


def test_quality_latent_is_written_and_cached(tiny_dataset):
    with h5py.File(tiny_dataset["latents"]) as handle:
        quality, keys = handle["quality"][:], handle["key"].asstr()[:]
    assert quality.shape == (len(keys), 3) and quality.dtype == np.float32
    low, high = QualityConfig().severity
    degraded = quality < 1.0
    assert degraded.any() and (~degraded).any()
    assert ((quality[degraded] >= low - 1e-6) & (quality[degraded] <= high + 1e-6)).all()
    row_of = {key: i for i, key in enumerate(keys)}
    for split in ("train", "valid", "test"):
        arrays = read_arrays(tiny_dataset["cache"], split)
        cached = arrays["latents"]["quality"]
        assert cached.shape == (len(arrays["ids"]), 3)
        np.testing.assert_array_equal(cached, quality[[row_of[key] for key in arrays["ids"]]])


def test_a_latents_file_without_quality_still_caches(tiny_dataset, tmp_path):
    # Latents written before the generator had a quality latent: the cache carries the rest.
    old = tmp_path / "latents.h5"
    with h5py.File(tiny_dataset["latents"]) as source, h5py.File(old, "w") as target:
        for name in source:
            if name != "quality":
                source.copy(name, target)
    build_cache(tiny_dataset["aligned"], tiny_dataset["glove"], standard_folds("mosi"), tmp_path / "cache.h5",
                latents_path=old)
    latents = read_arrays(tmp_path / "cache.h5", "train")["latents"]
    assert set(latents) == {"r", "u", "b", "s"}


def test_quality_is_recoverable_from_its_own_modality_only(mosi_dataset):
    train, test = (segment_statistics(mosi_dataset["cache"], split) for split in ("train", "test"))
    auroc = quality_probes(train, test)  # rows: statistics of text, audio, vision; columns: which one is degraded
    assert (np.diag(auroc) > 0.9).all(), auroc
    # Modalities degrade independently, so another modality's statistics know nothing: AUROC 0.5, with a standard
    # error of sqrt((n_pos + n_neg + 1) / (12·n_pos·n_neg)) ≈ 0.031 for ~100 degraded of 686 test segments;
    # 0.12 is ~4 standard errors.
    off_diagonal = auroc[~np.eye(3, dtype=bool)]
    assert (np.abs(off_diagonal - 0.5) < 0.12).all(), auroc


def test_text_carries_most_of_the_label_and_all_three_more(mosi_dataset):
    train, test = (segment_statistics(mosi_dataset["cache"], split) for split in ("train", "test"))
    table = label_probes(train, test)
    text, audio, vision = (table[name]["ridge_acc2"] for name in MODALITIES)
    # Genuine MOSI: a text encoder alone reaches Acc-2 ≈ 0.81; audio and vision alone far less.
    assert 0.72 < text < 0.85, table
    assert audio < 0.68 and vision < 0.68 and text - max(audio, vision) > 0.08, table
    # Synergy needs all three (and a non-linear probe): all three beat text alone clearly.
    assert table[ALL]["mlp_acc2"] > table["text_glove"]["mlp_acc2"] + 0.04, table


def test_read_latents_reads_the_latents_alone(tiny_dataset, tmp_path):
    with_all = read_arrays(tiny_dataset["cache"], "test")["latents"]
    alone = read_latents(tiny_dataset["cache"], "test")
    assert set(alone) == set(with_all) and all(np.array_equal(alone[k], with_all[k]) for k in alone)
    cache = tmp_path / "cache.h5"
    shutil.copy(tiny_dataset["cache"], cache)
    with h5py.File(cache, "a") as handle:
        del handle["test/latents"]  # a cache of real data has none
    assert read_latents(cache, "test") is None
