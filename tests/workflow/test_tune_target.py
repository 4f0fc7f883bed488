"""The tune target in a real workflow run: a dataset whose `tuned` names the target's own choice tunes first and
trains from it; a choice kept elsewhere is refused once the settings it was made from change."""

import copy
import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from snakemake_runs import TINY_DATASET, snakemake, succeeded

pytestmark = pytest.mark.slow

CONFIG = {
    "run": {"datasets": ["tiny"], "models": ["tfn", "tfn_small_lr"], "seeds": [0]},
    "datasets": {
        "tiny": {
            **TINY_DATASET,
            "tuned": "results/tuning/tiny/choice.json",
            "train": {"epochs": 3, "batch_size": 8, "lr": 1e-3},
            "baselines": {"tfn": {"model": {"text_hidden": 16, "audio_hidden": 4, "vision_hidden": 4, "text_out": 4,
                                            "post_fusion_dim": 8}}},
        }
    },
    "models": {"tfn": {"kind": "tfn"}, "tfn_small_lr": {"kind": "tfn", "train": {"lr": 1e-5}}},
    "tune": {"kinds": ["tfn"], "seed": 4, "lr_factors": [0.5, 4.0]},
}
TRAINED = ["results/tiny/tfn/seed0/config.json", "results/tiny/tfn_small_lr/seed0/config.json"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("tune_project")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, project / name)
    for folder in ("workflow", "rider", "envs", "resources/paper"):
        shutil.copytree(REPO / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return project


def test_a_tuned_dataset_tunes_first_and_every_variant_trains_from_the_choice(project):
    succeeded(snakemake(project, *TRAINED, "tune", config=CONFIG, snakefile=project / "Snakefile"))
    choice = json.loads((project / "results/tuning/tiny/choice.json").read_text())
    trials = {row["trial"]: row for row in choice["trials"]}
    assert sorted(trials) == ["configured-lr0.5", "configured-lr4"]
    for name, row in trials.items():  # what each trial trained is what the choice records
        metadata = json.loads((project / f"results/tuning/tiny/tfn/{name}/metadata.json").read_text())
        trained = json.loads((project / f"results/tuning/tiny/tfn/{name}/config.json").read_text())
        assert metadata["seed"] == 4 and row["valid_mae"] == metadata["best_valid"]["mae"]
        assert trained["train"]["lr"] == pytest.approx(row["lr"]) and trained["train"]["epochs"] == 3
    best = min(trials.values(), key=lambda row: row["valid_mae"])
    assert choice["chosen"]["tfn"]["trial"] == best["trial"] and best["chosen"]
    plain = json.loads((project / TRAINED[0]).read_text())
    assert plain["train"]["lr"] == pytest.approx(best["lr"])
    assert json.loads((project / TRAINED[1]).read_text())["train"]["lr"] == 1e-5  # the variant's own, on top


def test_a_kept_choice_is_refused_once_its_settings_change(project):
    """A copy of the choice kept elsewhere no longer fits once the dataset's settings change (a kind the choice
    lacks is refused the same way: tests/train/test_tune.py)."""
    kept = project / "kept_choice.json"
    kept.write_text((project / "results/tuning/tiny/choice.json").read_text())
    config = copy.deepcopy(CONFIG)
    config["datasets"]["tiny"]["tuned"] = str(kept)
    config["datasets"]["tiny"]["train"]["epochs"] = 4
    result = snakemake(project, *TRAINED, "--dry-run", config=config, snakefile=project / "Snakefile")
    assert result.returncode != 0
    assert "tfn was tuned from other settings than the dataset's present ones (its train section changed)" in (
        result.stdout + result.stderr)
    assert "tune_trial" not in result.stdout + result.stderr  # a kept choice never tunes
