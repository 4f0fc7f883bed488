"""Every ``rider <stage>`` with missing, wrong or inconsistent arguments, or a damaged input file, stops with one
line naming the argument or the file and what was expected: never a traceback, nothing written."""

import json
import re
import shutil

import pytest

from rider.cli import main
from rider.evaluate import evaluate
from rider.stress import build_plan
from rider.train.trainer import RunSpec, train

from conftest import REPO, TINY_RUN

GRIDS = {"seed": 0, "grids": {"noise": [0.0, 0.5], "missing": [0.0, 0.4], "conflict": [0.0, 1.0]}}
RUN = {"model": TINY_RUN["model"], "train": {**TINY_RUN["train"], "epochs": 1}}


@pytest.fixture(scope="module")
def files(tiny_dataset, tmp_path_factory):
    """Every kind of project file, good, and a truncated copy of each (``truncated_<kind>``)."""
    root = tmp_path_factory.mktemp("files")
    paths = {kind: tiny_dataset[kind] for kind in ("aligned", "cache", "glove", "labels", "words", "latents")}
    paths["plan"] = build_plan(tiny_dataset["cache"], root / "plan.h5", grids=GRIDS["grids"])
    paths["checkpoint"] = root / "checkpoint"
    train(RunSpec.from_dict(RUN), tiny_dataset["cache"], paths["checkpoint"], seed=0, threads=1)
    paths["eval"], paths["predictions"] = root / "eval.json", root / "predictions.h5"
    evaluate(paths["checkpoint"], tiny_dataset["cache"], paths["plan"], paths["eval"], threads=1,
             predictions_path=paths["predictions"])
    paths["text"] = root / "notes.txt"
    paths["text"].write_text("not an HDF5 file\n")
    for kind in ("aligned", "cache", "plan", "eval", "predictions", "labels"):
        data = paths[kind].read_bytes()
        paths[f"truncated_{kind}"] = root / f"truncated_{paths[kind].name}"
        paths[f"truncated_{kind}"].write_bytes(data[: len(data) // 2])
    for name in ("model.pt", "config.json", "metadata.json"):
        broken = root / f"truncated_{name}"
        shutil.copytree(paths["checkpoint"], broken)
        data = (broken / name).read_bytes()
        (broken / name).write_bytes(data[: len(data) // 2])
        paths[f"truncated_{name}"] = broken
    paths["other_plan"] = build_plan(tiny_dataset["cache"], root / "other_plan.h5", grids=GRIDS["grids"])
    return paths


def run(argv):
    """The exit status of ``rider argv``."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as stop:  # argparse
        return stop.code


def check(capsys, argv, *fragments, status=2):
    """``rider argv`` exits with ``status`` and one error line holding every fragment, and no traceback."""
    code = run(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    assert code == status, err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


OUT = "@tmp/out/file"  # every case writes here or into @tmp/out; nothing may appear there


# (id, command line with {placeholders}, fragments the one error line must hold)
CASES = [
    ("no-stage", [], ["the following arguments are required: STAGE"]),
    ("unknown-stage", ["trian"], ["invalid choice: 'trian'"]),
    ("generate-no-spec", ["generate", "--out-dir", "@tmp/out"], ["give either --spec JSON or both --config FILE"]),
    ("generate-bad-json", ["generate", "--spec", "{source: synthetic}", "--out-dir", "@tmp/out"],
     ["argument --spec: not valid JSON"]),
    ("generate-wrong-source", ["generate", "--spec", '{"source": "cmu"}', "--out-dir", "@tmp/out"],
     ["source is 'cmu', not synthetic"]),
    ("generate-missing-config", ["generate", "--config", "@tmp/nope.yaml", "--dataset", "x", "--out-dir", "@tmp/out"],
     ["argument --config: @tmp/nope.yaml: no such config file"]),
    ("generate-unknown-dataset", ["generate", "--config", f"{REPO}/config.yaml", "--dataset", "nope",
                                  "--out-dir", "@tmp/out"], ["no dataset 'nope'"]),
    ("generate-spec-and-config", ["generate", "--spec", '{"source": "synthetic"}', "--config", f"{REPO}/config.yaml",
                                  "--dataset", "synth_mosi", "--out-dir", "@tmp/out"], ["not both"]),
    ("generate-out-dir-is-a-file", ["generate", "--spec", '{"source": "synthetic"}', "--out-dir", "@text"],
     ["argument --out-dir: @text: cannot be a folder"]),
    ("download-wrong-source", ["download", "--spec", '{"source": "synthetic"}', "--out-dir", "@tmp/out"],
     ["source is 'synthetic', not cmu"]),
    ("transcribe-missing-labels", ["transcribe", "--labels", "@tmp/labels.csd", "--segments", "@text",
                                   "--out", OUT], ["argument --labels: @tmp/labels.csd: no such label .csd"]),
    ("align-missing-words", ["align", "--spec", "{}", "--words", "@tmp/words.csd", "--labels", "@labels",
                             "--out", OUT], ["argument --words: @tmp/words.csd: no such words .csd"]),
    ("align-bad-aligner", ["align", "--spec", "{}", "--words", "@words", "--labels", "@labels", "--aligner", "slow",
                           "--out", OUT], ["argument --aligner: invalid choice: 'slow'"]),
    ("cache-missing-aligned", ["cache", "--spec", "{}", "--aligned", "@tmp/a.h5", "--out", OUT],
     ["argument --aligned: @tmp/a.h5: no such aligned HDF5 file"]),
    ("cache-aligned-not-hdf5", ["cache", "--spec", "{}", "--aligned", "@text", "--glove", "@glove", "--out", OUT],
     ["@text: not a readable aligned HDF5 file (truncated or corrupt?)"]),
    ("cache-unknown-key", ["cache", "--spec", '{"cache": {"glove_dims": 300}}', "--aligned", "@aligned",
                           "--glove", "@glove", "--out", OUT], ["cache: unknown key(s) ['glove_dims']"]),
    ("cache-out-is-a-folder", ["cache", "--spec", "{}", "--aligned", "@aligned", "--out", "@tmp"],
     ["argument --out: @tmp: is a folder, expected a file to write"]),
    ("plan-spec-not-an-object", ["plan", "--spec", "[0.1]", "--cache", "@cache", "--out", OUT],
     ["argument --spec: expected a JSON object"]),
    ("plan-unknown-key", ["plan", "--spec", '{"grid": {}}', "--cache", "@cache", "--out", OUT],
     ["--spec: unknown key(s) ['grid']; allowed: ['grids', 'seed']"]),
    ("plan-decreasing-grid", ["plan", "--spec", '{"grids": {"noise": [0.5, 0.1]}}', "--cache", "@cache",
                              "--out", OUT], ["grids['noise'] = [0.5, 0.1] must increase strictly"]),
    ("plan-negative-seed", ["plan", "--spec", '{"seed": -1}', "--cache", "@cache", "--out", OUT],
     ["seed must be a non-negative int, got -1"]),
    ("plan-missing-cache", ["plan", "--spec", "{}", "--cache", "@tmp/cache.h5", "--out", OUT],
     ["argument --cache: @tmp/cache.h5: no such cache file"]),
    ("plan-cache-is-aligned-file", ["plan", "--spec", "{}", "--cache", "@aligned", "--out", OUT],
     ["@aligned: not a cache file"]),
    ("train-unknown-key", ["train", "--spec", '{"modle": {}}', "--cache", "@cache", "--seed", "0",
                           "--out-dir", "@tmp/out"], ["run spec: unknown key(s) ['modle']"]),
    ("train-heads-do-not-divide", ["train", "--spec", '{"model": {"d_model": 30, "expert_heads": 4}}', "--cache",
                                   "@cache", "--seed", "0", "--out-dir", "@tmp/out"],
     ["d_model = 30 is not divisible by expert_heads = 4"]),
    ("train-float-epochs", ["train", "--spec", '{"train": {"epochs": 2.5}}', "--cache", "@cache", "--seed", "0",
                            "--out-dir", "@tmp/out"], ["epochs = 2.5 is a float, expected int"]),
    ("train-negative-seed", ["train", "--spec", "{}", "--cache", "@cache", "--seed", "-1", "--out-dir", "@tmp/out"],
     ["argument --seed: -1 must lie in [0, 4294967295]"]),
    ("train-huge-seed", ["train", "--spec", "{}", "--cache", "@cache", "--seed", str(2**32), "--out-dir",
                         "@tmp/out"], ["argument --seed: 4294967296 must lie in"]),
    ("train-zero-threads", ["train", "--spec", "{}", "--cache", "@cache", "--seed", "0", "--threads", "0",
                            "--out-dir", "@tmp/out"], ["argument --threads: 0 must be at least 1"]),
    ("train-text-bert-absent", ["train", "--spec", json.dumps({**RUN, "train": {"epochs": 1, "text_feature":
                                                                                 "text_bert"}}),
                                "--cache", "@cache", "--seed", "0", "--out-dir", "@tmp/out"],
     ["@cache: holds no text_bert features (train.text_feature in --spec)"]),
    ("evaluate-missing-checkpoint", ["evaluate", "--checkpoint", "@tmp/ckpt", "--cache", "@cache", "--plan",
                                     "@plan", "--out", OUT],
     ["argument --checkpoint: @tmp/ckpt: no such checkpoint folder"]),
    ("evaluate-checkpoint-without-weights", ["evaluate", "--checkpoint", "@tmp", "--cache", "@cache", "--plan",
                                             "@plan", "--out", OUT],
     ["@tmp/config.json: no such checkpoint configuration"]),
    ("evaluate-missing-plan", ["evaluate", "--checkpoint", "@checkpoint", "--cache", "@cache", "--plan",
                               "@tmp/plan.h5", "--out", OUT], ["argument --plan: @tmp/plan.h5: no such stress plan"]),
    ("evaluate-plan-is-a-cache", ["evaluate", "--checkpoint", "@checkpoint", "--cache", "@cache", "--plan",
                                  "@cache", "--out", OUT], ["@cache: not a stress plan"]),
    ("evaluate-same-out-and-predictions", ["evaluate", "--checkpoint", "@checkpoint", "--cache", "@cache", "--plan",
                                           "@plan", "--out", OUT, "--predictions", OUT], ["are the same file"]),
    ("evaluate-wrong-dataset", ["evaluate", "--checkpoint", "@checkpoint", "--cache", "@cache", "--plan", "@plan",
                                "--dataset", "mosi", "--out", OUT], ["built for dataset 'test', not for 'mosi'"]),
    ("report-tables-without-paper", ["report", "tables", "--spec", "{}", "--out-dir", "@tmp/out"],
     ["rider report tables needs --paper and --paper-cost"]),
    ("report-unknown-part", ["report", "table", "--spec", "{}", "--out-dir", "@tmp/out"],
     ["argument part: invalid choice: 'table'"]),
    ("report-spec-without-runs", ["report", "figures", "--spec", '{"models": []}', "--out-dir", "@tmp/out"],
     ['--spec: "runs" must be a list']),
    ("report-missing-eval", ["report", "figures", "--spec", json.dumps({"runs": [{"dataset": "d", "model": "m",
                                                                                "seed": 0, "eval": "/nope/eval.json"}],
                                                                       "models": [["m", "M"]], "reference": "m"}),
                             "--out-dir", "@tmp/out"], ["/nope/eval.json: no such evaluation"]),
    ("report-overhead-is-a-stage-of-its-own", ["report", "overhead", "--spec", "{}", "--out-dir", "@tmp/out"],
     ["argument part: invalid choice: 'overhead'"]),
    ("overhead-missing-run-config", ["overhead", "--run-config", "@tmp/config.json", "--cache", "@cache",
                                     "--dataset", "d", "--out", OUT],
     ["argument --run-config: @tmp/config.json: no such checkpoint configuration"]),
    ("overhead-zero-steps", ["overhead", "--run-config", "@text", "--cache", "@cache", "--dataset", "d", "--steps",
                             "0", "--out", OUT], ["argument --steps: 0 must be at least 1"]),
    ("count-unknown-kind", ["count", "--kinds", "rider_moe", "tfnn", "--out", OUT],
     ["model kind 'tfnn' is not one of"]),
    ("tune-fewer-trials-than-files", ["tune", "--spec", json.dumps({"search": {"kinds": ["rider_moe"]}, "trials": []}),
                                      "--metadata", "@checkpoint/metadata.json", "--out", OUT],
     ["--spec declares 0 trials but --metadata names 1 files"]),
    ("tune-trials-not-the-search", ["tune", "--spec", json.dumps({"search": {"kinds": ["rider_moe"], "lr_factors": [1.0]},
                                                                  "trials": [{"kind": "tfn", "trial": "configured-lr1",
                                                                              "base": {}, "overrides": {}}]}),
                                    "--metadata", "@checkpoint/metadata.json", "--out", OUT],
     ["the trials given do not match the declared search"]),
    ("tune-unknown-search-key", ["tune", "--spec", json.dumps({"search": {"kinds": ["tfn"], "sizes": ["configured"],
                                                                         "lr": [1.0]}, "trials": []}),
                                 "--metadata", "@checkpoint/metadata.json", "--out", OUT],
     ["search: unknown key(s) ['lr']"]),
]


PLACEHOLDER = re.compile(r"@([A-Za-z_][A-Za-z0-9_.]*[A-Za-z0-9_])")


def fill(text, files, tmp):
    """``text`` with each ``@name`` replaced by that file's path (``@tmp``: the test's folder)."""
    names = {**{k: str(v) for k, v in files.items()}, "tmp": str(tmp)}
    return PLACEHOLDER.sub(lambda match: names[match.group(1)], text)


@pytest.mark.parametrize("argv, fragments", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_command_line(argv, fragments, files, tmp_path, capsys):
    check(capsys, [fill(part, files, tmp_path) for part in argv], *(fill(f, files, tmp_path) for f in fragments))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


# Every kind of project file, truncated, read by the stage that reads it: named, as truncated.
TRUNCATED = [
    ("aligned", ["cache", "--spec", "{}", "--aligned", "@truncated_aligned", "--glove", "@glove", "--out", OUT],
     "@truncated_aligned: not a readable aligned HDF5 file (truncated or corrupt?)"),
    ("csd", ["align", "--spec", "{}", "--words", "@words", "--labels", "@truncated_labels", "--out", OUT],
     "@truncated_labels"),
    ("cache", ["plan", "--spec", "{}", "--cache", "@truncated_cache", "--out", OUT],
     "@truncated_cache: not a readable cache file (truncated or corrupt?)"),
    ("cache-for-training", ["train", "--spec", "{}", "--cache", "@truncated_cache", "--seed", "0",
                            "--out-dir", "@tmp/out"], "@truncated_cache: not a readable cache file (truncated"),
    ("plan", ["evaluate", "--checkpoint", "@checkpoint", "--cache", "@cache", "--plan", "@truncated_plan",
              "--out", OUT], "@truncated_plan: not a readable stress plan (truncated or corrupt?)"),
    ("model.pt", ["evaluate", "--checkpoint", "@truncated_model.pt", "--cache", "@cache", "--plan", "@plan",
                  "--out", OUT], "model.pt: not a readable weights file (truncated or corrupt?)"),
    ("config.json", ["evaluate", "--checkpoint", "@truncated_config.json", "--cache", "@cache", "--plan", "@plan",
                     "--out", OUT], "config.json: not a valid checkpoint configuration"),
    ("metadata.json", ["evaluate", "--checkpoint", "@truncated_metadata.json", "--cache", "@cache", "--plan",
                       "@plan", "--out", OUT], "metadata.json: not a valid checkpoint metadata"),
    ("trial-metadata.json", ["tune", "--spec", json.dumps({"search": {"kinds": ["rider_moe"], "lr_factors": [1.0]},
                                                          "trials": [{"kind": "rider_moe", "trial": "configured-lr1",
                                                                      "base": {}, "overrides": {}}]}),
                             "--metadata", "@truncated_metadata.json/metadata.json", "--out", OUT],
     "metadata.json: not a valid trial's metadata"),
    ("eval.json", ["report", "figures", "--spec", "SPEC_EVAL", "--out-dir", "@tmp/out"],
     "@truncated_eval: not a valid evaluation"),
    ("predictions", ["report", "tables", "--spec", "SPEC_PREDICTIONS", "--paper", "@text", "--paper-cost", "@text",
                     "--out-dir", "@tmp/out"], "@truncated_predictions: not a readable predictions file (truncated"),
    ("overhead.json", ["report", "tables", "--spec", "SPEC_OVERHEAD", "--paper", "@text", "--paper-cost", "@text",
                       "--out-dir", "@tmp/out"], "@truncated_eval: not a valid measurement"),
]


@pytest.mark.parametrize("argv, fragment", [case[1:] for case in TRUNCATED], ids=[case[0] for case in TRUNCATED])
def test_truncated_file(argv, fragment, files, tmp_path, capsys):
    run_ref = {"dataset": "d", "model": "m", "seed": 0, "eval": "@truncated_eval"}
    specs = {
        "SPEC_EVAL": json.dumps({"runs": [run_ref], "models": [["m", "M"]], "reference": "m"}),
        "SPEC_PREDICTIONS": json.dumps({"runs": [{**run_ref, "eval": "@eval", "predictions": "@truncated_predictions"}],
                                        "models": [["m", "M"]], "reference": "m"}),
        "SPEC_OVERHEAD": json.dumps({"runs": [{**run_ref, "eval": "@eval"}], "models": [["m", "M"]], "reference": "m",
                                     "overhead": {"d": "@truncated_eval"}}),
    }
    argv = [fill(specs.get(part, part), files, tmp_path) for part in argv]
    check(capsys, argv, fill(fragment, files, tmp_path))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))
