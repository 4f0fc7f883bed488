"""Aggregation of hand-made evaluation JSONs: mean ± std over seeds, nAUC, the paired test, routing groups."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from rider.report.aggregate import (load_evaluations, paired_p_value, routing_frame, same_sign_in_every_seed,
                                    scalar_frame, summarize)
from rider.report.spec import RunRef

from report_evals import make_eval, write_runs


def p_two_sided_df2(t: float) -> float:
    """P(|T| > t) for Student's t with 2 degrees of freedom: 1 - t / sqrt(2 + t²) (closed form)."""
    return 1 - abs(t) / math.sqrt(2 + t * t)


@pytest.fixture
def summary(tmp_path):
    runs = write_runs(tmp_path)
    return summarize(scalar_frame(load_evaluations(runs)), reference="rider_moe", alpha=0.05)


def cell(summary, model, quantity):
    row = summary[(summary["model"] == model) & (summary["quantity"] == quantity)]
    assert len(row) == 1
    return row.iloc[0]


def test_mean_and_sample_std_over_seeds(summary):
    ref = cell(summary, "rider_moe", "acc2_non0")  # 0.80, 0.82, 0.84
    assert ref["n"] == 3
    assert ref["mean"] == pytest.approx(0.82)
    assert ref["std"] == pytest.approx(0.02)  # sqrt((0.02² + 0 + 0.02²) / 2)
    no_dir = cell(summary, "no_dir", "acc2_non0")  # 0.70, 0.73, 0.74: deviations -7/300, 2/300, 5/300
    assert no_dir["mean"] == pytest.approx(0.72333333)
    assert no_dir["std"] == pytest.approx(math.sqrt((49 + 4 + 25) / 2) / 300)
    assert cell(summary, "rider_moe", "mae")["std"] == pytest.approx(0.0)


def test_nauc_of_linear_curves_over_each_grid(summary):
    # value(s) = clean - drop * s; the trapezoid is exact on a line: nAUC = clean - drop * (s_0 + s_K) / 2.
    assert cell(summary, "rider_moe", "noise.acc2_non0")["mean"] == pytest.approx(0.82 - 0.1 * 0.5)
    assert cell(summary, "no_dir", "missing.acc2_non0")["mean"] == pytest.approx(0.72333333 - 0.2 * 0.4)
    assert cell(summary, "single_expert", "conflict.corr")["mean"] == pytest.approx(0.41 - 0.3 * 0.5)


def test_nauc_is_the_trapezoid_on_an_uneven_grid(tmp_path):
    result = make_eval("rider_moe", 0)
    for point, value in zip(result["stress"]["missing"], (0.8, 0.6, 0.5)):  # severities 0, 0.2, 0.8
        point["metrics"]["acc2_non0"] = value
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(result))
    scalars = scalar_frame(load_evaluations([RunRef("d", "m", 0, path)]))
    value = scalars.loc[scalars["quantity"] == "missing.acc2_non0", "value"].item()
    # (0.2 · (0.8 + 0.6) / 2 + 0.6 · (0.6 + 0.5) / 2) / 0.8 = (0.14 + 0.33) / 0.8
    assert value == pytest.approx(0.5875)


def test_paired_t_test_across_seeds_marks_consistent_differences(summary):
    # acc2: no_dir - rider_moe = -0.10, -0.09, -0.10: mean -0.29/3, sd 0.01/sqrt(3), t = -29 with 2 df.
    acc2 = cell(summary, "no_dir", "acc2_non0")
    assert acc2["p_value"] == pytest.approx(p_two_sided_df2(29.0), rel=1e-6)
    assert acc2["p_value"] == pytest.approx(0.0011869, abs=1e-7)
    assert acc2["significant"]
    # corr: differences -0.05, +0.10, -0.10 -> mean -1/60, sd sqrt(0.065/6), t = -0.2774: not significant.
    corr = cell(summary, "no_dir", "corr")
    t = (-1 / 60) / (math.sqrt(0.065 / 6) / math.sqrt(3))
    assert corr["p_value"] == pytest.approx(p_two_sided_df2(t), rel=1e-6)
    assert corr["p_value"] == pytest.approx(0.8075, abs=1e-4)
    assert not corr["significant"]
    # The reference is not tested against itself.
    ref = cell(summary, "rider_moe", "acc2_non0")
    assert math.isnan(ref["p_value"]) and not ref["significant"]


def test_a_difference_with_one_sign_in_every_seed_holds_across_seeds(summary, tmp_path):
    # acc2: no_dir below rider_moe in all three seeds; corr: -0.05, +0.10, -0.10 changes sign; mae: equal
    assert cell(summary, "no_dir", "acc2_non0")["every_seed"]
    assert not cell(summary, "no_dir", "corr")["every_seed"]
    assert not cell(summary, "no_dir", "mae")["every_seed"] and not cell(summary, "rider_moe", "acc2_non0")["every_seed"]
    # with the bootstrap's p-values too: the mark does not depend on the test
    scalars = scalar_frame(load_evaluations(write_runs(tmp_path)))
    given = pd.DataFrame({"dataset": ["synth_mosi"], "model": ["no_dir"], "quantity": ["acc2_non0"], "p_value": [0.5]})
    assert cell(summarize(scalars, "rider_moe", 0.05, given), "no_dir", "acc2_non0")["every_seed"]
    assert same_sign_in_every_seed({0: 1.0, 1: 2.0, 5: 0.0}, {0: 0.5, 1: 1.0})  # only shared seeds count
    assert not same_sign_in_every_seed({0: 1.0}, {0: 0.5})  # one seed says nothing about seeds
    assert not same_sign_in_every_seed({0: 1.0, 1: 2.0}, None)
    assert not same_sign_in_every_seed({0: 1.0, 1: float("nan"), 2: 3.0}, {0: 0.5, 1: 1.0, 2: 3.0})


