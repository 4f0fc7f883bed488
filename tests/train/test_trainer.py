"""Training really learns, reproduces itself with the same seed, and writes a checkpoint that reloads safely."""

import csv
import json

import h5py
import numpy as np
import pytest
import torch

from rider.checkpoint import load_checkpoint
from rider.config import ConfigError
from rider.metrics import METRIC_KEYS
from rider.model.rider_moe.losses import TERMS
from rider.train.trainer import RunSpec, train

from conftest import TINY_RUN


@pytest.fixture(scope="module")
def two_runs(small_dataset, tmp_path_factory):
    spec = RunSpec.from_dict(TINY_RUN)
    folders = [tmp_path_factory.mktemp(f"run{i}") for i in range(2)]
    metadata = [train(spec, small_dataset["cache"], folder, seed=5, threads=1) for folder in folders]
    return folders, metadata


def test_training_learns_well_below_predicting_the_mean(two_runs, small_dataset):
    _, metadata = two_runs
    with h5py.File(small_dataset["cache"]) as handle:
        mean = handle["train/labels"][:].mean()
        baseline = float(np.abs(handle["valid/labels"][:] - mean).mean())
    assert metadata[0]["best_valid"]["mae"] < 0.75 * baseline, (metadata[0]["best_valid"], baseline)
    assert metadata[0]["best_valid"]["corr"] > 0.5


def test_same_seed_reproduces_exactly(two_runs):
    folders, metadata = two_runs
    assert metadata[0]["best_valid"] == metadata[1]["best_valid"]
    assert (folders[0] / "epochs.csv").read_text().split("seconds")[0] == (folders[1] / "epochs.csv").read_text().split("seconds")[0]
    rows = [list(csv.DictReader(open(folder / "epochs.csv"))) for folder in folders]
    for a, b in zip(*rows):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


def test_epoch_log_has_every_loss_term_and_metric(two_runs):
    folders, _ = two_runs
    rows = list(csv.DictReader(open(folders[0] / "epochs.csv")))
    assert len(rows) == TINY_RUN["train"]["epochs"]
    expected = {"epoch", "lr", "seconds", "train_total", *(f"train_{t}" for t in TERMS), *(f"valid_{k}" for k in METRIC_KEYS)}
    assert set(rows[0]) == expected


def test_checkpoint_reloads_with_weights_only(two_runs, small_dataset):
    folders, metadata = two_runs
    model, config, loaded_metadata = load_checkpoint(folders[0])
    assert loaded_metadata == json.loads((folders[0] / "metadata.json").read_text())
    assert config["model"]["d_model"] == TINY_RUN["model"]["d_model"]
    assert config["train"]["epochs"] == TINY_RUN["train"]["epochs"]
    state = torch.load(folders[0] / "model.pt", weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state.values())
    assert not model.training
    # The best epoch's weights: reloading and predicting reproduces the recorded validation MAE.
    from rider.data.split import load_split
    from rider.train.trainer import predict

    valid = load_split(small_dataset["cache"], "valid", torch.device("cpu"))
    mae = float(np.abs(predict(model, valid, 512) - valid.labels.numpy()).mean())
    assert mae == pytest.approx(metadata[0]["best_valid"]["mae"], abs=1e-5)


def test_run_spec_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="epoch"):
        RunSpec.from_dict({"train": {"epoch": 3}})
    with pytest.raises(ValueError, match="unknown key"):
        RunSpec.from_dict({"model": {"d_modle": 3}})


@pytest.mark.slow
def test_compiled_training_agrees_with_eager(tiny_dataset, tmp_path):
    """The graph-captured step (CUDA's default) is the same computation as the eager one (CPU's default). Dropout
    is off: eager batches are trimmed to their longest sample and captured ones are not (static shapes), so the
    same random stream would draw masks of other shapes."""
    run = {**TINY_RUN, "model": {**TINY_RUN["model"], "dropout": 0.0}, "train": {**TINY_RUN["train"], "epochs": 2}}
    eager = train(RunSpec.from_dict(run), tiny_dataset["cache"], tmp_path / "eager", seed=3, threads=1)
    compiled_run = {**run, "train": {**run["train"], "compile": "on", "compile_backend": "aot_eager"}}
    compiled = train(RunSpec.from_dict(compiled_run), tiny_dataset["cache"], tmp_path / "compiled", seed=3, threads=1)
    assert compiled["compiled"] and not eager["compiled"]
    for key in ("mae", "corr"):
        assert compiled["best_valid"][key] == pytest.approx(eager["best_valid"][key], abs=1e-4)


def test_a_run_that_diverges_keeps_its_best_epoch_and_says_so(tiny_dataset, tmp_path, monkeypatch):
    """Validation predictions turn NaN at epoch 3 (a fault put into the real trainer): the run stops there with
    epoch 1 or 2 kept, as early stopping keeps its best; a run with no finite epoch before it fails."""
    import rider.train.trainer as trainer

    real_predict, calls = trainer.predict, []

    def predict_nan_from(epoch):
        def predict(*args, **kwargs):
            calls.append(1)
            out = real_predict(*args, **kwargs)
            return out * np.nan if len(calls) >= epoch else out
        return predict

    spec = RunSpec.from_dict({"kind": "lmf", "train": {"epochs": 6, "batch_size": 8}})
    monkeypatch.setattr(trainer, "predict", predict_nan_from(3))
    metadata = trainer.train(spec, tiny_dataset["cache"], tmp_path / "run", seed=0, threads=1)
    assert metadata["diverged_at_epoch"] == 3 and metadata["epochs_run"] == 3 and metadata["best_epoch"] in (1, 2)
    assert np.isfinite(metadata["best_valid"]["mae"])
    rows = list(csv.DictReader(open(tmp_path / "run/epochs.csv")))
    assert len(rows) == 3 and rows[2]["valid_mae"] == "nan"
    calls.clear()
    monkeypatch.setattr(trainer, "predict", predict_nan_from(1))
    with pytest.raises(FloatingPointError, match="diverged at epoch 1: .*non-finite validation predictions; no epoch"):
        trainer.train(spec, tiny_dataset["cache"], tmp_path / "never", seed=0, threads=1)
    assert not (tmp_path / "never/model.pt").exists()
