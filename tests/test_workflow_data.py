"""A real Snakemake run of the data stages on a tiny configuration."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import yaml

from rider.data.cache import validate_cache
from rider.provenance import sha256_file

from conftest import REPO

TINY_CONFIG = {
    "run": {"datasets": ["tiny"]},
    "datasets": {
        "tiny": {
            "source": "synthetic",
            "synthetic": {"seed": 3, "videos_per_split": 3, "segments_per_split": [24, 9, 12],
                          "vocabulary_size": 200, "audio_hz": 50},
        }
    },
}


def snakemake(workdir: Path, *args: str, config: dict = TINY_CONFIG) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` as a user would (profiles load only this way)."""
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(workdir / "tiny.yaml"), "--cores", "2", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )


@pytest.mark.slow
def test_data_stages_run_and_do_not_rerun(tmp_path):
    result = snakemake(tmp_path, "data")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert validate_cache(tmp_path / "resources/cache/tiny.h5") == {"train": 24, "valid": 9, "test": 12}
    for stage in ("generate", "align", "cache"):
        assert (tmp_path / f"logs/tiny/{stage}.log").stat().st_size > 0
        assert (tmp_path / f"logs/tiny/{stage}.benchmark.tsv").exists()
    assert "replaced" in (tmp_path / "logs/tiny/align.log").read_text()
    with h5py.File(tmp_path / "resources/cache/tiny.h5") as handle:
        record = json.loads(handle.attrs["provenance"])
    assert record["inputs"]["aligned"]["sha256"] == sha256_file(tmp_path / "resources/aligned/tiny.h5")
    assert record["config"]["cache"]["sequence_length"] == 50

    again = snakemake(tmp_path, "data", "--dry-run")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_unknown_config_key_stops_the_workflow(tmp_path):
    config = {**TINY_CONFIG, "datasets": {"tiny": {**TINY_CONFIG["datasets"]["tiny"], "colour": "red"}}}
    result = snakemake(tmp_path, "data", "--dry-run", config=config)
    assert result.returncode != 0
    assert "unknown key(s) ['colour'] under 'datasets.tiny'" in result.stdout + result.stderr
    assert not (tmp_path / "resources").exists()
