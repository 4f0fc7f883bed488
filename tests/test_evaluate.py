"""Evaluation of a trained model under the shared stress plan."""

import json

import numpy as np
import pytest

from rider.evaluate import evaluate
from rider.metrics import METRIC_KEYS, regression_metrics
from rider.predictions import read_predictions
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


def test_single_expert_has_no_dir_checks(small_dataset, plan, tmp_path):
    folder = trained(small_dataset, tmp_path / "single", single_expert=True)
    result = evaluate(folder, small_dataset["cache"], plan, tmp_path / "eval.json", threads=2)
    assert "dir" not in result and result["experts"] == ["single"]
    assert set(result["latent_correlation"]) == {"single"}
    assert all(len(p["routing"]) == 1 for p in result["stress"]["noise"])


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
