"""config.yaml validation: defaults filled, unknown keys and bad values named."""

import copy
import subprocess
import sys

import pytest
import yaml

from rider.config import ConfigError, from_mapping, load_config, validate_config
from rider.data.cache import CacheConfig
from rider.data.synthetic import SyntheticConfig

from conftest import REPO
from snakemake_runs import TINY_CONFIG, snakemake

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
MINIMAL = {"datasets": {"toy": {"source": "synthetic"}}}


def test_repository_config_is_valid_and_defaults_are_filled():
    config = load_config(REPO / "config.yaml", SCHEMA)
    synthetic = config["datasets"]["synth_mosi"]["synthetic"]
    assert synthetic["audio_hz"] == 100
    assert config["datasets"]["synth_mosi"]["cache"]["sequence_length"] == 50
    assert config["datasets"]["mosi"]["cmu"]["base_url"].startswith("http://")


def test_defaults_match_the_dataclasses():
    # The schema and the dataclasses both carry defaults; they must not drift apart.
    config = validate_config(copy.deepcopy(MINIMAL), SCHEMA)
    assert from_mapping(SyntheticConfig, config["datasets"]["toy"]["synthetic"]) == SyntheticConfig()
    assert from_mapping(CacheConfig, config["datasets"]["toy"]["cache"]) == CacheConfig()


@pytest.mark.parametrize(
    "patch, expected",
    [
        ({"colour": "blue"}, "unknown key(s) ['colour'] under '<top level>'"),
        ({"datasets": {"toy": {"source": "synthetic", "synthetic": {"sede": 1}}}},
         "unknown key(s) ['sede'] under 'datasets.toy.synthetic'"),
        ({"datasets": {"toy": {"source": "floppy"}}}, "'datasets.toy.source' = \"floppy\""),
        ({"datasets": {"toy": {"source": "synthetic", "synthetic": {"seed": -1}}}},
         "'datasets.toy.synthetic.seed' = -1"),
        ({"datasets": {"toy": {"source": "synthetic", "cache": {"sequence_length": "fifty"}}}},
         "'datasets.toy.cache.sequence_length' = \"fifty\""),
    ],
)
def test_bad_config_names_key_and_value(patch, expected):
    config = {**copy.deepcopy(MINIMAL), **patch}
    with pytest.raises(ConfigError) as error:
        validate_config(config, SCHEMA, source="my.yaml")
    assert expected in str(error.value)
    assert str(error.value).startswith("my.yaml:")


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: {seeds: [0]}\ndatasets: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML") as error:
        load_config(bad, SCHEMA)
    assert "at line 3, column 1" in str(error.value) and "\n" not in str(error.value)


DUPLICATE = """\
datasets:
  toy:
    source: synthetic
    train: {epochs: 3}
    model: {d_model: 32}
    train: {lr: 0.01}
"""


def test_duplicate_yaml_keys_are_refused(tmp_path):
    # Plain YAML keeps the last of two equal keys: the first train section would be silently dropped.
    path = tmp_path / "dup.yaml"
    path.write_text(DUPLICATE)
    with pytest.raises(ConfigError) as error:
        load_config(path, SCHEMA)
    assert f"{path}: not valid YAML at line 6" in str(error.value)
    assert "duplicate key 'train' (first given at line 4)" in str(error.value)


