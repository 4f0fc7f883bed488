"""The tables' rows, columns, cells and the four formats, from hand-made evaluation JSONs."""

import math

import pandas as pd
import pytest

from rider.report import tables as tab
from rider.report.aggregate import load_evaluations, scalar_frame, summarize
from rider.report.build import write_tables
from rider.report.paper import load_published, load_published_cost

from conftest import REPO
from report_evals import make_spec, write_runs

PUBLISHED = REPO / "resources/paper/rider_moe_published.csv"
COST = REPO / "resources/paper/rider_moe_published_cost.csv"
SIZES = [{"kind": "rider_moe", "title": "RIDER-MoE", "dataset": "mosi", "parameters": 3_126_843},
         {"kind": "rider_moe", "title": "RIDER-MoE", "dataset": "mosei", "parameters": 90_738_747},
         {"kind": "tfn", "title": "TFN", "dataset": "mosi", "parameters": 9_261_723}]


@pytest.fixture
def built(tmp_path):
    runs = write_runs(tmp_path)
    spec = make_spec(runs, ablations=("rider_moe", "no_prior", "no_dir", "single_expert"),
                     prior_sweep=("no_prior", "prior_025", "rider_moe"), dir_sweep=())
    summary = summarize(scalar_frame(load_evaluations(runs)), spec.reference, spec.alpha)
    return spec, summary, load_published(PUBLISHED), load_published_cost(COST)


def rows(table):
    return [(row.source, row.key) for row in table.rows]


def test_table1_every_model_beside_its_published_row_then_the_other_papers_rows(built):
    spec, summary, published, _ = built
    table = tab.clean_table(summary, spec, published, kind_notes=("MISA: frozen text features",))
    assert [c.name for c in table.columns] == ["acc7", "acc2", "f1", "mae", "corr"]
    assert [c.header for c in table.columns] == ["Acc-7", "Acc-2", "F1", "MAE", "Corr"]
    assert table.columns[1].quantity == "acc2_non0" and table.columns[2].quantity == "f1_non0"
    paper = ["tfn", "lmf", "mult", "misa", "self_mm", "mmim", "dmd", "emoe", "t_hne", "mma"]
    assert rows(table) == [("run", "rider_moe"), ("paper", "rider_moe"), ("run", "no_dir"), ("run", "single_expert"),
                           *(("paper", key) for key in paper)]
    assert table.rows[1].label.startswith("↳ paper: RIDER-MoE")
    assert "MISA: frozen text features" in table.notes
    ours = table.rows[2].cells["acc2"]  # no_dir: 70, 73, 74 %
    assert ours.mean == pytest.approx(72.333333) and ours.std == pytest.approx(math.sqrt(39) / 3)
    assert ours.n == 3 and ours.significant and ours.every_seed  # below RIDER-MoE in each seed
    assert tab.cell_text(ours, table.columns[1]) == "72.33 ± 2.08*†"
    assert tab.cell_text(table.rows[0].cells["corr"], table.columns[4]) == "0.600 ± 0.100"
    mma = table.rows[13].cells
    assert (mma["acc2"].printed, mma["f1"].printed, mma["mae"].printed) == ("86.4", "86.40", "0.693")
    assert any("acc2_non0" in note for note in table.notes)


def test_table2_nauc_columns(built):
    spec, summary, published, _ = built
    table = tab.robustness_table(summary, spec, published)
    assert [c.name for c in table.columns] == ["noise_acc2", "noise_corr", "missing_acc2", "missing_corr",
                                               "conflict_acc2", "conflict_corr"]
    assert rows(table)[:4] == [("run", "rider_moe"), ("paper", "rider_moe"), ("run", "no_dir"), ("run", "single_expert")]
    assert [key for source, key in rows(table)[4:]] == ["mmim", "dmd", "emoe", "t_hne", "mma"]
    # rider_moe's noise nAUC of Acc-2: mean clean 82 % minus 0.1 · 0.5 · 100.
    assert table.rows[0].cells["noise_acc2"].mean == pytest.approx(77.0)
    assert table.rows[1].cells["conflict_corr"].printed == "0.734"


def test_table3_each_variant_followed_by_its_published_row(built):
    spec, summary, published, _ = built
    table = tab.variant_table("table3_ablations", summary, spec, published)
    assert [c.name for c in table.columns] == ["acc7", "acc2", "f1", "mae", "corr", "noise_corr", "missing_corr",
                                               "conflict_corr", "noise_acc2", "missing_acc2", "conflict_acc2"]
    # no_prior is in the list but was not evaluated: left out, and said so.
    assert rows(table) == [("run", "rider_moe"), ("paper", "rider_moe"), ("run", "no_dir"), ("paper", "no_dir"),
                           ("run", "single_expert"), ("paper", "single_expert")]
    assert any("no_prior" in note and "not evaluated" in note for note in table.notes)
    assert table.rows[3].cells["missing_acc2"].printed == "72.9"  # w/o DIR, MOSI, M(A2)
    assert table.rows[2].cells["acc2"].significant and not table.rows[0].cells["acc2"].significant


