"""Every model kind the pipeline can train, found by name (the ``kind`` of a variant in config.yaml).

A kind lives in a module of its own named after it, in one of ``KIND_PACKAGES`` (the paper's model, the
baselines), which defines ``KIND``, its ``ModelKind``. Nothing here lists the kinds: adding one is adding its module
(and its schema sections), and no file that other kinds' trainings depend on changes. Kinds are imported when first
asked for, so that a stage's declared sources (rider.sources) are the interface, the kinds it runs and what those
import, never every kind (a new baseline reruns no training of another).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Iterator, Mapping

from rider.model.kind import ModelKind

KIND_PACKAGES = ("rider.model.rider_moe", "rider.model.baselines")
DEFAULT_KIND = "rider_moe"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds rider/


def _declares_kind(root: Path, module: str) -> bool:
    """Whether the module's source under ``root`` assigns ``KIND`` at the top level (read, not imported)."""
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    return path.is_file() and any(line.startswith("KIND = ") for line in path.read_text().splitlines())


def kind_module(name: str, root: str | Path | None = None) -> str:
    """The dotted module that declares kind ``name``, found without importing anything (under ``root``, the
    folder that holds ``rider/``: by default this package's)."""
    root = _PACKAGE_ROOT if root is None else Path(root)
    for package in KIND_PACKAGES:
        if _declares_kind(root, f"{package}.{name}"):
            return f"{package}.{name}"
    raise ValueError(f"model kind {name!r} is not one of {sorted(kind_names(root))}")


def kind_names(root: str | Path | None = None) -> list[str]:
    """Every kind's name, in package order and then alphabetically."""
    root = _PACKAGE_ROOT if root is None else Path(root)
    names = []
    for package in KIND_PACKAGES:
        folder = root.joinpath(*package.split("."))
        names += sorted(info.name for info in pkgutil.iter_modules([str(folder)])
                        if _declares_kind(root, f"{package}.{info.name}"))
    return names


def load_kind(name: str) -> ModelKind:
    kind = importlib.import_module(kind_module(name)).KIND
    if kind.name != name:
        raise ValueError(f"{kind_module(name)} declares the kind {kind.name!r}; a kind's module bears its name")
    return kind


class _Kinds(Mapping[str, ModelKind]):
    """Every kind by name, each imported on first use (``MODEL_KINDS``)."""

    def __init__(self):
        self._loaded: dict[str, ModelKind] = {}

    def __getitem__(self, name: str) -> ModelKind:
        if name not in self._loaded:
            try:
                self._loaded[name] = load_kind(name)
            except ValueError:
                raise KeyError(name) from None
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(kind_names())

    def __len__(self) -> int:
        return len(kind_names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in kind_names()


MODEL_KINDS: Mapping[str, ModelKind] = _Kinds()
