"""Shared fixtures: synthetic datasets generated once per test run, through the real stages, and shared by the
parallel workers (pytest-xdist): the first worker that asks builds, the others wait for it and read what it built."""

import json
import os
from pathlib import Path
from typing import Callable

import pytest
from filelock import FileLock

# Progress bars would flood pytest's captured output.
os.environ.setdefault("TQDM_DISABLE", "1")
# Each parallel worker computes on one thread (as the workflow's model jobs do without a GPU): a worker's OpenMP
# threads spinning beside the other worker's on a 2-core machine cost more than they gain. A test that needs more
# threads (the SLURM comparison) asks for them explicitly.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = "1"

from rider.data.align import align  # noqa: E402
from rider.data.cache import build_cache  # noqa: E402
from rider.data.folds import standard_folds  # noqa: E402
from rider.data.synthetic import RAW_FILES, SyntheticConfig, generate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "data" / "cmu-real"

# Small enough to build in a few seconds, large enough for every split to hold several videos.
TINY = SyntheticConfig(seed=7, videos_per_split=4, segments_per_split=(48, 16, 24), vocabulary_size=300,
                       words_per_segment=(4, 9), audio_hz=50.0, nonfinite_rate=0.01)


# Enough segments for a few epochs of training to show learning, still quick to build.
SMALL = SyntheticConfig(seed=11, videos_per_split=8, segments_per_split=(320, 80, 120), vocabulary_size=500,
                        audio_hz=50.0)

# A RIDER-MoE small enough to train in seconds on 2 CPU cores.
TINY_RUN = {
    "model": {"d_model": 32, "expert_layers": 1, "expert_heads": 2, "expert_ff": 64, "encoder_heads": 2},
    "train": {"epochs": 12, "lr": 3e-3},
}


def build_dataset(config: SyntheticConfig, folder: Path) -> dict[str, Path]:
    """generate -> align -> cache, as the workflow runs them; returns every path."""
    paths = generate(config, folder / "raw")
    paths["aligned"] = folder / "aligned.h5"
    align({role: paths[role] for role in RAW_FILES}, paths["aligned"])
    paths["cache"] = folder / "cache.h5"
    build_cache(paths["aligned"], paths["glove"], standard_folds(config.size), paths["cache"],
                latents_path=paths["latents"], dataset="test")
    return paths


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory) -> Path:
    """A folder of this test run that every worker sees: the workers' base folders share their parent."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(run_folder: Path, name: str, build: Callable[[Path], dict]) -> dict:
    """``build(run_folder / name)`` once per test run, whichever worker asks first; its result (a dict that JSON
    holds, paths as strings) is what every caller gets."""
    folder = run_folder / name
    with FileLock(str(run_folder / f"{name}.lock")):
        record = folder / "built.json"
        if not record.exists():
            folder.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(build(folder), default=str))
        return json.loads(record.read_text())


def shared_dataset(run_folder: Path, name: str, config: SyntheticConfig) -> dict[str, Path]:
    return {role: Path(path) for role, path in build_once(run_folder, name, lambda f: build_dataset(config, f)).items()}


@pytest.fixture(scope="session")
def tiny_dataset(run_folder) -> dict[str, Path]:
    return shared_dataset(run_folder, "tiny", TINY)


@pytest.fixture(scope="session")
def small_dataset(run_folder) -> dict[str, Path]:
    return shared_dataset(run_folder, "small", SMALL)


@pytest.fixture(scope="session")
def mosi_dataset(run_folder) -> dict[str, Path]:
    """The default MOSI-sized synthetic set (about 40 s to build on 2 cores)."""
    return shared_dataset(run_folder, "mosi", SyntheticConfig())
