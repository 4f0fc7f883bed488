"""The package's layers, lowest first, written once: a module imports from its own layer or the layers below it,
never from one above, and no modules import each other in a circle (tests/test_layers.py holds this).

A module belongs to the layer whose longest prefix names it (``rider.model.baselines.mult`` is a model, not the
interface). The interface finds its kinds by name at run time (rider.model.registry imports them with importlib),
the one way up the layers, and a deliberate one: it keeps every kind out of the interface's sources.
"""

from __future__ import annotations

from pathlib import Path

from rider.sources import import_graph

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # What every stage uses: files written whole, configuration, errors, checked readers, metrics, provenance.
    ("foundation", ("rider", "rider.atomic", "rider.config", "rider.device", "rider.errors", "rider.h5",
                    "rider.layers", "rider.metrics", "rider.provenance", "rider.readers", "rider.sources")),
    ("data", ("rider.data",)),  # raw sequences -> aligned file -> cache
    ("stress", ("rider.stress",)),  # the corruption plan over a cache's test split (App. C.2)
    ("model interface", ("rider.model",)),  # what every kind declares, and the pieces any kind may use
    ("models", ("rider.model.rider_moe", "rider.model.baselines")),  # the paper's model, the baselines
    ("training", ("rider.checkpoint", "rider.train")),
    ("evaluation", ("rider.chain", "rider.diagnostics", "rider.evaluate", "rider.predictions")),
    ("report", ("rider.report",)),
    ("command line", ("rider.cli", "rider.__main__")),
)


def layer_of(module: str) -> int:
    """The index in ``LAYERS`` of the layer holding ``module`` (longest matching prefix)."""
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best is None:
        raise ValueError(f"module {module} is in no layer of rider.layers.LAYERS")
    return best


def layer_violations(root: str | Path) -> list[str]:
    """Every import from a higher layer and every import circle among the modules under ``root``, one line each
    (empty when the layers hold)."""
    graph = import_graph(root)
    problems = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(target) > layer_of(module):
                problems.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                                f"({LAYERS[layer_of(target)][0]}), a higher layer")
    problems += [f"import circle: {' -> '.join(cycle)}" for cycle in _cycles(graph)]
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [[*group, group[0]] for group in groups]
