"""Configuration: ``config.yaml`` validated against the workflow's JSON schema, then typed dataclasses.

Validation fills every default the schema declares, so downstream code never guesses a value; an unknown key
or a bad value stops the run with a message naming the key path and the value. Everything that can be decided
from the configuration alone is decided here, before any stage runs: the schema's types (an integer is never a
float such as ``12.0``), and the relations between keys that a schema cannot express (``check_consistency``).
YAML files are read by a loader that refuses a key given twice in one mapping, which plain YAML loaders (and
Snakemake's) resolve silently by dropping the first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import jsonschema
import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and the value."""


def _is_integer(checker, instance) -> bool:
    # JSON Schema counts 12.0 as an integer; the dataclasses (from_mapping) and the trainer do not, so the schema
    # must not either, or a float would pass here and fail hours later.
    return isinstance(instance, int) and not isinstance(instance, bool)


_STRICT_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer)


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges may override on purpose
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first given at line {first.start_mark.line + 1}); "
                                    "YAML would silently keep only the last", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)



def load_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file, refusing duplicate keys; errors name the file, the line and the column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = err.problem or err.context or "syntax error"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def check_config_files(paths) -> None:
    """Read each existing config file with the strict loader: a duplicate key or a syntax error names the file
    and the line. For the Snakefile, whose ``configfile:`` loads them with a loader that keeps the last of two
    equal keys."""
    for path in paths:
        if Path(path).is_file():
            load_yaml(path)


def _with_defaults(validator_class):
    """A validator that writes each property's ``default`` into the instance before checking it."""
    check_properties = validator_class.VALIDATORS["properties"]

    def fill_then_check(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = json.loads(json.dumps(sub["default"]))  # a copy, never shared
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": fill_then_check})


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def validate_config(config: dict[str, Any], schema: Mapping[str, Any] | str | os.PathLike, source: str = "config") -> dict[str, Any]:
    """Fill defaults into ``config`` in place and validate it; raise ``ConfigError`` on the first problem."""
    if not isinstance(schema, Mapping):
        schema = yaml.safe_load(Path(schema).read_text())
    strict = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_STRICT_TYPES)
    validator = _with_defaults(strict)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        error = errors[0]
        if error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            unknown = sorted(set(error.instance) - set(allowed))
            raise ConfigError(
                f"{source}: unknown key(s) {unknown} under '{_key_path(error)}'; allowed: {allowed}"
            )
        raise ConfigError(f"{source}: '{_key_path(error)}' = {json.dumps(error.instance)}: {error.message}")
    check_consistency(config, source)
    return config


def load_config(path: str | os.PathLike, schema: Mapping[str, Any] | str | os.PathLike) -> dict[str, Any]:
    config = load_yaml(path)
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(config).__name__}")
    return validate_config(config, schema, source=str(path))


MODALITIES = ("text", "audio", "vision")

# Severities are keyed at this resolution by the stress plan (rider.stress.plan), so they must differ by as much.
_SEVERITY_STEP = 1e-6


