"""Provenance, checked: a cache built for another dataset, or a plan drawn from another cache, is refused with a
message naming both files, before any work; what each file was built from is recorded."""

import json
import shutil

import h5py
import numpy as np
import pytest

from rider.cli import main
from rider.data.cache import build_cache
from rider.data.folds import standard_folds
from rider.data.glove import read_glove, write_glove
from rider.stress import build_plan
from rider.train.trainer import RunSpec, train

from conftest import TINY_RUN

GRIDS = '{"seed": 0, "grids": {"noise": [0.0, 0.5], "missing": [0.0, 0.4], "conflict": [0.0, 1.0]}}'


@pytest.fixture(scope="module")
def other_cache(tiny_dataset, tmp_path_factory):
    """The tiny dataset's cache built from other word vectors: the same test ids, lengths and labels, other text
    features and statistics."""
    folder = tmp_path_factory.mktemp("other")
    vectors = read_glove(tiny_dataset["glove"], dim=300)
    write_glove(folder / "glove.txt", list(vectors), 2 * np.stack(list(vectors.values())))
    build_cache(tiny_dataset["aligned"], folder / "glove.txt", standard_folds("mosi"), folder / "cache.h5",
                dataset="test")
    return folder / "cache.h5"


@pytest.fixture(scope="module")
def checkpoint(tiny_dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoint")
    run = {"model": TINY_RUN["model"], "train": {**TINY_RUN["train"], "epochs": 1}}
    train(RunSpec.from_dict(run), tiny_dataset["cache"], folder, seed=0, threads=1)
    return folder


def test_cache_of_another_dataset_is_refused_by_the_plan_stage(tiny_dataset, tmp_path, capsys):
    swapped = tmp_path / "resources" / "cache" / "mosi.h5"  # another dataset's cache copied to this one's path
    swapped.parent.mkdir(parents=True)
    shutil.copy(tiny_dataset["cache"], swapped)
    out = tmp_path / "results" / "mosi" / "stress_plan.h5"
    code = main(["plan", "--spec", GRIDS, "--cache", str(swapped), "--dataset", "mosi", "--out", str(out)])
    assert code == 2
    error = capsys.readouterr().err
    assert f"{swapped}: this cache file was built for dataset 'test', not for 'mosi' (--dataset)" in error
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_cache_of_another_dataset_is_refused_before_training(tiny_dataset, tmp_path, capsys):
    spec = json.dumps({"model": TINY_RUN["model"], "train": {"epochs": 1}})
    code = main(["train", "--spec", spec, "--cache", str(tiny_dataset["cache"]), "--dataset", "mosi", "--seed", "0",
                 "--out-dir", str(tmp_path / "run")])
    assert code == 2
    assert "built for dataset 'test', not for 'mosi'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_plan_from_another_cache_is_refused_by_the_evaluation(tiny_dataset, other_cache, checkpoint, tmp_path,
                                                               capsys):
    # The plan fits the cache in shape (same ids, lengths and labels), so nothing else would notice.
    plan = build_plan(other_cache, tmp_path / "plan.h5", grids=json.loads(GRIDS)["grids"])
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--cache", str(tiny_dataset["cache"]),
                 "--plan", str(plan), "--threads", "1", "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 2, error
    assert f"{plan}: this stress plan was built from the cache file {other_cache}" in error
    assert f"not from {tiny_dataset['cache']}" in error
    assert not out.exists()


def test_read_plan_checks_the_cache(tiny_dataset, other_cache, tmp_path):
    from rider.provenance import ProvenanceError
    from rider.stress import read_plan

    plan = build_plan(other_cache, tmp_path / "plan.h5", grids={"missing": [0.0, 0.5]})
    assert read_plan(plan, cache=other_cache).dataset == "test"
    with pytest.raises(ProvenanceError, match="this stress plan was built from the cache file"):
        read_plan(plan, cache=tiny_dataset["cache"])


def test_a_rebuilt_cache_is_named_as_changed(tiny_dataset, tmp_path):
    from rider.provenance import ProvenanceError
    from rider.stress import read_plan

    cache = tmp_path / "cache.h5"
    shutil.copy(tiny_dataset["cache"], cache)
    plan = build_plan(cache, tmp_path / "plan.h5", grids={"missing": [0.0, 0.5]})
    with h5py.File(cache, "r+") as handle:
        handle.attrs["note"] = "rebuilt"
    with pytest.raises(ProvenanceError, match=r"\(that file has changed since\)"):
        read_plan(plan, cache=cache)


