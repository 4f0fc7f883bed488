"""A real tiny workflow run to the report: `all` builds every table and figure, and `snakemake --report` makes one
HTML file that opens in headless Chromium without a console error (screenshots in test-artifacts/)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rider.report.layout import FIGURES, OVERHEAD_TABLE, TABLE_FORMATS, TABLES

from conftest import REPO
from headless_chromium import Chromium, find_chromium
from report_evals import EXPECTED, assert_drawn

ARTIFACTS = REPO / "test-artifacts"
# Two variants x two seeds of a very small model on a very small synthetic set, two severities per stressor.
CONFIG = {
    "run": {"datasets": ["tiny"], "models": ["rider_moe", "no_dir", "tfn"], "seeds": [0, 1]},
    "datasets": {
        "tiny": {
            "source": "synthetic",
            "synthetic": {"seed": 3, "videos_per_split": 3, "segments_per_split": [24, 9, 12],
                          "vocabulary_size": 200, "audio_hz": 50},
            "model": {"d_model": 16, "expert_layers": 1, "expert_heads": 2, "expert_ff": 32, "encoder_heads": 2},
            "train": {"epochs": 2, "batch_size": 8},
            "baselines": {"tfn": {"model": {"text_hidden": 16, "audio_hidden": 4, "vision_hidden": 4, "text_out": 4,
                                            "post_fusion_dim": 8}}},
        }
    },
    "models": {"rider_moe": {"description": "RIDER-MoE (full)"},
               "no_dir": {"description": "w/o DIR (λ_PID = λ_syn = 0)", "loss": {"lambda_pid": 0.0, "lambda_syn": 0.0}},
               "no_prior": {"description": "w/o prior injection (λ_p = 0)", "model": {"prior_strength": 0.0}},
               "tfn": {"description": "TFN", "kind": "tfn"}},
    "report": {"baselines": ["tfn"], "ablations": ["rider_moe", "no_prior", "no_dir"], "prior_sweep": ["no_prior", "rider_moe"],
               "dir_sweep": ["no_dir", "rider_moe"]},
    "stress": {"grids": {"noise": [0.0, 0.5], "missing": [0.0, 0.6], "conflict": [0.0, 1.0]}},
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` as a user would (profiles load only this way)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(workdir / "tiny.yaml"), "--cores", "2", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report_run")
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(CONFIG, allow_unicode=True))
    # Without a GPU the model jobs take one thread and one core each (common.smk): two at a time on two cores.
    result = snakemake(workdir, "all")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_all_builds_every_table(run):
    for name in [*TABLES, OVERHEAD_TABLE]:
        for fmt in TABLE_FORMATS:
            assert (run / f"results/tables/{name}.{fmt}").stat().st_size > 0, (name, fmt)
    table1 = pd.read_csv(run / "results/tables/table1_clean.csv")
    ours = table1[table1["source"] == "run"]
    assert list(ours["key"]) == ["rider_moe", "no_dir", "tfn"] and list(ours["n"]) == [2, 2, 2]
    # Each trained model is followed by its published row (RIDER-MoE, TFN); the paper's other rows come after.
    keys = list(zip(table1["source"], table1["key"]))
    assert keys[keys.index(("run", "tfn")) + 1] == ("paper", "tfn")
    # The default significance test: a paired bootstrap over the evaluations' per-sample predictions.
    p_values = ours.set_index("key")[["mae_p", "corr_p", "acc2_p"]]
    assert p_values.loc["rider_moe"].isna().all()
    assert p_values.loc["no_dir"].between(0, 1).all()
    assert "paired bootstrap over the test samples" in (run / "results/tables/table1_clean.md").read_text()
    assert (table1["source"] == "paper").sum() == 11  # RIDER-MoE's and TFN's beside their run rows, the rest after
    assert p_values.loc["tfn"].between(0, 1).all()  # the baseline is tested against RIDER-MoE like any variant
    table3 = pd.read_csv(run / "results/tables/table3_ablations.csv")
    assert list(zip(table3["source"], table3["key"])) == [("run", "rider_moe"), ("paper", "rider_moe"),
                                                          ("run", "no_dir"), ("paper", "no_dir")]
    overhead = pd.read_csv(run / "results/tables/overhead.csv").set_index("source")
    assert overhead.loc["run", "steps_per_epoch"] == 3 and overhead.loc["run", "view_forwards"] == 4 * 3 * 2
    assert overhead.loc["run", "four_view_ms"] > 0
    for job in ("tables", "figures"):
        assert (run / f"logs/report/{job}.log").exists() and (run / f"logs/report/{job}.benchmark.tsv").exists()
    assert (run / "logs/tiny/overhead.log").exists() and (run / "results/tiny/overhead.json").exists()
    table6 = pd.read_csv(run / "results/tables/table6_parameters.csv")
    assert {"rider_moe_mosi", "rider_moe_mosei", "tfn_mosi", "tfn_mosei"} <= set(table6["key"])
    table2 = pd.read_csv(run / "results/tables/table2_robustness.csv").set_index(["source", "key"])
    assert table2.loc[("run", "tfn"), "missing_acc2"] > 0  # a baseline is stressed under every stressor


@pytest.mark.slow
def test_figures_from_a_tiny_real_run(run):
    # Figure 3 has two row groups here: RIDER-MoE against the baseline, and against its ablation.
    expected = {**EXPECTED, "figure3_severity": (EXPECTED["figure3_severity"][0], 2 * 2 * 360 + 75)}
    for name in FIGURES:
        assert_drawn(run / f"results/figures/{name}.png", expected[name])
        assert (run / f"results/figures/{name}.pdf").read_bytes().startswith(b"%PDF")


def click(label: str) -> str:
    """JavaScript clicking the last element whose text is exactly ``label``."""
    return (f"(() => {{ const hits = Array.from(document.querySelectorAll('a, button, li, span, div'))"
            f".filter(e => e.textContent.trim() === {label!r}); if (!hits.length) return false;"
            f" hits[hits.length - 1].click(); return true; }})()")


def view_row(label: str) -> str:
    """JavaScript clicking the view button of the result row whose first cell reads ``label``."""
    return (f"(() => {{ const cells = Array.from(document.querySelectorAll('td'))"
            f".filter(e => e.textContent.trim() === {label!r}); if (!cells.length) return false;"
            f" cells[cells.length - 1].closest('tr').querySelector('a').click(); return true; }})()")


@pytest.mark.slow
def test_report_is_one_html_file_that_opens_in_chromium(run, tmp_path):
    result = snakemake(run, "--report", "report.html")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    page = (run / "report.html").read_text()
    for name in [*TABLES, OVERHEAD_TABLE]:
        assert f"{name}.html" in page and f"{name}.csv" in page
    for name in FIGURES:
        assert f"{name}.png" in page
    assert "baselines are not trained here" in page  # Table 1's caption

    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); the report was built but not opened")
    with Chromium(binary, tmp_path / "profile") as browser:
        browser.open((run / "report.html").as_uri())
        text = browser.evaluate("document.body.innerText")
        assert "Tables" in text and "Figures" in text
        assert browser.evaluate(click("Tables")) and browser.evaluate(click(TABLES["table3_ablations"]))
        browser.settle(0.3)
        assert browser.evaluate(view_row("html"))
        browser.settle(0.8)
        assert browser.evaluate("document.querySelectorAll('iframe').length") >= 1
        browser.screenshot(ARTIFACTS / "report.png")

        browser.open((run / "report.html").as_uri(), settle=0.5)
        assert browser.evaluate(click("Figures")) and browser.evaluate(view_row("Figure 3"))
        browser.settle(0.8)
        assert browser.evaluate("Array.from(document.images).some(i => i.src.startsWith('data:image/png'))")
        browser.screenshot(ARTIFACTS / "report-figure3.png")
        assert browser.errors() == []
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
