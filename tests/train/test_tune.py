"""The declared search (rider.train.tune): its trials, what each changes, the choice by validation MAE, a dataset
trained from a choice, and a trial that never reads the test split."""

import json
import math

import h5py
import numpy as np
import pytest
import torch

from rider.model import model_kind
from rider.train.trainer import RunSpec, run_config, train
from rider.train.tune import (TuneConfig, Trial, choose, find_trial, read_choice, trial_overrides,
                              trials, tuned_overrides, write_choice)

SEARCH = TuneConfig(kinds=("tfn", "lmf"), seed=3, sizes=("configured", "authors"), lr_factors=(0.5, 2.0))


def test_every_kind_gets_the_same_trials_in_the_declared_order():
    names = [(t.kind, t.name) for t in trials(SEARCH)]
    assert names == [("tfn", "configured-lr0.5"), ("tfn", "configured-lr2"), ("tfn", "authors-lr0.5"),
                     ("tfn", "authors-lr2"), ("lmf", "configured-lr0.5"), ("lmf", "configured-lr2"),
                     ("lmf", "authors-lr0.5"), ("lmf", "authors-lr2")]
    assert find_trial(SEARCH, "lmf", "authors-lr2") == Trial("lmf", "authors", 2.0)
    with pytest.raises(ValueError, match="no trial 'configured-lr1' of kind 'tfn'"):
        find_trial(SEARCH, "tfn", "configured-lr1")


@pytest.mark.parametrize("values, message", [
    ({"kinds": []}, "tune.kinds is empty"),
    ({"kinds": ["tfn", "tfn"]}, "names a value twice"),
    ({"kinds": ["tfn"], "sizes": ["large"]}, "unknown size"),
    ({"kinds": ["tfn"], "lr_factors": [1.0, 0.0]}, "must be positive"),
    ({"kinds": ["tfn"], "lr_factors": [math.nan]}, "must be positive"),
])
def test_a_bad_search_is_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TuneConfig(**values)


def test_a_trial_scales_the_kinds_own_rate_and_the_authors_size_replaces_the_model():
    dataset = {"train": {"epochs": 7, "lr": 1e-3}, "baselines": {"tfn": {"model": {"text_hidden": 8},
                                                                       "train": {"lr": 4e-3}}}}
    base = run_config(dataset, {"kind": "tfn"})
    published = model_kind("tfn").paper
    configured = trial_overrides(Trial("tfn", "configured", 0.5), base, published, "mosi", 3e-4)
    assert configured == {"train": {"lr": 2e-3}}
    authors = trial_overrides(Trial("tfn", "authors", 2.0), base, published, "mosi", 3e-4)
    assert authors["train"] == {"lr": 8e-3} and authors["model"] == published["mosi"].to_dict()
    run = run_config(dataset, {"kind": "tfn"}, authors)  # a trial trains as a run takes a choice's overrides
    assert run["model"]["text_hidden"] == published["mosi"].text_hidden != 8
    assert run["train"] == {"epochs": 7, "lr": 8e-3}  # the cap and every other setting are the run's
    RunSpec.from_dict(run)
    # a run that leaves the trainer's rate: the factor applies to that
    assert trial_overrides(Trial("tfn", "configured", 2.0), {"train": {}}, published, "mosi", 3e-4) == {
        "train": {"lr": 6e-4}}
    with pytest.raises(ValueError, match="no published size for 'iemocap'"):
        trial_overrides(Trial("tfn", "authors", 1.0), base, published, "iemocap", 3e-4)


def record(kind, trial, mae, lr=1e-3, base=None):
    return {"kind": kind, "trial": trial, "base": base or {"kind": kind, "train": {"lr": 1e-3}},
            "overrides": {"train": {"lr": lr}},
            "metadata": {"kind": kind, "seed": 3, "best_valid": {"mae": mae}, "best_epoch": 4, "epochs": 9,
                         "epochs_run": 9, "parameters": 10, "train_seconds": 1.5}}


SMALL = TuneConfig(kinds=("tfn", "lmf"), lr_factors=(0.5, 1.0, 2.0))


def small_records(tfn=(0.7, 0.5, 0.6), lmf=(0.4, 0.4, math.nan)):
    return [record(kind, t.name, mae, lr=t.lr_factor * 1e-3) for kind, maes in (("tfn", tfn), ("lmf", lmf))
            for t, mae in zip([t for t in trials(SMALL) if t.kind == kind], maes)]


