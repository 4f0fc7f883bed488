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


def _imported_modules(path: Path, module: str) -> set[str]:
    """Every ``rider`` module ``path`` imports, absolute or relative, at any depth of the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from rider.model import losses`
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


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
