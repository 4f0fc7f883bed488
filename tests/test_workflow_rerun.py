"""Only changed stages rerun: a real Snakemake run of every stage on a tiny configuration, then dry runs."""

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_RUN
from test_workflow_data import TINY_CONFIG

CONFIG = {
    **copy.deepcopy(TINY_CONFIG),
    "run": {"datasets": ["tiny"], "models": ["rider_moe", "no_prior"], "seeds": [0]},
    "models": {"rider_moe": {}, "no_prior": {"model": {"prior_strength": 0.0}}},
    "stress": {"seed": 0, "grids": {"noise": [0.0, 0.25, 0.5], "missing": [0.0, 0.5], "conflict": [0.0, 1.0]}},
}
CONFIG["datasets"]["tiny"].update(model=TINY_RUN["model"], train={**TINY_RUN["train"], "epochs": 1})


def copy_workflow(target: Path) -> Path:
    """The workflow and the sources its rules declare, in a folder of its own (so touching a source is safe)."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, target / name)
    for folder in ("workflow", "profiles", "rider", "envs", "resources/paper"):
        shutil.copytree(REPO / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def snakemake(project: Path, config: dict, *args: str) -> str:
    (project / "run.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--directory", str(project), "--snakefile", str(project / "Snakefile"),
         "--configfile", str(project / "run.yaml"), "--cores", "2", *args],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned_jobs(project: Path, config: dict) -> dict[str, int]:
    """What a dry run would execute, as {rule: count} from Snakemake's job-stats table."""
    output = snakemake(project, config, "--dry-run")
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if rule != "total"}


@pytest.mark.slow
def test_only_changed_stages_rerun(tmp_path):
    project = copy_workflow(tmp_path)
    snakemake(project, CONFIG, "all")
    for model in ("rider_moe", "no_prior"):
        assert (project / f"results/tiny/{model}/seed0/eval.json").exists()
    assert planned_jobs(project, CONFIG) == {}

    grid = copy.deepcopy(CONFIG)
    grid["stress"]["grids"]["noise"] = [0.0, 0.5]
    report = {"tables": 1, "figures": 1, "all": 1}  # what follows every evaluation
    assert planned_jobs(project, grid) == {"plan": 1, "evaluate": 2, **report}

    learning_rate = copy.deepcopy(CONFIG)
    learning_rate["models"]["no_prior"]["train"] = {"lr": 1e-4}
    assert planned_jobs(project, learning_rate) == {"train": 1, "evaluate": 1, **report}

    # An edit to a source training runs (Snakemake ignores a bare touch: it compares small files' checksums).
    trainer = project / "rider/train/trainer.py"
    trainer.write_text(trainer.read_text() + "\n# an edit\n")
    assert planned_jobs(project, CONFIG) == {"train": 2, "evaluate": 2, "overhead": 1, **report}

    # An edit to a source only the evaluation runs reruns the evaluations, not the training (rider.sources).
    snakemake(project, CONFIG, "all")
    evaluation = project / "rider/diagnostics.py"
    evaluation.write_text(evaluation.read_text() + "\n# an edit\n")
    assert planned_jobs(project, CONFIG) == {"evaluate": 2, **report}