def test_a_constant_shift_has_no_p_value(summary):
    # MAE is 0.7 for every run: every difference is 0, t is undefined -> NaN, no mark.
    mae = cell(summary, "no_dir", "mae")
    assert math.isnan(mae["p_value"]) and not mae["significant"]


def test_paired_p_value_pairs_by_seed_and_needs_two():
    assert math.isnan(paired_p_value({0: 0.5}, {0: 0.6}))
    assert math.isnan(paired_p_value({0: 0.5, 1: 0.6}, {2: 0.6, 3: 0.7}))  # no seed in common
    assert math.isnan(paired_p_value({0: 0.5, 1: 0.6}, {0: 0.6, 1: 0.7}))  # differences all -0.1
    assert math.isnan(paired_p_value({0: 0.5, 1: float("nan")}, {0: 0.6, 1: 0.7}))
    # Two pairs (1 df): P(|T| > t) = 1 - 2/π · atan(t); differences 0.1 and 0.3 -> t = 0.2 / (0.1414/√2) = 2.
    p = paired_p_value({0: 0.6, 1: 0.9, 7: 5.0}, {0: 0.5, 1: 0.6})
    assert p == pytest.approx(1 - 2 / math.pi * math.atan(2.0))


def test_given_p_values_replace_the_t_test(tmp_path):
    """The bootstrap's p-values (rider.report.bootstrap) mark the cells they cover; the rest stay unmarked."""
    scalars = scalar_frame(load_evaluations(write_runs(tmp_path)))
    given = pd.DataFrame({"dataset": ["synth_mosi"] * 3, "model": ["no_dir", "no_dir", "rider_moe"],
                          "quantity": ["acc2_non0", "mae", "mae"], "p_value": [0.01, 0.3, 0.001]})
    summary = summarize(scalars, reference="rider_moe", alpha=0.05, p_values=given)
    marked = cell(summary, "no_dir", "acc2_non0")
    assert marked["p_value"] == 0.01 and marked["significant"]
    assert cell(summary, "no_dir", "mae")["p_value"] == 0.3 and not cell(summary, "no_dir", "mae")["significant"]
    assert np.isnan(cell(summary, "no_dir", "corr")["p_value"])  # not covered: no t-test behind it
    assert np.isnan(cell(summary, "rider_moe", "mae")["p_value"])  # the reference is never marked
    t_test = summarize(scalars, reference="rider_moe", alpha=0.05)
    assert list(summary.columns) == list(t_test.columns) and len(summary) == len(t_test)


def test_an_undefined_metric_makes_the_mean_undefined(tmp_path):
    runs = write_runs(tmp_path, models=("rider_moe",))
    result = json.loads(runs[1].eval.read_text())
    result["clean"]["corr"] = float("nan")
    runs[1].eval.write_text(json.dumps(result))
    summary = summarize(scalar_frame(load_evaluations(runs)), reference="rider_moe")
    corr = cell(summary, "rider_moe", "corr")
    assert corr["n"] == 3 and np.isnan(corr["mean"]) and np.isnan(corr["std"])


def test_routing_groups_and_the_single_expert_left_out(tmp_path):
    routing = routing_frame(load_evaluations(write_runs(tmp_path)))
    assert set(routing["model"]) == {"rider_moe", "no_dir"}
    at = routing[(routing["model"] == "rider_moe") & (routing["seed"] == 0) & (routing["stressor"] == "noise")
                 & (routing["severity"] == 0.5)].set_index("group")["value"]
    assert at["π_U"] == pytest.approx(0.1)  # 0.05 + 0.03 + 0.02
    assert at["π_R"] == pytest.approx(0.4) and at["π_S"] == pytest.approx(0.5)


def test_bad_evaluations_are_named(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"clean": {}}))
    with pytest.raises(ValueError, match=r"eval.json: no \['stress'\]"):
        load_evaluations([RunRef("d", "m", 0, path)])
    run = write_runs(tmp_path, models=("rider_moe",))[0]
    with pytest.raises(ValueError, match="is also given by"):
        load_evaluations([run, run])


def test_a_model_without_routing_and_with_one_stressor(tmp_path):
    # A text-only baseline: no experts, no routing, only the noise stressor evaluated (rider.evaluate).
    result = make_eval("single_expert", 0)
    result.update(experts=[], stress={"noise": result["stress"]["noise"]}, not_applicable={"missing": "..."})
    result.pop("latent_correlation")
    for point in result["stress"]["noise"]:
        point["routing"] = []
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(result))
    evaluations = load_evaluations([RunRef("d", "text_only", 0, path)])
    quantities = set(scalar_frame(evaluations)["quantity"])
    assert "noise.corr" in quantities and not any(q.startswith(("missing.", "conflict.", "dir.")) for q in quantities)
    assert routing_frame(evaluations).empty
