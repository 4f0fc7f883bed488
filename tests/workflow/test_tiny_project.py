"""One real workflow run of everything on a tiny configuration, then what a user does next with it.

The project (the workflow and the rider sources its rules declare, copied into a folder of its own so that editing
a source is safe) runs `all` once: three variants (RIDER-MoE, its no-DIR ablation, TFN) x two seeds of very small
models, two severities per stressor. Then: the data stages' files, logs and provenance; every table and figure;
`snakemake --report` as one HTML file that opens in headless Chromium without a console error (screenshots in
test-artifacts/); and only what changed reruns, from dry runs after each change (a stress grid, a learning rate,
the trainer, the evaluation, one baseline's module, the paper's router, a new kind).

The tests share the run (a module fixture; a file's tests run in order on one worker); the rerun test comes last and
restores every file it edits."""

import copy
import json
import shutil
from pathlib import Path

import h5py
import pandas as pd
import pytest

from rider.data.cache import validate_cache
from rider.provenance import sha256_file
from rider.report.layout import FIGURES, OVERHEAD_TABLE, TABLE_FORMATS, TABLES

from conftest import REPO
from headless_chromium import Chromium, find_chromium
from report_evals import EXPECTED, assert_drawn
from snakemake_runs import TINY_DATASET, planned_jobs, snakemake, succeeded

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "test-artifacts"
CONFIG = {
    "run": {"datasets": ["tiny"], "models": ["rider_moe", "no_dir", "tfn"], "seeds": [0, 1]},
    "datasets": {
        "tiny": {
            **TINY_DATASET,
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
REPORT = {"tables": 1, "figures": 1, "all": 1}  # the jobs that follow any evaluation


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("tiny_project")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, project / name)
    for folder in ("workflow", "profiles", "rider", "envs", "resources/paper"):
        shutil.copytree(REPO / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    # Without a GPU the model jobs take one thread and one core each (common.smk): two at a time on two cores.
    succeeded(snakemake(project, "all", config=CONFIG, snakefile=project / "Snakefile"))
    return project


def test_data_stages_write_their_files_logs_and_provenance(project):
    assert validate_cache(project / "resources/cache/tiny.h5") == {"train": 24, "valid": 9, "test": 12}
    for stage in ("generate", "align", "cache"):
        assert (project / f"logs/tiny/{stage}.log").stat().st_size > 0
        assert (project / f"logs/tiny/{stage}.benchmark.tsv").exists()
    assert "replaced" in (project / "logs/tiny/align.log").read_text()
    with h5py.File(project / "resources/cache/tiny.h5") as handle:
        record = json.loads(handle.attrs["provenance"])
    assert record["inputs"]["aligned"]["sha256"] == sha256_file(project / "resources/aligned/tiny.h5")
    assert record["config"]["cache"]["sequence_length"] == 50


def test_all_builds_every_table(project):
    for name in [*TABLES, OVERHEAD_TABLE]:
        for fmt in TABLE_FORMATS:
            assert (project / f"results/tables/{name}.{fmt}").stat().st_size > 0, (name, fmt)
    table1 = pd.read_csv(project / "results/tables/table1_clean.csv")
    ours = table1[table1["source"] == "run"]
    assert list(ours["key"]) == ["rider_moe", "no_dir", "tfn"] and list(ours["n"]) == [2, 2, 2]
    # Each trained model is followed by its published row (RIDER-MoE, TFN); the paper's other rows come after.
    keys = list(zip(table1["source"], table1["key"]))
    assert keys[keys.index(("run", "tfn")) + 1] == ("paper", "tfn")
    # The default significance test: a paired bootstrap over the evaluations' per-sample predictions.
    p_values = ours.set_index("key")[["mae_p", "corr_p", "acc2_p"]]
    assert p_values.loc["rider_moe"].isna().all()
    assert p_values.loc["no_dir"].between(0, 1).all()
    assert "paired bootstrap over the test samples" in (project / "results/tables/table1_clean.md").read_text()
    assert (table1["source"] == "paper").sum() == 11  # RIDER-MoE's and TFN's beside their run rows, the rest after
    assert p_values.loc["tfn"].between(0, 1).all()  # the baseline is tested against RIDER-MoE like any variant
    table3 = pd.read_csv(project / "results/tables/table3_ablations.csv")
    assert list(zip(table3["source"], table3["key"])) == [("run", "rider_moe"), ("paper", "rider_moe"),
                                                          ("run", "no_dir"), ("paper", "no_dir")]
    overhead = pd.read_csv(project / "results/tables/overhead.csv").set_index("source")
    assert overhead.loc["run", "steps_per_epoch"] == 3 and overhead.loc["run", "view_forwards"] == 4 * 3 * 2
    assert overhead.loc["run", "four_view_ms"] > 0
    for job in ("tables", "figures"):
        assert (project / f"logs/report/{job}.log").exists()
        assert (project / f"logs/report/{job}.benchmark.tsv").exists()
    assert (project / "logs/tiny/overhead.log").exists() and (project / "results/tiny/overhead.json").exists()
    table6 = pd.read_csv(project / "results/tables/table6_parameters.csv")
    assert {"rider_moe_mosi", "rider_moe_mosei", "tfn_mosi", "tfn_mosei"} <= set(table6["key"])
    table2 = pd.read_csv(project / "results/tables/table2_robustness.csv").set_index(["source", "key"])
    assert table2.loc[("run", "tfn"), "missing_acc2"] > 0  # a baseline is stressed under every stressor


def test_figures_from_a_tiny_real_run(project):
    # Figure 3 has two row groups here: RIDER-MoE against the baseline, and against its ablation.
    expected = {**EXPECTED, "figure3_severity": (EXPECTED["figure3_severity"][0], 2 * 2 * 360 + 75)}
    for name in FIGURES:
        assert_drawn(project / f"results/figures/{name}.png", expected[name])
        assert (project / f"results/figures/{name}.pdf").read_bytes().startswith(b"%PDF")


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


def test_report_is_one_html_file_that_opens_in_chromium(project, tmp_path):
    succeeded(snakemake(project, "--report", "report.html", config=CONFIG, snakefile=project / "Snakefile"))
    page = (project / "report.html").read_text()
    for name in [*TABLES, OVERHEAD_TABLE]:
        assert f"{name}.html" in page and f"{name}.csv" in page
    for name in FIGURES:
        assert f"{name}.png" in page
    assert "baselines are not trained here" in page  # Table 1's caption

    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); the report was built but not opened")
    with Chromium(binary, tmp_path / "profile") as browser:
        browser.open((project / "report.html").as_uri())
        text = browser.evaluate("document.body.innerText")
        assert "Tables" in text and "Figures" in text
        assert browser.evaluate(click("Tables")) and browser.evaluate(click(TABLES["table3_ablations"]))
        browser.settle(0.3)
        assert browser.evaluate(view_row("html"))
        browser.settle(0.8)
        assert browser.evaluate("document.querySelectorAll('iframe').length") >= 1
        browser.screenshot(ARTIFACTS / "report.png")

        browser.open((project / "report.html").as_uri(), settle=0.5)
        assert browser.evaluate(click("Figures")) and browser.evaluate(view_row("Figure 3"))
        browser.settle(0.8)
        assert browser.evaluate("Array.from(document.images).some(i => i.src.startsWith('data:image/png'))")
        browser.screenshot(ARTIFACTS / "report-figure3.png")
        assert browser.errors() == []
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


class Edit:
    """A change to one of the project's source files, undone on exit (Snakemake compares small files' checksums,
    so the restored text is unchanged to it whatever the modification time says)."""

    def __init__(self, path: Path, text: str | None = None):
        self.path, self.text = path, text

    def __enter__(self):
        self.before = self.path.read_text() if self.path.exists() else None
        self.path.write_text((self.before or "") + "\n# an edit\n" if self.text is None else self.text)

    def __exit__(self, *exc):
        if self.before is None:
            self.path.unlink()
        else:
            self.path.write_text(self.before)


def test_only_changed_stages_rerun(project):
    def planned(config=CONFIG):
        return planned_jobs(project, config, project / "Snakefile")

    assert planned() == {}

    grid = copy.deepcopy(CONFIG)
    grid["stress"]["grids"]["noise"] = [0.0, 0.25]
    assert planned(grid) == {"plan": 1, "evaluate": 6, **REPORT}

    learning_rate = copy.deepcopy(CONFIG)
    learning_rate["models"]["no_dir"]["train"] = {"lr": 1e-4}
    assert planned(learning_rate) == {"train": 2, "evaluate": 2, **REPORT}

    # An edit to a source training runs (Snakemake ignores a bare touch: it compares small files' checksums).
    with Edit(project / "rider/train/trainer.py"):
        assert planned() == {"train": 6, "evaluate": 6, "overhead": 1, **REPORT}
    assert planned() == {}

    # An edit to a source only the evaluation runs reruns the evaluations, not the training (rider.sources).
    with Edit(project / "rider/diagnostics.py"):
        assert planned() == {"evaluate": 6, **REPORT}

    # One kind's edit reruns that kind's trainings and evaluations only: TFN's module (and Table 6's count) ...
    with Edit(project / "rider/model/baselines/tfn.py"):
        assert planned() == {"train": 2, "evaluate": 2, "parameters": 1, **REPORT}
    # ... and the paper's router: RIDER-MoE and its ablation, App. D's timing of it, not TFN.
    with Edit(project / "rider/model/rider_moe/router.py"):
        assert planned() == {"train": 4, "evaluate": 4, "overhead": 1, "parameters": 1, **REPORT}

    # A new kind is a new module: nothing already trained reruns.
    tfn = (project / "rider/model/baselines/tfn.py").read_text()
    with Edit(project / "rider/model/baselines/tfn_copy.py", tfn.replace('name="tfn"', 'name="tfn_copy"')):
        assert planned() == {}
