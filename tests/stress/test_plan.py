"""rider.stress end to end: a small cache written here, a plan built from it, the corruption it fixes.

The rates are checked on a larger, short cache (N = 3000, L = 5) so that 4-sigma binomial bounds are tight;
everything else uses N = 200, L = 20 with the real feature sizes.
"""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from rider.provenance import sha256_file
from rider.stress import (
    DEFAULT_GRIDS,
    MODALITIES,
    SCHEMA_VERSION,
    apply_plan,
    build_plan,
    expected_drop_rate,
    iter_severities,
    load_test_split,
    read_plan,
    zero_absent,
)
from rider.stress import plan as plan_module

FEATURES = {"text_glove": 300, "audio": 74, "vision": 35}
FEATURE_ARRAYS = ("text_glove", "audio", "vision")
ALL_LEVELS = [(s, v) for s, grid in DEFAULT_GRIDS.items() for v in grid]


def write_cache(path: Path, n: int, max_len: int, seed: int = 0) -> Path:
    """A cache file with the layout the cache stage writes (test split and feature stats only)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, size=n).astype(np.int32)
    lengths[:3] = [0, max_len, 1]  # an empty sample, a full one, a one-word one
    real = np.arange(max_len)[None, :] < lengths[:, None]
    labels = np.round(rng.uniform(-3, 3, size=n) * 3) / 3  # steps of 1/3: some exact zeros
    labels[3:6] = [0.0, 3.0, -3.0]
    with h5py.File(path, "w") as f:
        for key, dim in FEATURES.items():
            x = rng.normal(1.0, 2.0, size=(n, max_len, dim)).astype(np.float32)
            x[~real] = 0  # padding
            f[f"test/{key}"] = x
            f[f"stats/{key}_mean"] = np.ones(dim, np.float32)
            std = rng.uniform(0.5, 2.0, size=dim).astype(np.float32)
            std[0] = 0.0  # a constant feature: no noise there
            f[f"stats/{key}_std"] = std
        f["test/lengths"] = lengths
        f["test/labels"] = labels.astype(np.float32)
        f.create_dataset("test/ids", data=[f"vid{i:05d}[0]" for i in range(n)], dtype=h5py.string_dtype())
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    cache = write_cache(folder / "cache.h5", n=200, max_len=20)
    plan = build_plan(cache, folder / "stress_plan.h5", DEFAULT_GRIDS, seed=7)
    return cache, plan, load_test_split(cache)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    cache = write_cache(folder / "cache.h5", n=3000, max_len=5, seed=1)
    grids = {"missing": list(DEFAULT_GRIDS["missing"]), "conflict": list(DEFAULT_GRIDS["conflict"])}
    plan = build_plan(cache, folder / "stress_plan.h5", grids, seed=3)
    return cache, plan, load_test_split(cache)


def binomial_bound(p: float, n: int) -> float:
    return 4 * np.sqrt(p * (1 - p) / n) + 1e-12


def as_bytes(arrays) -> dict:
    return {k: np.asarray(v).tobytes() if k != "ids" else list(v) for k, v in arrays.items()}


# --- plan file ------------------------------------------------------------------------------------------------------


def test_plan_attrs_and_layout(small):
    cache, plan, test = small
    with h5py.File(plan) as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert f.attrs["seed"] == 7
        assert f.attrs["cache_sha256"] == sha256_file(cache)
        assert json.loads(f.attrs["grids"]) == {s: list(g) for s, g in DEFAULT_GRIDS.items()}
        assert list(f["ids"].asstr()[()]) == list(test["ids"])
        for stressor, grid in DEFAULT_GRIDS.items():
            np.testing.assert_array_equal(f[stressor].attrs["severities"], grid)
            for k, severity in enumerate(grid):
                assert f[f"{stressor}/{k}"].attrs["severity"] == severity
        assert f["noise/0/text_mask"].dtype == bool and f["noise/0/text_mask"].shape == (200, 20)
        assert f["missing/1/presence"].shape == (200, 3)
        assert f["conflict/1/donor"].dtype == np.int32
    assert sorted(p.name for p in plan.parent.iterdir()) == ["cache.h5", "stress_plan.h5"]  # no temp file left


def test_severity_zero_is_identity(small):
    _, plan, test = small
    for stressor in DEFAULT_GRIDS:
        arrays, presence = apply_plan(plan, test, stressor, 0.0)
        assert presence.shape == (200, 3) and presence.all()
        assert arrays.keys() == test.keys()
        for key in test:
            assert arrays[key] is test[key]  # the very input objects, hence byte-identical


def test_inputs_are_never_modified(small):
    _, plan, test = small
    before = as_bytes(test)
    for _ in iter_severities(plan, test):
        pass
    assert as_bytes(test) == before


def test_iter_severities_covers_the_grid_and_equals_apply_plan(small):
    _, plan, test = small
    seen = []
    for stressor, severity, (arrays, presence) in iter_severities(plan, test):
        seen.append((stressor, severity))
        again = apply_plan(plan, test, stressor, severity)
        assert as_bytes(again.arrays) == as_bytes(arrays)
        np.testing.assert_array_equal(again.presence, presence)
    assert seen == ALL_LEVELS
    assert [s for s, _, _ in iter_severities(plan, test, stressors=["conflict"])] == ["conflict"] * 5


# --- reproducibility ------------------------------------------------------------------------------------------------


def test_same_plan_applied_twice_is_byte_identical(small):
    _, plan, test = small
    for stressor, severity in ALL_LEVELS:
        a = apply_plan(plan, test, stressor, severity)
        b = apply_plan(read_plan(plan), test, stressor, severity)
        assert as_bytes(a.arrays) == as_bytes(b.arrays)
        assert a.presence.tobytes() == b.presence.tobytes()


def test_two_builds_same_seed_identical_other_seed_different(small, tmp_path):
    cache, plan, test = small
    again = build_plan(cache, tmp_path / "again.h5", DEFAULT_GRIDS, seed=7)
    other = build_plan(cache, tmp_path / "other.h5", DEFAULT_GRIDS, seed=8)
    for stressor, severity in ALL_LEVELS:
        a = apply_plan(plan, test, stressor, severity)
        b = apply_plan(again, test, stressor, severity)
        c = apply_plan(other, test, stressor, severity)
        assert as_bytes(a.arrays) == as_bytes(b.arrays)
        assert a.presence.tobytes() == b.presence.tobytes()
        if severity > 0:
            differs = as_bytes(a.arrays) != as_bytes(c.arrays) or a.presence.tobytes() != c.presence.tobytes()
            assert differs, (stressor, severity)


def test_adding_a_severity_does_not_change_the_others(small, tmp_path):
    cache, plan, test = small
    grids = {"noise": [0.0, 0.2, 0.25, 0.5], "missing": [0.2, 0.5, 0.6], "conflict": [0.1, 0.5]}
    finer = build_plan(cache, tmp_path / "finer.h5", grids, seed=7)
    for stressor, severity in [("noise", 0.2), ("noise", 0.5), ("missing", 0.2), ("missing", 0.6), ("conflict", 0.5)]:
        a = apply_plan(plan, test, stressor, severity)
        b = apply_plan(finer, test, stressor, severity)
        assert as_bytes(a.arrays) == as_bytes(b.arrays)
        assert a.presence.tobytes() == b.presence.tobytes()


# --- noise ----------------------------------------------------------------------------------------------------------


def test_noise_masks_round_rho_length_real_tokens(small):
    _, plan_path, test = small
    plan = read_plan(plan_path)
    lengths = test["lengths"]
    real = np.arange(20)[None, :] < lengths[:, None]
    previous = {m: np.zeros((200, 20), bool) for m in MODALITIES}
    for k, rho in enumerate(DEFAULT_GRIDS["noise"]):
        for modality in MODALITIES:
            mask = plan.levels["noise"][k][f"{modality}_mask"]
            assert not mask[~real].any()  # padding never selected
            np.testing.assert_array_equal(mask.sum(1), np.round(rho * lengths))  # exactly round(rho * length)
            assert abs(mask.sum() / lengths.sum() - rho) < 0.02  # masked fraction of real tokens ~ rho
            assert not (previous[modality] & ~mask).any()  # nested: zeroed at a lower rho stays zeroed
            previous[modality] = mask
        if rho > 0:  # text, audio and vision choose their positions independently
            assert not np.array_equal(plan.levels["noise"][k]["audio_mask"], plan.levels["noise"][k]["vision_mask"])


def test_noise_zeroes_masked_rows_and_adds_scaled_gaussian(small):
    cache, plan_path, test = small
    plan = read_plan(plan_path)
    lengths = test["lengths"]
    real = np.arange(20)[None, :] < lengths[:, None]
    with h5py.File(cache) as f:
        sigma = {m: f[f"stats/{m}_std"][()] for m in ("audio", "vision")}
    for k, rho in enumerate(DEFAULT_GRIDS["noise"]):
        if rho == 0:
            continue
        arrays, presence = apply_plan(plan, test, "noise", rho)
        assert presence.all()
        level = plan.levels["noise"][k]
        text_mask = level["text_mask"]
        assert not arrays["text_glove"][text_mask].any()  # zeroed tokens
        np.testing.assert_array_equal(arrays["text_glove"][~text_mask], test["text_glove"][~text_mask])
        for modality in ("audio", "vision"):
            x, y, mask = test[modality], arrays[modality], level[f"{modality}_mask"]
            assert not y[mask].any()
            np.testing.assert_array_equal(y[~real], x[~real])  # padding untouched
            kept = real & ~mask
            z = (y[kept] - x[kept])[:, 1:] / (rho * sigma[modality][1:])  # standardised noise, sigma > 0 features
            assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
            np.testing.assert_array_equal(y[kept][:, 0], x[kept][:, 0])  # sigma = 0: no noise
        assert arrays["labels"] is test["labels"] and arrays["lengths"] is test["lengths"]


def test_noise_regenerated_differently_is_caught(small, monkeypatch):
    _, plan, test = small
    real_draw = plan_module.noise.standard_normal
    monkeypatch.setattr(plan_module.noise, "standard_normal", lambda *a: real_draw(*a) * np.float32(1.0001))
    with pytest.raises(RuntimeError, match="noise regenerated from the plan's seeds differs"):
        apply_plan(plan, test, "noise", 0.3)


# --- missingness ----------------------------------------------------------------------------------------------------


def test_missing_rate_and_never_all_three(big):
    _, plan, test = big
    n = len(test["lengths"])
    for m in DEFAULT_GRIDS["missing"]:
        arrays, presence = apply_plan(plan, test, "missing", m)
        assert presence.dtype == bool and presence.shape == (n, 3)
        assert presence.any(axis=1).all()  # never all three dropped
        expected = expected_drop_rate(m)  # m (1 - m^2) / (1 - m^3) after the redraw
        for j in range(3):
            assert abs((~presence[:, j]).mean() - expected) <= binomial_bound(expected, n), (m, j)
        for key in test:
            assert arrays[key] is test[key]  # presence only; features untouched


def test_expected_drop_rate_values():
    # m = .2: .2 * .96 / .992 = 0.19355; m = .8: .8 * .36 / .488 = 0.59016
    assert expected_drop_rate(0.0) == 0.0
    assert expected_drop_rate(0.2) == pytest.approx(0.19355, abs=1e-5)
    assert expected_drop_rate(0.8) == pytest.approx(0.59016, abs=1e-5)


def test_zero_absent_with_plan_presence(small):
    _, plan, test = small
    arrays, presence = apply_plan(plan, test, "missing", 0.6)
    zeroed = zero_absent(arrays, presence)
    for j, key in enumerate(FEATURE_ARRAYS):
        absent = ~presence[:, j]
        assert absent.any()
        assert not zeroed[key][absent].any()
        np.testing.assert_array_equal(zeroed[key][~absent], test[key][~absent])
    assert zeroed["lengths"] is test["lengths"]


# --- conflict -------------------------------------------------------------------------------------------------------


def test_conflict_rate_polarity_and_choice(big):
    _, plan_path, test = big
    plan = read_plan(plan_path)
    y = test["labels"]
    n = len(y)
    for k, c in enumerate(DEFAULT_GRIDS["conflict"]):
        donor = plan.levels["conflict"][k]["donor"]
        swapped = plan.levels["conflict"][k]["swapped"]
        hit = donor >= 0
        np.testing.assert_array_equal(hit, swapped.any(axis=1))
        assert not swapped[:, 0].any()  # text never swapped
        assert abs(hit.mean() - c) <= binomial_bound(c, n)  # swapped fraction ~ c
        d = donor[hit]
        assert np.all(y[d][y[hit] > 0] < 0) and np.all(y[d][y[hit] < 0] > 0)  # opposite polarity
        assert np.all(y[d][y[hit] == 0] != 0)  # a label-0 receiver gets a non-zero donor
        assert np.all(test["lengths"][d] > 0)
        if c > 0:  # audio only / vision only / both, uniform
            kinds = swapped[hit][:, 1].astype(int) + 2 * swapped[hit][:, 2].astype(int)  # 1 A, 2 V, 3 AV
            for kind in (1, 2, 3):
                assert abs((kinds == kind).mean() - 1 / 3) <= binomial_bound(1 / 3, hit.sum())
    assert plan.levels["conflict"][-1]["donor"].min() >= 0  # c = 1: every sample swapped


def test_conflict_arrays(small):
    _, plan_path, test = small
    plan = read_plan(plan_path)
    lengths = test["lengths"]
    for k, c in enumerate(DEFAULT_GRIDS["conflict"]):
        if c == 0:
            continue
        arrays, presence = apply_plan(plan, test, "conflict", c)
        assert presence.all()
        for key in ("text_glove", "lengths", "labels", "ids"):
            assert arrays[key] is test[key]  # text and label stay
        donor = plan.levels["conflict"][k]["donor"]
        swapped = plan.levels["conflict"][k]["swapped"]
        for j, key in ((1, "audio"), (2, "vision")):
            same = ~swapped[:, j]
            np.testing.assert_array_equal(arrays[key][same], test[key][same])
            for i in np.flatnonzero(swapped[:, j]):
                li, ld = lengths[i], lengths[donor[i]]
                expected = test[key][donor[i]][np.arange(li) * ld // max(li, 1)]  # stretched donor rows
                np.testing.assert_array_equal(arrays[key][i, :li], expected)
                assert not arrays[key][i, li:].any()  # receiver's padding stays padding


# --- errors and atomic writing --------------------------------------------------------------------------------------


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing_dataset", "bad_shape", "nan_labels"])
def test_bad_cache_names_the_file_and_writes_nothing(tmp_path, damage):
    cache = write_cache(tmp_path / "cache.h5", n=30, max_len=6)
    if damage == "truncated":
        data = cache.read_bytes()
        cache.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        cache.write_bytes(b"not an hdf5 file" * 100)
    else:
        with h5py.File(cache, "a") as f:
            if damage == "missing_dataset":
                del f["test/vision"]
            elif damage == "bad_shape":
                del f["test/audio"]
                f["test/audio"] = np.zeros((29, 6, 74), np.float32)
            else:
                f["test/labels"][2] = np.nan
    out = tmp_path / "out" / "stress_plan.h5"
    with pytest.raises(ValueError, match=str(cache)):
        build_plan(cache, out, DEFAULT_GRIDS, seed=0)
    assert not out.exists()
    assert not out.parent.exists() or _only(out.parent) == []


def test_missing_cache_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        build_plan(tmp_path / "nope.h5", tmp_path / "plan.h5", seed=0)
    assert _only(tmp_path) == []


def test_failure_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    cache = write_cache(tmp_path / "cache.h5", n=30, max_len=6)
    out = tmp_path / "stress_plan.h5"

    def write_then_fail(f, datasets, attrs):
        f["ids"] = np.zeros(3)
        raise OSError("disk full")

    monkeypatch.setattr(plan_module, "_write_plan", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        build_plan(cache, out, seed=0)
    assert _only(tmp_path) == ["cache.h5"]

    out.write_bytes(b"previous plan")  # an existing plan survives a failed rebuild
    with pytest.raises(OSError, match="disk full"):
        build_plan(cache, out, seed=0)
    assert out.read_bytes() == b"previous plan" and _only(tmp_path) == ["cache.h5", "stress_plan.h5"]


@pytest.mark.parametrize(
    ("grids", "seed", "match"),
    [
        ({"noise": [0.0, 0.2, 0.1]}, 0, "increase strictly"),
        ({"noise": [0.0, 0.1, 0.1]}, 0, "increase strictly"),
        ({"missing": [0.0, 1.0]}, 0, r"lie in \[0, 1.0\)"),
        ({"conflict": [-0.1, 0.5]}, 0, "lie in"),
        ({"blur": [0.0]}, 0, "unknown stressor"),
        ({"noise": []}, 0, "non-empty"),
        ({}, 0, "non-empty mapping"),
        (None, -1, "non-negative int"),
        (None, 1.5, "non-negative int"),
    ],
)
def test_bad_grids_or_seed(tmp_path, grids, seed, match):
    cache = write_cache(tmp_path / "cache.h5", n=10, max_len=4)
    with pytest.raises(ValueError, match=match):
        build_plan(cache, tmp_path / "plan.h5", grids, seed=seed)
    assert not (tmp_path / "plan.h5").exists()


def test_partial_grid_plan_holds_only_those_stressors(small, tmp_path):
    cache, _, test = small
    plan = build_plan(cache, tmp_path / "p.h5", {"missing": [0.0, 0.5]}, seed=1)
    assert [(s, v) for s, v, _ in iter_severities(plan, test)] == [("missing", 0.0), ("missing", 0.5)]
    with pytest.raises(ValueError, match="no stressor 'noise'"):
        apply_plan(plan, test, "noise", 0.1)


def test_apply_rejects_mismatched_arrays_and_unknown_severity(small):
    _, plan, test = small
    with pytest.raises(ValueError, match=r"severity 0.15 is not in the plan's grid"):
        apply_plan(plan, test, "noise", 0.15)
    apply_plan(plan, test, "noise", 0.30000000000000004)  # float noise in a severity still matches 0.3
    ids = test["ids"].copy()
    ids[5] = "someone else"
    with pytest.raises(ValueError, match="ids differ, first at sample 5"):
        apply_plan(plan, {**test, "ids": ids}, "missing", 0.2)
    lengths = test["lengths"].copy()
    lengths[7] = (lengths[7] + 1) % 21
    with pytest.raises(ValueError, match="lengths differ, first at sample 7"):
        apply_plan(plan, {**test, "lengths": lengths}, "missing", 0.2)
    with pytest.raises(ValueError, match="lack"):
        apply_plan(plan, {k: v for k, v in test.items() if k != "audio"}, "missing", 0.2)


def test_plan_of_another_schema_version_is_refused(small, tmp_path):
    _, plan, test = small
    copy = tmp_path / "old.h5"
    copy.write_bytes(Path(plan).read_bytes())
    with h5py.File(copy, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="schema version"):
        apply_plan(copy, test, "noise", 0.1)


def test_open_handle_is_accepted(small):
    _, plan, test = small
    with h5py.File(plan) as f:
        a = apply_plan(f, test, "conflict", 0.5)
    assert as_bytes(a.arrays) == as_bytes(apply_plan(plan, test, "conflict", 0.5).arrays)


def test_text_bert_gets_the_same_token_mask(small):
    _, plan_path, test = small
    plan = read_plan(plan_path)
    bert = np.ones((200, 20, 8), np.float32) * (np.arange(20)[None, :, None] < test["lengths"][:, None, None])
    arrays, _ = apply_plan(plan, {**test, "text_bert": bert}, "noise", 0.4)
    mask = plan.levels["noise"][4]["text_mask"]
    np.testing.assert_array_equal(arrays["text_bert"].any(axis=2), bert.any(axis=2) & ~mask)

