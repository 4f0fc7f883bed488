"""The paired bootstrap over test samples and the per-sample predictions file it reads."""

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from rider.errors import DataError
from rider.metrics import METRIC_KEYS, nauc, regression_metrics
from rider.predictions import Predictions, read_predictions, write_predictions
from rider.report.bootstrap import (
    ResampledLabels,
    bootstrap_p_values,
    resampled_metrics,
    resampled_quantities,
    two_sided_p,
)
from rider.report.spec import RunRef

SEVERITIES = np.array([0.0, 0.5, 1.0])


def labels_with_ties(rng, n):
    """Sentiment labels as MOSI has them: thirds, zeros, values at ±3 and beyond."""
    y = np.round(rng.uniform(-3.3, 3.3, n) * 3) / 3
    y[:5] = 0.0
    return y


def test_resampled_metrics_equal_regression_metrics_on_every_resample():
    rng = np.random.default_rng(0)
    y = labels_with_ties(rng, 60)
    p = y + rng.normal(0, 1.0, y.size)
    p[:4] = [0.0, 0.5, -0.5, 2.5]  # exact zero and rounding ties
    indices = rng.integers(0, y.size, size=(25, y.size))
    got = resampled_metrics(p, ResampledLabels(y, indices))
    for b, rows in enumerate(indices):
        expected = regression_metrics(p[rows], y[rows])
        assert {k: got[k][b] for k in METRIC_KEYS} == pytest.approx(expected, abs=1e-12), b


def test_resampled_metrics_nan_cases_match():
    y = np.array([0.0, 0.0, 1.0, -2.0])
    p = np.array([0.3, -0.3, 1.0, 1.0])
    indices = np.array([[0, 1, 0, 1],  # every label 0: no non-0 sample; constant label: no Pearson r
                        [2, 3, 2, 3]])
    got = resampled_metrics(p, ResampledLabels(y, indices))
    for b, rows in enumerate(indices):
        expected = regression_metrics(p[rows], y[rows])
        for key in METRIC_KEYS:
            assert (math.isnan(got[key][b]) and math.isnan(expected[key])) or got[key][b] == pytest.approx(
                expected[key]), (b, key)
    assert math.isnan(got["acc2_non0"][0]) and math.isnan(got["corr"][0])
    constant = resampled_metrics(np.full(4, 0.7), ResampledLabels(y, indices))
    assert np.isnan(constant["corr"]).all()


def test_two_sided_p():
    assert two_sided_p(np.full(999, 0.1)) == pytest.approx(2 / 1000)  # every resample on one side
    assert two_sided_p(np.zeros(999)) == 1.0  # no difference at all
    assert two_sided_p(np.linspace(-1, 1, 1001)) == 1.0  # centred on 0
    assert two_sided_p(np.r_[np.full(90, 0.2), np.full(10, -0.2)]) == pytest.approx(2 * 11 / 101)
    assert two_sided_p(np.r_[np.full(99, 0.1), np.nan]) == pytest.approx(2 / 100)  # NaN resamples left out
    assert math.isnan(two_sided_p(np.r_[np.full(4, np.nan), 0.1]))  # mostly undefined: no test


def predictions(labels, prediction, ids=None):
    """A run's predictions: clean, and a noise curve that shrinks towards 0."""
    ids = np.array([f"v{i}" for i in range(labels.size)]) if ids is None else ids
    curve = np.stack([prediction * (1 - 0.8 * s) for s in SEVERITIES])
    return Predictions(ids=ids, labels=labels, clean=prediction, stress={"noise": (SEVERITIES, curve)})


def run(model, seed, dataset="d"):
    folder = Path(f"results/{dataset}/{model}/seed{seed}")
    return RunRef(dataset, model, seed, folder / "eval.json", folder / "predictions.h5")


@pytest.fixture
def three_models():
    """The reference is labels + noise 1.0; `close` adds noise 0.98 (no real difference), `sharp` noise 0.3."""
    rng = np.random.default_rng(2)
    y = labels_with_ties(rng, 300)
    found = {}
    for seed in (0, 1):
        for model, noise in (("reference", 1.0), ("close", 0.98), ("sharp", 0.3)):
            found[run(model, seed)] = predictions(y, y + rng.normal(0, noise, y.size))
    return found


def test_a_sharper_model_differs_and_a_close_one_does_not(three_models):
    p = bootstrap_p_values(three_models, "reference", resamples=400, seed=0).set_index(["model", "quantity"])
    assert set(p.index.get_level_values("model")) == {"close", "sharp"}
    assert set(p.index.get_level_values("quantity")) == {*METRIC_KEYS, *(f"noise.{k}" for k in METRIC_KEYS)}
    for quantity in ("mae", "corr", "acc7", "noise.corr", "noise.mae"):
        assert p.loc[("sharp", quantity), "p_value"] < 0.01, quantity
    assert p.loc[("close", "mae"), "p_value"] > 0.05 and p.loc[("close", "corr"), "p_value"] > 0.05
    again = bootstrap_p_values(three_models, "reference", resamples=400, seed=0)
    assert again.equals(p.reset_index()[again.columns])  # the same seed, the same p-values


