"""The published numbers shipped under resources/paper/: complete, self-consistent, and matching the numbers the
paper's own prose quotes (an independent check of the typing)."""

import math
import shutil
import subprocess

import pytest
import yaml

from rider.config import load_config
from rider.report.paper import load_published, load_published_cost, published_rows

from conftest import REPO

PUBLISHED = REPO / "resources/paper/rider_moe_published.csv"
COST = REPO / "resources/paper/rider_moe_published_cost.csv"


@pytest.fixture(scope="module")
def published():
    return load_published(PUBLISHED)


def value(published, table, dataset, key, column):
    hit = published[(published["table"] == table) & (published["dataset"] == dataset) & (published["key"] == key)
                    & (published["column"] == column)]
    assert len(hit) == 1, (table, dataset, key, column)
    return hit["value"].item()


def test_every_table_is_complete(published):
    expected = {1: (11, 5), 2: (6, 6), 3: (10, 11), 4: (8, 11), 5: (15, 11)}  # rows, columns per dataset
    for table, (n_rows, n_columns) in expected.items():
        for dataset in ("mosi", "mosei"):
            rows = published_rows(published, table, dataset)
            assert len(rows) == n_rows, (table, dataset)
            assert all(len(cells) == n_columns for _, _, cells in rows), (table, dataset)


def test_rows_marked_dagger_are_the_table3_rows(published):
    # The paper: "Rows marked † are directly reported in Table 3"; and Tables 1-2 repeat RIDER-MoE's row.
    for table in (1, 2, 4, 5):
        for dataset in ("mosi", "mosei"):
            table3 = {key: cells for key, _, cells in published_rows(published, 3, dataset)}
            for key, label, cells in published_rows(published, table, dataset):
                if "†" in label or (table in (1, 2) and key == "rider_moe"):
                    assert cells == {c: table3[key][c] for c in cells}, (table, dataset, key)


@pytest.mark.parametrize("table, dataset, key, column, quoted", [
    # §4.1 and §4.2
    (1, "mosi", "rider_moe", "acc7", 47.13), (1, "mosi", "rider_moe", "acc2", 85.12),
    (1, "mosei", "rider_moe", "acc7", 55.3), (1, "mosei", "rider_moe", "f1", 85.61),
    (1, "mosei", "mma", "acc2", 85.7), (1, "mosei", "mma", "f1", 85.7),
    (1, "mosi", "rider_moe", "mae", 0.714), (1, "mosei", "rider_moe", "corr", 0.772),
    (2, "mosi", "rider_moe", "noise_acc2", 81.1), (2, "mosi", "rider_moe", "missing_corr", 0.691),
    (2, "mosei", "rider_moe", "conflict_acc2", 82.3), (2, "mosei", "rider_moe", "noise_corr", 0.715),
    # §4.3, the ablations
    (3, "mosi", "no_prior", "noise_acc2", 79.3), (3, "mosi", "no_prior", "missing_corr", 0.671),
    (3, "mosi", "no_consensus", "conflict_corr", 0.704), (3, "mosei", "no_consensus", "conflict_corr", 0.685),
    (3, "mosi", "no_dir", "missing_acc2", 72.9), (3, "mosei", "no_dir", "missing_acc2", 73.4),
    (3, "mosi", "no_pid", "conflict_corr", 0.709), (3, "mosi", "no_syn_res", "mae", 0.731),
    (3, "mosi", "no_syn_res", "corr", 0.786), (3, "mosi", "single_expert", "missing_acc2", 71.2),
    (3, "mosei", "single_expert", "missing_acc2", 70.8),
])
def test_values_the_prose_quotes(published, table, dataset, key, column, quoted):
    assert value(published, table, dataset, key, column) == quoted


def test_config_variants_name_published_rows(published):
    # The report puts a published row beside ours by the variant's name: every name in the default report lists
    # must be a row of the corresponding published table, and a declared variant.
    config = load_config(REPO / "config.yaml", REPO / "workflow/schemas/config.schema.yaml")
    for name, table in (("ablations", 3), ("prior_sweep", 4), ("dir_sweep", 5)):
        keys = [key for key, _, _ in published_rows(published, table, "mosi")]
        assert config["report"][name] == keys, name
        assert set(keys) <= set(config["models"]), name


def test_sweep_variants_set_what_their_rows_say():
    config = yaml.safe_load((REPO / "config.yaml").read_text())["models"]
    for name, strength in (("prior_025", 0.25), ("prior_050", 0.5), ("prior_075", 0.75), ("prior_150", 1.5),
                           ("prior_200", 2.0)):
        assert config[name]["model"] == {"prior_strength": strength}
    for name, (pid, syn) in {"dir_001": (0.01, 0.01), "dir_003": (0.03, 0.03), "dir_008": (0.08, 0.08),
                             "dir_010": (0.1, 0.1), "pid002_syn005": (0.02, 0.05), "pid005_syn002": (0.05, 0.02),
                             "pid002_syn008": (0.02, 0.08), "pid008_syn002": (0.08, 0.02)}.items():
        assert config[name]["loss"] == {"lambda_pid": pid, "lambda_syn": syn}


def test_cost_figures_follow_their_definitions():
    cost = load_published_cost(COST).pivot(index="dataset", columns="column", values="value")
    for dataset, row in cost.iterrows():
        for column, size in (("fp32_mib", 4), ("fp16_mib", 2), ("train_state_mib", 16)):
            assert row["parameters"] * size / 2**20 == pytest.approx(row[column], abs=0.005), (dataset, column)
        assert row["steps_per_epoch"] == math.ceil(row["train_samples"] / row["batch_size"])
        assert row["total_steps"] == row["steps_per_epoch"] * row["epochs"]
        assert row["view_forwards"] == 4 * row["total_steps"] == 4 * row["single_view_forwards"]


def test_bad_published_file_is_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(PUBLISHED.read_text().replace("47.13,85.12", "47.13,85.l2", 1))
    with pytest.raises(ValueError, match=r"bad.csv: table 1, mosi, rider_moe, acc2 = '85.l2' is not a number"):
        load_published(bad)


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_the_published_files_are_not_ignored():
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", str(PUBLISHED), str(COST)],
                             capture_output=True, text=True)
    assert ignored.returncode == 1, ignored.stdout  # 1: none of them is ignored
