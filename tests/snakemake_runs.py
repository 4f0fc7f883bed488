"""Running the repository's workflow from a test as a user would: `python -m snakemake` in a subprocess (the Python
API loads no profile), with this interpreter's folder first on PATH so that rules find the `rider` command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

# A synthetic dataset of 24 / 9 / 12 segments over three videos per split: every stage in seconds.
TINY_DATASET = {
    "source": "synthetic",
    "synthetic": {"seed": 3, "videos_per_split": 3, "segments_per_split": [24, 9, 12], "vocabulary_size": 200,
                  "audio_hz": 50},
}
TINY_CONFIG = {"run": {"datasets": ["tiny"]}, "datasets": {"tiny": TINY_DATASET}}


def snakemake_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "TQDM_DISABLE": "1"}


def snakemake(workdir: Path, *args: str, config: dict = TINY_CONFIG, snakefile: Path = REPO / "Snakefile",
              timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the workflow of ``snakefile`` on ``config`` in ``workdir`` with two cores."""
    (workdir / "run.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
         "--configfile", str(workdir / "run.yaml"), "--cores", "2", *args],
        capture_output=True, text=True, env=snakemake_env(), timeout=timeout,
    )


def succeeded(result: subprocess.CompletedProcess) -> str:
    """The run's output, after asserting that it exited 0 (showing its tail if not)."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned_jobs(workdir: Path, config: dict, snakefile: Path) -> dict[str, int]:
    """What a dry run would execute, as {rule: count} from Snakemake's job-stats table."""
    output = succeeded(snakemake(workdir, "--dry-run", config=config, snakefile=snakefile))
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if rule != "total"}