def test_table4_reduced_sweep_and_table5_without_rows(built):
    spec, summary, published, _ = built
    table4 = tab.variant_table("table4_prior_sweep", summary, spec, published)
    assert rows(table4) == [("run", "rider_moe"), ("paper", "rider_moe")]
    assert table4.rows[1].label == "↳ paper: λ_p = 1.0 (default) †"
    assert any("no_prior, prior_025" in note for note in table4.notes)
    table5 = tab.variant_table("table5_dir_sweep", summary, spec, published)
    assert table5.rows == ()


def test_table6_memory_is_parameters_times_bytes(built):
    spec, summary, _, cost = built
    table = tab.parameter_table(summary, spec, cost, SIZES)
    assert [c.name for c in table.columns] == ["parameters", "fp32_mib", "fp16_mib", "train_state_mib"]
    first = table.rows[0].cells
    assert first["parameters"].mean == 1_000_000
    assert first["fp32_mib"].mean == pytest.approx(4_000_000 / 2**20)
    assert first["train_state_mib"].mean == pytest.approx(16_000_000 / 2**20)
    assert rows(table)[-5:] == [("run", "rider_moe_mosi"), ("paper", "mosi"), ("run", "rider_moe_mosei"),
                                ("paper", "mosei"), ("run", "tfn_mosi")]  # the paper's Table 6 has RIDER-MoE only
    assert table.rows[-1].label == "TFN as built here, CMU-MOSI sizes"
    paper_mosi = table.rows[-4].cells
    assert tab.cell_text(paper_mosi["parameters"], table.columns[0]) == "1,522,299"
    assert tab.cell_text(paper_mosi["fp32_mib"], table.columns[1]) == "5.81"
    # The paper's own memory figures follow its definition: 1,522,299 × 4 B = 5.807 MiB.
    assert 1_522_299 * 4 / 2**20 == pytest.approx(5.81, abs=0.005)


def test_overhead_table_beside_the_papers_app_d(built):
    _, _, _, cost = built
    measured = [{"dataset": "synth_mosi", "paper": "mosi", "device": "CPU, 2 threads", "train_samples": 1284,
                 "batch_size": 32, "steps_per_epoch": 41, "epochs": 8, "total_steps": 328, "view_forwards": 1312,
                 "single_view_forwards": 328, "single_view_ms": 10.0, "four_view_ms": 14.0,
                 "step_time_multiplier": 1.4, "flop_ratio": 2.5}]
    table = tab.overhead_table(measured, cost, "App. D")
    assert rows(table) == [("run", "synth_mosi"), ("paper", "mosi")]
    paper = table.rows[1].cells
    assert paper["step_time_multiplier"].printed == "2.80" and math.isnan(paper["four_view_ms"].mean)
    assert tab.cell_text(paper["view_forwards"], table.columns[5]) == "9,840"