def test_cache_and_plan_record_what_they_were_built_from(tiny_dataset, tmp_path):
    from rider.provenance import sha256_file

    cache = tmp_path / "cache.h5"
    spec = {"source": "synthetic", "folds": "mosi"}
    build_cache(tiny_dataset["aligned"], tiny_dataset["glove"], standard_folds("mosi"), cache, dataset="toy",
                provenance_config=spec)
    with h5py.File(cache) as handle:
        record = json.loads(handle.attrs["provenance"])
    assert record["dataset"] == "toy" and record["config"]["source"] == "synthetic"
    assert record["inputs"]["aligned"]["sha256"] == sha256_file(tiny_dataset["aligned"])
    assert record["inputs"]["glove"]["sha256"] == sha256_file(tiny_dataset["glove"])

    plan = build_plan(cache, tmp_path / "plan.h5", grids={"missing": [0.0, 0.5]}, dataset="toy")
    with h5py.File(plan) as handle:
        assert handle.attrs["dataset"] == "toy"
        inputs = json.loads(handle.attrs["provenance"])["inputs"]
    assert inputs["cache"] == {"path": str(cache), "sha256": sha256_file(cache), "dataset": "toy"}


def test_checkpoint_trained_on_another_cache_is_refused(tiny_dataset, other_cache, checkpoint, tmp_path, capsys):
    # What a checkpoint records of its cache (rider.data.cache.cache_record) is checked against the cache given.
    from rider.data.cache import cache_record

    folder = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "cache": cache_record(other_cache)}))
    plan = build_plan(tiny_dataset["cache"], tmp_path / "plan.h5", grids=json.loads(GRIDS)["grids"])
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--checkpoint", str(folder), "--cache", str(tiny_dataset["cache"]), "--plan", str(plan),
                 "--threads", "1", "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 2, error
    assert f"{folder / 'metadata.json'}: this checkpoint was built from the cache file {other_cache}" in error
    assert not out.exists()


def test_training_and_evaluation_record_what_they_were_built_from(tiny_dataset, checkpoint, tmp_path):
    from rider.evaluate import evaluate
    from rider.provenance import sha256_file

    metadata = json.loads((checkpoint / "metadata.json").read_text())
    assert metadata["cache"] == {"path": str(tiny_dataset["cache"]), "sha256": sha256_file(tiny_dataset["cache"]),
                                 "dataset": "test"}
    plan = build_plan(tiny_dataset["cache"], tmp_path / "plan.h5", grids=json.loads(GRIDS)["grids"])
    result = evaluate(checkpoint, tiny_dataset["cache"], plan, tmp_path / "eval.json", threads=1)
    assert result["provenance"]["cache"] == metadata["cache"]
    assert result["provenance"]["plan"]["sha256"] == sha256_file(plan)
    assert result["provenance"]["checkpoint"]["sha256"] == sha256_file(checkpoint / "model.pt")


def test_the_report_refuses_to_mix_evaluations_of_different_caches(tmp_path):
    from rider.provenance import ProvenanceError
    from rider.report.aggregate import load_evaluations
    from rider.report.spec import RunRef

    runs = []
    for model, cache in (("a", "1" * 64), ("b", "2" * 64)):
        path = tmp_path / f"{model}.json"
        path.write_text(json.dumps({"clean": {}, "stress": {}, "provenance": {
            "cache": {"path": f"{model}.h5", "sha256": cache}, "plan": {"path": "p.h5", "sha256": "3" * 64}}}))
        runs.append(RunRef("toy", model, 0, path))
    with pytest.raises(ProvenanceError, match=f"{runs[1].eval}: evaluated on the cache b.h5 .* but {runs[0].eval}"):
        load_evaluations(runs)
    assert len(load_evaluations(runs[:1])) == 1


def test_weights_that_do_not_fit_their_config_are_one_error(checkpoint, tmp_path):
    from rider.checkpoint import load_checkpoint
    from rider.errors import DataError

    folder = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["d_model"] *= 2
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match=r"model.pt: the weights do not fit the rider_moe model that .*config.json"):
        load_checkpoint(folder)
