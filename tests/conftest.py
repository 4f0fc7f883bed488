"""Shared fixtures: synthetic datasets generated once per test session, through the real stages."""

import os
from pathlib import Path

import pytest

# Progress bars would flood pytest's captured output.
os.environ.setdefault("TQDM_DISABLE", "1")

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
def tiny_dataset(tmp_path_factory) -> dict[str, Path]:
    return build_dataset(TINY, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> dict[str, Path]:
    return build_dataset(SMALL, tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="session")
def mosi_dataset(tmp_path_factory) -> dict[str, Path]:
    """The default MOSI-sized synthetic set (about 40 s to build on 2 cores)."""
    return build_dataset(SyntheticConfig(), tmp_path_factory.mktemp("mosi"))