def test_the_choice_is_the_lowest_validation_mae_the_first_of_equal_ones():
    choice = choose(SMALL, small_records())
    assert choice["chosen"]["tfn"]["trial"] == "configured-lr1"
    assert choice["chosen"]["lmf"]["trial"] == "configured-lr0.5"  # tie with lr1: the first declared; NaN never
    assert choice["chosen"]["lmf"]["overrides"] == {"train": {"lr": 0.5e-3}}
    assert [row["chosen"] for row in choice["trials"]] == [False, True, False, True, False, False]
    assert choice["trials"][1]["valid_mae"] == 0.5 and choice["trials"][1]["seed"] == 3
    assert choice["search"] == {"kinds": ["tfn", "lmf"], "seed": 0, "sizes": ["configured"],
                                "lr_factors": [0.5, 1.0, 2.0]}


def test_trials_that_do_not_match_the_search_or_never_learned_are_refused():
    records = small_records()
    with pytest.raises(ValueError, match="do not match the declared search"):
        choose(SMALL, records[:-1])
    with pytest.raises(ValueError, match="do not match the declared search"):
        choose(SMALL, records[3:] + records[:3])
    wrong = [dict(r, metadata={**r["metadata"], "kind": "mult"}) if i == 0 else r for i, r in enumerate(records)]
    with pytest.raises(ValueError, match="trained as kind 'mult'"):
        choose(SMALL, wrong)
    with pytest.raises(ValueError, match=r"no trial of \['lmf'\] reached a finite"):
        choose(SMALL, small_records(lmf=(math.nan, math.inf, math.nan)))


def test_a_written_choice_reads_back_and_a_stale_or_foreign_file_is_refused(tmp_path):
    path = tmp_path / "choice.json"
    written = write_choice(SMALL, small_records(), path)
    assert read_choice(path) == json.loads(json.dumps(written))
    (tmp_path / "old.json").write_text(json.dumps({**written, "version": 0}))
    with pytest.raises(ValueError, match="version 0"):
        read_choice(tmp_path / "old.json")
    (tmp_path / "part.json").write_text(json.dumps({"version": 1, "search": {}}))
    with pytest.raises(ValueError, match="without 'chosen'"):
        read_choice(tmp_path / "part.json")
    (tmp_path / "cut.json").write_text(path.read_text()[:40])
    with pytest.raises(ValueError, match="cut.json"):
        read_choice(tmp_path / "cut.json")


def test_a_dataset_trains_every_variant_of_a_kind_from_its_choice_the_variant_on_top():
    dataset = {"train": {"epochs": 7, "lr": 1e-3}, "baselines": {"tfn": {"model": {"text_hidden": 8}}}}
    base = run_config(dataset, {"kind": "tfn"})
    choice = {"chosen": {"tfn": {"trial": "configured-lr2", "base": base,
                                 "overrides": {"train": {"lr": 2e-3}, "model": {"text_hidden": 16}}}}}
    tuned = tuned_overrides(choice, "tfn", base, "choice.json")
    plain = run_config(dataset, {"kind": "tfn"}, tuned)
    assert plain["train"] == {"epochs": 7, "lr": 2e-3} and plain["model"] == {"text_hidden": 16}
    variant = run_config(dataset, {"kind": "tfn", "train": {"lr": 5e-4}}, tuned)
    assert variant["train"]["lr"] == 5e-4 and variant["model"] == {"text_hidden": 16}
    with pytest.raises(ValueError, match="kind 'lmf' was not tuned"):
        tuned_overrides(choice, "lmf", run_config(dataset, {"kind": "lmf"}), "choice.json")
    moved = run_config({**dataset, "train": {"epochs": 9, "lr": 1e-3}}, {"kind": "tfn"})
    with pytest.raises(ValueError, match=r"choice.json: tfn was tuned from other settings .*its train section"):
        tuned_overrides(choice, "tfn", moved, "choice.json")


def test_a_trial_never_reads_the_test_split(tiny_dataset, tmp_path):
    """The same trial on the cache and on a copy whose test split is all NaN gives the same weights and metrics."""
    spec = RunSpec.from_dict({"kind": "lmf", "train": {"epochs": 2, "batch_size": 8}})
    damaged = tmp_path / "cache.h5"
    damaged.write_bytes(tiny_dataset["cache"].read_bytes())
    with h5py.File(damaged, "r+") as h5:
        for name, data in h5["test"].items():
            if isinstance(data, h5py.Dataset) and data.dtype.kind == "f":
                data[...] = np.nan
    intact = train(spec, tiny_dataset["cache"], tmp_path / "intact", seed=0, threads=1)
    without = train(spec, damaged, tmp_path / "damaged", seed=0, threads=1)
    assert intact["best_valid"] == without["best_valid"] and intact["best_epoch"] == without["best_epoch"]
    weights = [torch.load(tmp_path / name / "model.pt", weights_only=True) for name in ("intact", "damaged")]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
