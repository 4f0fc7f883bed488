"""Configuration: ``config.yaml`` validated against the workflow's JSON schema, then typed dataclasses.

Validation fills every default the schema declares, so downstream code never guesses a value; an unknown key
or a bad value stops the run with a message naming the key path and the value.
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
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
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
    return config


def load_config(path: str | os.PathLike, schema: Mapping[str, Any] | str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return validate_config(config, schema, source=str(path))


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
