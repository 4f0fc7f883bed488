"""config.yaml validation: defaults filled, unknown keys and bad values named."""

import copy

import pytest
import yaml

from rider.config import ConfigError, from_mapping, load_config, validate_config
from rider.data.synthetic import SyntheticConfig

from conftest import REPO

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


def test_invalid_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad, SCHEMA)


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
