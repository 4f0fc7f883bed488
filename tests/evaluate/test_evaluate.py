"""Evaluation of a trained model under the shared stress plan."""

import json
import math
import shutil

import h5py
import numpy as np
import pytest

from rider.evaluate import evaluate
from rider.metrics import METRIC_KEYS, regression_metrics
from rider.predictions import read_predictions
from rider.model.rider_moe.rider_moe import KIND as RIDER_MOE
from rider.stress import DEFAULT_GRIDS, build_plan
from rider.train.trainer import RunSpec, train

from conftest import TINY_RUN


@pytest.fixture(scope="module")
def plan(small_dataset, tmp_path_factory):
    return build_plan(small_dataset["cache"], tmp_path_factory.mktemp("plan") / "plan.h5", seed=0)


def trained(small_dataset, folder, **model):
    run = {"model": {**TINY_RUN["model"], **model}, "train": {**TINY_RUN["train"], "epochs": 3}}
    train(RunSpec.from_dict(run), small_dataset["cache"], folder, seed=1, threads=2)
    return folder


def test_every_stressor_and_severity(small_dataset, plan, tmp_path):
    folder = trained(small_dataset, tmp_path / "full")
    result = evaluate(folder, small_dataset["cache"], plan, tmp_path / "eval.json", threads=2,
                      predictions_path=tmp_path / "predictions.h5")
    assert json.loads((tmp_path / "eval.json").read_text()) == json.loads(json.dumps(result))
    assert set(result["clean"]) == set(METRIC_KEYS)
    # The per-sample predictions give back every metric of the evaluation.
    kept = read_predictions(tmp_path / "predictions.h5")
    assert len(kept.ids) == len(kept.labels) == len(kept.clean) > 0
    assert regression_metrics(kept.clean, kept.labels) == pytest.approx(result["clean"], nan_ok=True)
    assert set(kept.stress) == set(result["stress"])
    for stressor, (severities, values) in kept.stress.items():
        assert list(severities) == [p["severity"] for p in result["stress"][stressor]]
        for row, point in zip(values, result["stress"][stressor]):
            assert regression_metrics(row, kept.labels) == pytest.approx(point["metrics"], nan_ok=True)
    for stressor, grid in DEFAULT_GRIDS.items():
        points = result["stress"][stressor]
        assert [p["severity"] for p in points] == list(grid)
        # Severity 0 is the clean test set.
        assert points[0]["metrics"] == pytest.approx(result["clean"])
        for point in points:
            assert sum(point["routing"]) == pytest.approx(1.0, abs=1e-5)
        assert set(result["nauc"][stressor]) == set(METRIC_KEYS)
        expected = np.trapezoid([p["metrics"]["corr"] for p in points], list(grid)) / (grid[-1] - grid[0])
        assert result["nauc"][stressor]["corr"] == pytest.approx(expected)
    present = [np.mean(p["present"]) for p in result["stress"]["missing"]]
    assert present[0] == 1.0 and present[-1] < 0.6
    for key in ("delta_u_avg", "var_r", "off_s", "corr_syn_residual"):
        assert np.isfinite(result["dir"][key])
    assert set(result["latent_correlation"]) == {"U_T", "U_A", "U_V", "R", "S"}
    check_signal_chain(result)


