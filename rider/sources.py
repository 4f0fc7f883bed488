"""The ``rider`` source files a stage runs: its entry modules and everything they import from ``rider``, read from
the code itself (Snakemake does not watch imported modules, so each rule declares these as inputs: DESIGN §1).

Imports are read with ``ast`` and never executed, so this costs milliseconds and imports nothing heavy. Both
module-level and function-level imports count (the CLI imports lazily), as do the packages a module sits in
(importing ``rider.model.kind`` runs ``rider/model/__init__.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "rider"


def module_file(root: Path, module: str) -> Path | None:
    """The file of a dotted ``rider`` module under ``root`` (the repository), or None if there is none."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _import_statements(path: Path, module: str):
    """Each import of the file at ``path`` (module ``module``), at any depth: (the module it names, the names it
    takes from it), relative imports resolved; ``import a.b`` takes nothing."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(filter(None, (".".join(parts[:len(parts) - node.level + 1]), node.module)))
            yield base, tuple(alias.name for alias in node.names)


def _in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def _imported_modules(path: Path, module: str) -> set[str]:
    """Every ``rider`` module ``path`` imports, absolute or relative, at any depth of the file, with every name it
    takes as a possible submodule (``from rider.model import losses``)."""
    found = set()
    for base, names in _import_statements(path, module):
        found.add(base)
        found.update(f"{base}.{name}" for name in names)
    return {name for name in found if _in_package(name)}


def stage_sources(root: str | Path, *entry_modules: str) -> list[str]:
    """Sorted paths (relative to ``root``) of the entry modules and every ``rider`` module they reach."""
    root = Path(root)
    seen: dict[str, Path] = {}
    pending = list(entry_modules)
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        path = module_file(root, module)
        if path is None:
            if module in entry_modules:
                raise ValueError(f"stage sources: no module {module!r} under {root}")
            continue  # a name imported from a module (`from rider.model import build_model`), not a module
        seen[module] = path
        parents = module.split(".")
        pending.extend(".".join(parents[:i]) for i in range(1, len(parents)))  # the packages it sits in
        pending.extend(_imported_modules(path, module))
    return sorted(str(path.relative_to(root)) for path in seen.values())


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def direct_imports(root: str | Path, path: Path) -> set[str]:
    """The ``rider`` modules the file at ``path`` imports, at any depth of the file, each resolved to the module it
    names: ``from rider.model import kind`` imports ``rider.model.kind``, ``from rider.model import build_model``
    imports ``rider.model``. The packages a module sits in are not counted: importing them is not its choice."""
    root = Path(root)
    module = _module_name(root, path)
    found = set()
    for base, names in _import_statements(path, module):
        if not names:
            found.add(base)
        for name in names:
            found.add(f"{base}.{name}" if module_file(root, f"{base}.{name}") is not None else base)
    return {name for name in found if _in_package(name) and module_file(root, name) is not None and name != module}


def import_graph(root: str | Path) -> dict[str, set[str]]:
    """Every module of the ``rider`` package under ``root`` (the repository) and the modules it imports."""
    root = Path(root)
    return {_module_name(root, path): direct_imports(root, path) for path in sorted((root / PACKAGE).rglob("*.py"))}