def test_the_statistic_is_the_difference_of_seed_means():
    """One seed of `mixed` is far better, the other far worse than the reference: their mean equals the
    reference's, so no difference, although each seed alone would be marked."""
    rng = np.random.default_rng(3)
    y = labels_with_ties(rng, 400)
    noise = rng.normal(0, 1, y.size)
    runs = {run("reference", 0): predictions(y, y + noise), run("reference", 1): predictions(y, y + noise),
            run("mixed", 0): predictions(y, y + 0.5 * noise), run("mixed", 1): predictions(y, y + 1.5 * noise)}
    p = bootstrap_p_values(runs, "reference", resamples=300).set_index("quantity")["p_value"]
    assert p["mae"] > 0.2
    only_good = {k: v for k, v in runs.items() if k.seed == 0}
    assert bootstrap_p_values(only_good, "reference", resamples=300).set_index("quantity")["p_value"]["mae"] < 0.01


def test_runs_pair_by_seed_and_dataset(three_models):
    y = three_models[run("reference", 0)].labels
    lone = {**three_models, run("sharp", 7): predictions(y, y.copy()),  # a perfect seed the reference lacks
            run("other_only", 0, dataset="e"): predictions(y, y.copy())}
    p = bootstrap_p_values(lone, "reference", resamples=200)
    base = bootstrap_p_values(three_models, "reference", resamples=200)
    sharp = p[p["model"] == "sharp"].reset_index(drop=True)
    assert sharp.equals(base[base["model"] == "sharp"].reset_index(drop=True))  # seed 7 is not paired
    assert "e" not in set(p["dataset"])  # no reference on that dataset


def test_different_test_splits_cannot_be_paired(three_models):
    y = three_models[run("reference", 0)].labels
    shuffled = np.array([f"v{i}" for i in range(y.size)])[::-1]
    bad = {**three_models, run("odd", 0): predictions(y, y.copy(), ids=shuffled)}
    with pytest.raises(ValueError, match=r"odd/seed0/predictions.h5 .* different test splits"):
        bootstrap_p_values(bad, "reference", resamples=10)


def test_quantities_cover_every_stressor_curve(three_models):
    some = three_models[run("sharp", 0)]
    indices = np.arange(some.labels.size)[None, :]  # the identity resample: the plain metrics
    got = resampled_quantities(some, ResampledLabels(some.labels, indices))
    curve = [regression_metrics(row, some.labels)["corr"] for row in some.stress["noise"][1]]
    assert got["noise.corr"][0] == pytest.approx(nauc(SEVERITIES, curve))
    assert got["mae"][0] == pytest.approx(regression_metrics(some.clean, some.labels)["mae"])


# --- the predictions file ---------------------------------------------------------------------------------------


def test_predictions_round_trip(tmp_path, three_models):
    original = three_models[run("sharp", 1)]
    write_predictions(tmp_path / "p.h5", original)
    back = read_predictions(tmp_path / "p.h5")
    assert list(back.ids) == list(original.ids)
    assert np.array_equal(back.labels, original.labels) and np.array_equal(back.clean, original.clean)
    assert np.array_equal(back.stress["noise"][0], SEVERITIES)
    assert np.array_equal(back.stress["noise"][1], original.stress["noise"][1])
    assert [p.name for p in tmp_path.iterdir()] == ["p.h5"]  # no temporary left behind


def test_bad_predictions_files_are_named(tmp_path, three_models):
    path = tmp_path / "p.h5"
    write_predictions(path, three_models[run("sharp", 1)])
    data = path.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated.h5: not a readable predictions file"):
        read_predictions(truncated)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        read_predictions(tmp_path / "missing.h5")
    with h5py.File(path, "a") as f:
        del f["clean"]
        f["clean"] = np.zeros(3)
    with pytest.raises(DataError, match=r"p.h5: clean has shape \(3,\), expected \(300,\)"):
        read_predictions(path)
    with h5py.File(path, "a") as f:
        del f["clean"]
        f["clean"] = np.full(300, np.inf)
    with pytest.raises(DataError, match="p.h5: clean holds non-finite values"):
        read_predictions(path)
    with h5py.File(path, "a") as f:
        del f["labels"]
    with pytest.raises(DataError, match="p.h5: predictions file lacks"):
        read_predictions(path)