def test_yaml_merge_keys_may_override(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("datasets:\n  a: &a {source: synthetic, folds: mosi}\n  b: {<<: *a, folds: mosi}\n")
    assert load_config(path, SCHEMA)["datasets"]["b"]["source"] == "synthetic"


def test_the_workflow_refuses_duplicate_keys(tmp_path):
    # Snakemake loads the config files itself, with a loader that keeps the last key; the Snakefile rereads them.
    (tmp_path / "run.yaml").write_text(DUPLICATE)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"),
         "--configfile", str(tmp_path / "run.yaml"), "--cores", "1"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "duplicate key 'train' (first given at line 4)" in result.stdout + result.stderr


TOY = {"source": "synthetic"}


def with_dataset(**section):
    return {"datasets": {"toy": {**TOY, **section}}}


# Values that the schema accepted and a later stage refused (or, worse, used): each now stops at parse time.
@pytest.mark.parametrize("config, expected", [
    (with_dataset(train={"epochs": 12.0}), "'datasets.toy.train.epochs' = 12.0: 12.0 is not of type 'integer'"),
    (with_dataset(cache={"sequence_length": 50.0}), "'datasets.toy.cache.sequence_length' = 50.0"),
    ({**with_dataset(), "run": {"seeds": [0, 4294967296]}}, "'run.seeds.1' = 4294967296"),
    ({**with_dataset(), "run": {"seeds": [0, 0]}}, "'run.seeds' = [0, 0]: [0, 0] has non-unique elements"),
    ({**with_dataset(), "run": {"models": ["rider_moe", "rider_moe"]}},
     "'run.models' = [\"rider_moe\", \"rider_moe\"]"),
    ({**with_dataset(), "run": {"datasets": ["toy", "toy"]}}, "'run.datasets' = [\"toy\", \"toy\"]"),
    ({**with_dataset(), "report": {"ablations": ["rider_moe", "rider_moe"]}}, "'report.ablations'"),
    ({**with_dataset(), "stress": {"seed": 2 ** 64}}, "'stress.seed' = 18446744073709551616"),
    ({**with_dataset(), "stress": {"seed": 0.0}}, "'stress.seed' = 0.0"),
    ({**with_dataset(), "stress": {"grids": {"noise": [0.0, 0.5, 0.3]}}},
     "'stress.grids.noise' = [0.0, 0.5, 0.3]: must increase strictly"),
    ({**with_dataset(), "stress": {"grids": {"conflict": [0.25, 0.5]}}},
     "'stress.grids.conflict' = [0.25, 0.5]: must start at 0"),
    (with_dataset(cache={"glove_dim": 50}), "'datasets.toy.cache.glove_dim' = 50: the synthetic GloVe file has 300-d"),
    (with_dataset(folds="mosei"), "'datasets.toy.folds' = \"mosei\": the synthetic data has the mosi video ids"),
    ({"datasets": {"m": {"source": "cmu", "glove_file": "g.txt", "folds": "mosi", "cmu": {"dataset": "mosei"}}}},
     "'datasets.m.folds' = \"mosi\": cmu.dataset is mosei"),
    (with_dataset(synthetic={"words_per_segment": [20, 6]}), "'datasets.toy.synthetic.words_per_segment' = [20, 6]"),
    (with_dataset(train={"text_feature": "text_bert"}), "'datasets.toy.train.text_feature' = \"text_bert\": the cache"),
    ({**with_dataset(), "run": {"datasets": ["toy"], "models": ["bert"]},
      "models": {"bert": {"train": {"text_feature": "text_bert"}}}},
     "'datasets.toy.train.text_feature' = \"text_bert\" (with models.bert)"),
])
def test_late_failing_values_stop_at_parse_time(config, expected):
    with pytest.raises(ConfigError) as error:
        validate_config(copy.deepcopy(config), SCHEMA, source="my.yaml")
    assert str(error.value).startswith("my.yaml: ")
    assert expected in str(error.value), str(error.value)


def test_from_mapping_rejects_unknown_keys():
    with pytest.raises(ConfigError, match=r"synthetic: unknown key\(s\) \['nope'\]"):
        from_mapping(SyntheticConfig, {"nope": 1}, "synthetic")
    built = from_mapping(SyntheticConfig, {"words_per_segment": [3, 4], "label_weights": {"synergy": 2.0}})
    assert built.words_per_segment == (3, 4) and built.label_weights.synergy == 2.0


def test_every_schema_property_is_described():
    schema = yaml.safe_load(SCHEMA.read_text())
    undocumented = []

    def walk(node, path):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub and "$ref" not in sub:
                    undocumented.append(f"{path}.{name}")
                walk(sub, f"{path}.{name}")
            for key in ("$defs", "additionalProperties"):
                if isinstance(node.get(key), dict):
                    for name, sub in (node[key].items() if key == "$defs" else [("*", node[key])]):
                        walk(sub, f"{path}.{name}")

    walk(schema, "")
    assert undocumented == []


def test_a_model_config_the_schema_cannot_judge_stops_the_workflow_before_any_job(tmp_path):
    # Heads that do not divide the width pass the schema (each is a positive integer); the workflow builds every
    # run's RunSpec while it plans, so the dry run already fails, naming the dataset and the variant.
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({
        "run": {"datasets": ["toy"], "models": ["wide"]}, "datasets": {"toy": TOY},
        "models": {"wide": {"model": {"d_model": 30, "expert_heads": 4}}}, "report": {"reference": "wide"}}))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"),
         "--configfile", str(tmp_path / "run.yaml"), "--cores", "1"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "datasets.toy with models.wide" in result.stdout + result.stderr
    assert "d_model = 30 is not divisible by expert_heads = 4" in result.stdout + result.stderr


def test_an_unknown_config_key_stops_the_workflow(tmp_path):
    config = {**TINY_CONFIG, "datasets": {"tiny": {**TINY_CONFIG["datasets"]["tiny"], "colour": "red"}}}
    result = snakemake(tmp_path, "data", "--dry-run", config=config)
    assert result.returncode != 0
    assert "unknown key(s) ['colour'] under 'datasets.tiny'" in result.stdout + result.stderr
    assert not (tmp_path / "resources").exists()
