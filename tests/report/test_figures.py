"""Figures 3-5 and the latent figure from hand-made evaluations: non-empty images of the size their grid fixes.

(The workflow test, tests/workflow/test_tiny_project.py, draws the same figures from a tiny real run.)
"""

import dataclasses
import json

import pytest

from rider.report import figures
from rider.report.aggregate import (chain_frame, curve_frame, latent_frame, load_evaluations, routing_frame,
                                    scalar_frame)
from rider.report.build import write_figures
from rider.report.figures import DPI, size_inches
from rider.report.spec import RunRef

from report_evals import EXPECTED, assert_drawn, make_eval, make_spec, write_runs


def test_figures_of_one_dataset(tmp_path):
    spec = make_spec(write_runs(tmp_path / "runs"), ablations=("rider_moe", "no_dir", "single_expert"))
    paths = write_figures(spec, tmp_path / "figures")
    assert sorted(p.name for p in paths) == sorted(f"{n}.{s}" for n in EXPECTED for s in ("png", "pdf"))
    for name, size in EXPECTED.items():
        assert tuple(round(x * DPI) for x in size_inches(name, 1)) == size
        assert_drawn(tmp_path / "figures" / f"{name}.png", size)
        assert (tmp_path / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_figures_grow_with_the_datasets(tmp_path):
    runs = write_runs(tmp_path / "runs") + write_runs(tmp_path / "runs", models=("rider_moe", "no_dir"),
                                                      dataset="synth_mosei")
    spec = make_spec(runs, ablations=("rider_moe", "no_dir"))
    evaluations = load_evaluations(spec.runs)
    built = {"figure3_severity": figures.figure3(curve_frame(evaluations), spec),
             "figure4_routing": figures.figure4(routing_frame(evaluations), spec),
             "figure5_dir": figures.figure5(scalar_frame(evaluations), spec),
             "figure_latents": figures.figure_latents(latent_frame(evaluations), spec)}
    panels = {"figure3_severity": 2 * 6, "figure4_routing": 2 * 3, "figure5_dir": 2 * 4, "figure_latents": 2 * 2}
    for name, figure in built.items():
        assert tuple(figure.get_size_inches()) == pytest.approx(size_inches(name, 2))
        assert len([ax for ax in figure.axes if ax.get_label() != "<colorbar>"]) == panels[name], name
    assert size_inches("figure3_severity", 2) == pytest.approx((20.6, 5.3))  # 6 columns of panels
    assert size_inches("figure4_routing", 2) == pytest.approx((11.6, 5.3))  # 2 rows


def test_chain_figure_draws_a_block_of_links_per_variant_and_sums_the_prior_like_pi(tmp_path):
    import dataclasses

    runs = write_runs(tmp_path / "runs")
    spec = dataclasses.replace(make_spec(runs), chain=("no_dir", "not_evaluated"))
    assert spec.chain_models == ("rider_moe", "no_dir")
    evaluations = load_evaluations(spec.runs)
    chain = chain_frame(evaluations)
    assert set(chain["model"]) == {"rider_moe", "no_dir"}  # the hand-made single expert has no signals
    point = chain[(chain["model"] == "rider_moe") & (chain["seed"] == 0) & (chain["stressor"] == "noise")
                  & (chain["severity"] == 0.5) & (chain["signal"] == "reliability") & (chain["part"] == "text")]
    assert point["value"].tolist() == [pytest.approx(0.35)]  # r_T = .4 - .1 s at s = .5
    figure = figures.figure_chain(chain, routing_frame(evaluations), spec)
    assert tuple(figure.get_size_inches()) == pytest.approx(size_inches("figure_chain", 1, 2))
    assert len(figure.axes) == 2 * 5 * 3  # two variants x five links, three stressors
    prior = figure.axes[3 * 3]  # the reference's Prior^exp row, noise
    lines = {line.get_label(): line.get_ydata() for line in prior.get_lines()}
    assert set(lines) == {"π_U", "π_R", "π_S"}
    assert lines["π_U"] == pytest.approx([0.67] * 3)  # .26 + .25 + .16 at every severity
    entropy = {line.get_label() for line in figure.axes[0].get_lines()}
    assert entropy == {"T", "A", "V"}


@pytest.mark.parametrize("name", ["figure_nine"])
def test_unknown_figure_is_refused(name):
    with pytest.raises(ValueError, match="unknown figure 'figure_nine'"):
        size_inches(name, 1)


def test_figure3_draws_baselines_and_ablations_in_rows_of_their_own(tmp_path):
    import dataclasses

    spec = dataclasses.replace(make_spec(write_runs(tmp_path / "runs"), ablations=("rider_moe", "no_dir")),
                               baselines=("single_expert",))  # stands in for a baseline kind
    assert figures.curve_groups(spec) == [("vs baselines", ["rider_moe", "single_expert"]),
                                          ("vs ablations", ["rider_moe", "no_dir"])]
    figure = figures.figure3(curve_frame(load_evaluations(spec.runs)), spec)
    assert tuple(figure.get_size_inches()) == pytest.approx(size_inches("figure3_severity", 1, 2))
    axes = figure.axes
    assert len(axes) == 2 * 2 * 3  # (Acc-2, Corr) x two groups, three stressors
    labels = [set(ax.get_legend_handles_labels()[1]) for ax in axes]
    assert labels[0] == {"RIDER-MoE (full)", "Expert collapse: single expert"}
    assert labels[-1] == {"RIDER-MoE (full)", "w/o DIR (λ_PID = λ_syn = 0)"}


def test_figure4_draws_a_row_per_routed_model_and_another_kinds_experts(tmp_path):
    runs = write_runs(tmp_path / "runs", models=("rider_moe", "no_dir"))
    emoe = make_eval("no_dir", 0)
    emoe["experts"] = ["T", "A", "V"]
    for points in emoe["stress"].values():
        for point in points:
            point["routing"] = [0.6, 0.3, 0.1]
    path = tmp_path / "runs" / "emoe.json"
    path.write_text(json.dumps(emoe))
    runs.append(RunRef("synth_mosi", "emoe", 0, path))
    plain = make_spec(runs[:-1])
    spec = dataclasses.replace(plain, runs=tuple(runs), models={**plain.models, "emoe": "EMOE"},
                               routing=("rider_moe", "emoe"))
    routing = routing_frame(load_evaluations(spec.runs))
    assert set(routing[routing["model"] == "emoe"]["group"]) == {"π_T", "π_A", "π_V"}
    figure = figures.figure4(routing, spec)
    assert len(figure.axes) == 2 * 3  # two models x three stressors
    assert tuple(figure.get_size_inches()) == pytest.approx(size_inches("figure4_routing", 1, 2))
    assert [ax.get_ylabel() for ax in figure.axes[::3]] == ["mean π⁽⁰⁾, rider_moe", "mean π⁽⁰⁾, emoe"]
    assert plain.routing_models == ("rider_moe",)  # no list: the reference alone