def check_signal_chain(result):
    """The chain's fields in eval.json: every signal's mean at every point, the AUROCs where the plan corrupted."""
    fields = {signal.field for signal in RIDER_MOE.signals}
    directed = fields - {"expert_prior"}
    assert set(result["clean_signals"]) == fields
    assert set(result["clean_signals"]["expert_prior"]) == {"U_T", "U_A", "U_V", "R", "S"}
    assert sum(result["clean_signals"]["reliability"].values()) == pytest.approx(1.0, abs=1e-5)  # Eq. 29
    for stressor, points in result["stress"].items():
        assert points[0]["signals"]["consensus"] == pytest.approx(result["clean_signals"]["consensus"])
        assert all(math.isnan(v) for v in points[0]["separation"]["reliability"].values())  # nothing corrupted at 0
        for point in points[1:]:
            assert set(point["signals"]) == fields and set(point["separation"]) == directed
            assert 0 <= point["separation"]["consensus"] <= 1
        pooled = result["separation"][stressor]
        assert set(pooled) == directed
    # Missingness drops audio and vision somewhere; conflict never swaps text, so there is nothing to separate.
    assert all(0 <= v <= 1 for v in result["separation"]["missing"]["reliability"].values())
    assert math.isnan(result["separation"]["conflict"]["reliability"]["text"])
    assert 0 <= result["separation"]["conflict"]["reliability"]["audio"] <= 1


def test_quality_latent_is_tracked_when_the_cache_has_it(small_dataset, tmp_path):
    run = {"model": TINY_RUN["model"], "train": {**TINY_RUN["train"], "epochs": 1}}
    results = {}
    for name in ("older", "hand"):
        cache = tmp_path / f"{name}.h5"
        shutil.copy(small_dataset["cache"], cache)
        with h5py.File(cache, "a") as f:
            del f["test/latents/quality"]  # "older": a cache from before the generator wrote it
            if name == "hand":  # a hand-made quality latent, columns T, A, V
                n = f["test/labels"].shape[0]
                quality = np.ones((n, 3), dtype=np.float32)
                quality[: n // 3, 1] = 0.3  # a third of the segments with degraded audio
                f["test/latents/quality"] = quality
        folder = tmp_path / name
        train(RunSpec.from_dict(run), cache, folder, seed=1, threads=2)
        plan = build_plan(cache, tmp_path / f"{name}-plan.h5", grids={"missing": [0.0, 0.5]}, seed=0)
        results[name] = evaluate(folder, cache, plan, tmp_path / f"{name}-eval.json", threads=2)
    assert "quality_tracking" not in results["older"]
    result = results["hand"]
    tracked = result["quality_tracking"]
    assert set(tracked) == {"entropy", "relative_reliability", "importance", "reliability"}
    assert set(tracked["reliability"]) == {"pearson", "spearman", "auroc"}
    assert 0 <= tracked["reliability"]["auroc"]["audio"] <= 1
    assert -1 <= tracked["reliability"]["pearson"]["audio"] <= 1
    assert math.isnan(tracked["reliability"]["auroc"]["text"])  # no degraded text
    assert math.isnan(tracked["reliability"]["pearson"]["vision"])  # q_V constant


def test_single_expert_has_no_dir_checks(small_dataset, plan, tmp_path):
    folder = trained(small_dataset, tmp_path / "single", single_expert=True)
    result = evaluate(folder, small_dataset["cache"], plan, tmp_path / "eval.json", threads=2)
    assert "dir" not in result and result["experts"] == ["single"]
    assert set(result["latent_correlation"]) == {"single"}
    assert all(len(p["routing"]) == 1 for p in result["stress"]["noise"])
    assert set(result["quality_tracking"]["reliability"]) == {"pearson", "spearman", "auroc"}  # the generator's q_m
    assert set(result["clean_signals"]["expert_prior"]) == {"single"}


def test_variant_trained_without_masked_views_still_gets_dir_checks(small_dataset, plan, tmp_path):
    folder = trained(small_dataset, tmp_path / "noviews", masked_views=False)
    result = evaluate(folder, small_dataset["cache"], plan, tmp_path / "eval.json", threads=2)
    assert np.isfinite(result["dir"]["off_s"])


def test_plan_for_another_dataset_is_refused(small_dataset, tiny_dataset, plan, tmp_path):
    folder = trained(small_dataset, tmp_path / "full")
    other = build_plan(tiny_dataset["cache"], tmp_path / "other.h5", seed=0)
    with pytest.raises(ValueError):
        evaluate(folder, small_dataset["cache"], other, tmp_path / "eval.json")
    assert not (tmp_path / "eval.json").exists()