def test_the_four_files(built, tmp_path):
    spec, summary, published, _ = built
    table = tab.variant_table("table3_ablations", summary, spec, published)
    out = tmp_path / "tables"
    paths = tab.write_table(table, out)
    assert [p.name for p in paths] == [f"table3_ablations.{s}" for s in ("csv", "md", "tex", "html")]

    csv = pd.read_csv(out / "table3_ablations.csv")
    assert list(csv[["source", "key"]].itertuples(index=False, name=None)) == rows(table)
    assert {"acc2", "acc2_std", "acc2_p", "acc2_significant"} <= set(csv.columns)
    no_dir = csv[(csv["key"] == "no_dir") & (csv["source"] == "run")].iloc[0]
    assert no_dir["acc2"] == pytest.approx(72.3333333) and no_dir["acc2_significant"]  # unrounded

    md = (out / "table3_ablations.md").read_text()
    assert "| Model | Acc-7 ↑ | Acc-2 ↑ | F1 ↑ | MAE ↓ | Corr ↑ | N(C) ↑ |" in md
    assert "| w/o DIR (λ_PID = λ_syn = 0) | 50.00 ± 0.00 | 72.33 ± 2.08\\*† |" in md
    assert "| ↳ paper: w/o DIR (λ_PID = λ_syn = 0) | 46.33 | 84.22 | 84.18 | 0.734 |" in md

    tex = (out / "table3_ablations.tex").read_text()
    for piece in (r"\toprule", r"\midrule", r"\bottomrule", r"72.33 $\pm$ 2.08$^{*\dagger}$",
                  r"w/o DIR ($\lambda_{\text{PID}}$ = $\lambda_{\text{syn}}$ = 0)", r"\label{tab:table3_ablations}"):
        assert piece in tex
    assert tex.count(r"\\") == len(table.rows) + 2  # header, one dataset row, every row

    page = (out / "table3_ablations.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('<tr class="paper">') == 3


def test_write_tables_writes_every_table_from_the_measured_files(built, tmp_path):
    import dataclasses
    import json

    spec, *_ = built
    (tmp_path / "parameters.json").write_text(json.dumps(SIZES))
    (tmp_path / "overhead.json").write_text(json.dumps({
        "dataset": "synth_mosi", "paper": "mosi", "device": "CPU, 1 threads", "train_samples": 1284,
        "batch_size": 32, "steps_per_epoch": 41, "epochs": 8, "total_steps": 328, "view_forwards": 1312,
        "single_view_forwards": 328, "single_view_ms": 10.0, "four_view_ms": 14.0, "step_time_multiplier": 1.4,
        "flop_ratio": 2.5}))
    spec = dataclasses.replace(spec, parameters=tmp_path / "parameters.json",
                               overhead={"synth_mosi": tmp_path / "overhead.json"})
    paths = write_tables(spec, PUBLISHED, COST, tmp_path / "out")
    assert sorted({p.stem for p in paths}) == sorted([*tab.TABLES, "overhead"])
    assert all(p.stat().st_size > 0 for p in paths)
    (tmp_path / "parameters.json").write_text('[{"kind": ')  # truncated
    with pytest.raises(ValueError, match="parameters.json: not a valid parameter-count file"):
        write_tables(spec, PUBLISHED, COST, tmp_path / "out")


def test_chain_table_averages_over_modalities_where_defined_and_skips_kinds_without_signals(built):
    spec, summary, _, _ = built
    table = tab.chain_table(summary, spec)
    assert [c.name for c in table.columns][:3] == ["missing_r", "missing_h", "noise_r"]
    assert rows(table) == [("run", "rider_moe"), ("run", "no_dir")]  # single_expert has no signals here
    cells = table.rows[0].cells
    assert cells["missing_r"].mean == pytest.approx(0.8)  # (.9 + .7 + .8) / 3
    assert cells["conflict_r"].mean == pytest.approx(0.6)  # text is never swapped: (.5 + .7) / 2
    assert cells["conflict_cons"].mean == pytest.approx(0.61) and cells["conflict_cons"].n == 3  # .60, .61, .62
    assert cells["quality_auroc"].mean == pytest.approx(0.75)  # (.7 + .8) / 2, vision NaN
    assert cells["latent_diagonal"].mean == pytest.approx(0.8)  # .9 on the intended pairs, .1 off them
    assert tab.cell_text(cells["conflict_cons"], table.columns[4]) == "0.610 ± 0.010"
    assert any("AUROC" in note for note in table.notes)


def test_tuning_table_every_trial_in_order_the_choice_marked(tmp_path):
    from rider.train.tune import TuneConfig, read_choice, write_choice

    search = TuneConfig(kinds=("rider_moe", "tfn"), seed=2, lr_factors=(0.5, 2.0))
    maes = {("rider_moe", "configured-lr0.5"): 0.61, ("rider_moe", "configured-lr2"): 0.48,
            ("tfn", "configured-lr0.5"): 0.52, ("tfn", "configured-lr2"): 0.77}
    records = [{"kind": kind, "trial": trial, "base": {}, "overrides": {"train": {"lr": 1e-3 * float(trial.split("lr")[1])}},
                "metadata": {"kind": kind, "seed": 2, "best_valid": {"mae": mae}, "best_epoch": 5, "epochs": 30,
                             "epochs_run": 11, "parameters": 1234, "train_seconds": 40.0}}
               for (kind, trial), mae in maes.items()]
    path = tmp_path / "choice.json"
    write_choice(search, records, path)
    table = tab.tuning_table({"synth_mosi": read_choice(path)})
    assert [row.label for row in table.rows] == ["rider_moe: configured-lr0.5", "rider_moe: configured-lr2 ← chosen",
                                                 "tfn: configured-lr0.5 ← chosen", "tfn: configured-lr2"]
    assert table.rows[1].cells["valid_mae"].mean == 0.48 and table.rows[1].cells["epochs_run"].mean == 11
    assert "x learning rate x 0.5, 2, seed 2" in table.groups["synth_mosi"]
    md = tab.to_markdown(table)
    assert "| tfn: configured-lr0.5 ← chosen | 0.00050 | 1,234 | 0.520 | 5 | 11 | 40 | 1 |" in md
    empty = tab.tuning_table({})
    assert empty.rows == () and "No dataset of this run was tuned" in empty.notes[0]
    tab.write_table(empty, tmp_path / "out")  # an untuned run still writes the table's four files