def check_consistency(config: Mapping[str, Any], source: str = "config") -> None:
    """What the schema cannot say: relations between keys that would otherwise fail, or silently mislead, in a
    later stage. ``config`` has its defaults filled (``validate_config``)."""
    for stressor, grid in config.get("stress", {}).get("grids", {}).items():
        where = f"{source}: 'stress.grids.{stressor}' = {json.dumps(grid)}"
        if grid and grid[0] != 0:
            raise ConfigError(f"{where}: must start at 0 (the clean inputs that nAUC, Eqs. 53-54, starts from)")
        steps = [b - a for a, b in zip(grid, grid[1:])]
        if any(step < _SEVERITY_STEP for step in steps):
            raise ConfigError(f"{where}: must increase strictly (by at least {_SEVERITY_STEP:g})")
    for name, section in config.get("datasets", {}).items():
        where = f"{source}: 'datasets.{name}"
        synthetic, cache = section.get("synthetic", {}), section.get("cache", {})
        if section.get("source") == "synthetic":
            if synthetic.get("size") and section.get("folds") and synthetic["size"] != section["folds"]:
                raise ConfigError(f"{where}.folds' = {json.dumps(section['folds'])}: the synthetic data has the "
                                  f"{synthetic['size']} video ids (synthetic.size); set folds: {synthetic['size']}")
            if "glove_dim" in synthetic and "glove_dim" in cache and synthetic["glove_dim"] != cache["glove_dim"]:
                raise ConfigError(f"{where}.cache.glove_dim' = {cache['glove_dim']}: the synthetic GloVe file has "
                                  f"{synthetic['glove_dim']}-d vectors (synthetic.glove_dim); set both alike")
            low, high = synthetic.get("words_per_segment", (1, 1))
            if low > high:
                raise ConfigError(f"{where}.synthetic.words_per_segment' = {json.dumps([low, high])}: the range's "
                                  "lower end is above its upper end")
        if section.get("source") == "cmu":
            dataset = section.get("cmu", {}).get("dataset")
            if dataset and section.get("folds") and dataset != section["folds"]:
                raise ConfigError(f"{where}.folds' = {json.dumps(section['folds'])}: cmu.dataset is {dataset}, "
                                  f"whose videos lie in the {dataset} folds; set folds: {dataset}")
        if section.get("source") == "pickle" and set(section.get("modalities", MODALITIES)) != set(MODALITIES):
            raise ConfigError(f"{where}.modalities' = {json.dumps(section['modalities'])}: a pickle holds text, "
                              "audio and vision, which its cache keeps; set modalities to all three")
        encoder = section.get("text_encoder", {}).get("model")
        layout = section.get("pickle", {}).get("layout")
        # The dataset's own train section, and every variant `all` trains on the dataset on top of it.
        run = config.get("run", {})
        trained = run.get("models", []) if name in run.get("datasets", []) else []
        variants = {"": {}, **{f" (with models.{m})": config.get("models", {}).get(m, {}) for m in trained}}
        for label, variant in variants.items():
            feature = {**section.get("train", {}), **variant.get("train", {})}.get("text_feature")
            if section.get("source") == "pickle":
                if layout == "mult" and feature == "text_bert":
                    raise ConfigError(f"{where}.train.text_feature' = \"text_bert\"{label}: MulT's pickles (pickle."
                                      "layout: mult) hold GloVe text, the cache's text_glove")
                if layout == "mmsa" and feature != "text_bert":
                    raise ConfigError(f"{where}.train.text_feature' = {json.dumps(feature or 'text_glove')}{label}: "
                                      "MMSA's pickles (pickle.layout: mmsa) hold BERT text, the cache's text_bert; "
                                      "set train.text_feature: text_bert")
            elif feature == "text_bert" and encoder is None:
                raise ConfigError(f"{where}.train.text_feature' = \"text_bert\"{label}: the cache has text_bert "
                                  f"only when datasets.{name}.text_encoder.model names an encoder")


_SCALARS = {int: "int", float: "float", bool: "bool", str: "str"}


def _check_scalar(hint, value, where: str, name: str):
    """Reject a value of the wrong scalar type (a YAML "128" or a 0 for a switch); ints are accepted as floats."""
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
    }[hint]
    if not ok:
        raise ConfigError(f"{where}: {name} = {value!r} is a {type(value).__name__}, expected {_SCALARS[hint]}")
    return float(value) if hint is float else value


def from_mapping(cls: type[T], values: Mapping[str, Any], where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from ``values``, recursing into dataclass-typed fields.

    Unknown keys are an error (a typo must not silently fall back to a default), so is a scalar of the wrong
    type; lists become tuples.
    """
    where = where or cls.__name__
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            value = from_mapping(hint, value, f"{where}.{name}")
        elif hint in _SCALARS:
            value = _check_scalar(hint, value, where, name)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


class ConfigSection:
    """``from_dict`` / ``to_dict`` for a frozen config dataclass (a model's, a loss's): strict on the way in
    (``from_mapping``: unknown keys and wrong scalar types refused, naming ``where``), plain JSON on the way out."""

    @classmethod
    def from_dict(cls: type[T], values: Mapping[str, Any], where: str = "") -> T:
        return from_mapping(cls, values, where or cls.__name__)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
