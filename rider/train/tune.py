"""One rule for every model's budget (issue 21): a declared search on validation MAE, the same trials for each kind.

Each tuned kind is trained once per trial, a trial being a model size and a learning rate:

- the size: ``configured`` (the dataset's section for the kind, as the default run gives it) or ``authors`` (the
  kind's published configuration for the paper dataset whose folds the dataset uses, ``ModelKind.paper``);
- the learning rate: the kind's configured rate times each of ``lr_factors``, so every kind is searched around
  its own authors' rate with the same factors.

Everything else is the run's: the dataset's epoch cap and early stopping (``train.epochs``, ``train.patience``)
are the same in a trial as in the runs that use its choice, and a trial keeps its best-validation epoch as every
run does. A trial trains with the search's seed through the ordinary trainer, which reads the train and
validation splits only: the test split is never read while tuning. The choice per kind is the trial with the
lowest best validation MAE (the first declared of equal ones); ``choose`` writes the trials and the choice to one
JSON file, the workflow's ``tune`` target. A dataset whose config names such a file (``datasets.<name>.tuned``)
trains every variant of a kind from the kind's choice (``tuned_overrides``), the variant's own changes on top; a
choice made from other settings than the dataset's present ones, or without a kind the run trains, is refused.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rider.atomic import write_json
from rider.readers import read_json

SIZES = ("configured", "authors")
CHOICE_VERSION = 1


@dataclass(frozen=True)
class TuneConfig:
    """The declared search (config.yaml's ``tune``)."""

    kinds: tuple[str, ...]
    seed: int = 0
    sizes: tuple[str, ...] = ("configured",)
    lr_factors: tuple[float, ...] = (0.5, 1.0, 2.0)

    def __post_init__(self):
        for name in ("kinds", "sizes", "lr_factors"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # YAML gives lists
            values = getattr(self, name)
            if not values:
                raise ValueError(f"tune.{name} is empty")
            if len(set(values)) != len(values):
                raise ValueError(f"tune.{name} = {list(values)} names a value twice")
        unknown = sorted(set(self.sizes) - set(SIZES))
        if unknown:
            raise ValueError(f"tune.sizes: unknown size(s) {unknown}; expected some of {list(SIZES)}")
        bad = [f for f in self.lr_factors if not (math.isfinite(f) and f > 0)]
        if bad:
            raise ValueError(f"tune.lr_factors: {bad} must be positive")


@dataclass(frozen=True)
class Trial:
    """One trial of one kind: its name (a folder name), its size and learning-rate factor."""

    kind: str
    size: str
    lr_factor: float

    @property
    def name(self) -> str:
        return f"{self.size}-lr{self.lr_factor:g}"


def trials(search: TuneConfig) -> list[Trial]:
    """Every trial of the search, kind by kind, in the declared order (sizes, then learning-rate factors)."""
    return [Trial(kind, size, factor) for kind in search.kinds for size in search.sizes for factor in search.lr_factors]


def find_trial(search: TuneConfig, kind: str, name: str) -> Trial:
    for trial in trials(search):
        if trial.kind == kind and trial.name == name:
            return trial
    raise ValueError(f"tune: no trial {name!r} of kind {kind!r} in the declared search "
                     f"(kinds {list(search.kinds)}, trials {[t.name for t in trials(search) if t.kind == search.kinds[0]]})")


def trial_overrides(trial: Trial, run: Mapping[str, Any], published: Mapping[str, Any], paper_dataset: str | None,
                    default_lr: float) -> dict[str, Any]:
    """What a trial changes in the kind's run settings (``run_config``'s output): its learning rate (``default_lr``
    where the run leaves the trainer's), and at the ``authors`` size the whole model section: the kind's published
    configuration for ``paper_dataset`` (``published``: ``ModelKind.paper``)."""
    lr = run["train"].get("lr", default_lr)
    overrides: dict[str, Any] = {"train": {"lr": float(lr) * trial.lr_factor}}
    if trial.size == "authors":
        if paper_dataset not in published:
            raise ValueError(f"tune: kind {trial.kind!r} has no published size for {paper_dataset!r} "
                             f"(it has {sorted(published)}); drop `authors` from tune.sizes for this dataset")
        overrides["model"] = published[paper_dataset].to_dict()
    return overrides


def choose(search: TuneConfig, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The choice per kind from the trials' records, each ``{"kind", "trial", "base", "overrides", "metadata"}``
    (``base``: the kind's run settings the trial changed; ``metadata``: the trainer's metadata.json with
    ``best_valid``, ``best_epoch``, ``epochs_run``, ...), in the declared order: the lowest best validation MAE, the
    first declared of equal ones."""
    expected = [(t.kind, t.name) for t in trials(search)]
    given = [(r["kind"], r["trial"]) for r in records]
    if given != expected:
        missing = sorted(set(expected) - set(given))
        raise ValueError(f"tune: the trials given do not match the declared search (missing {missing[:4]}, "
                         f"{len(given)} given, {len(expected)} declared)")
    rows, best = [], {}
    for record in records:
        meta = record["metadata"]
        if meta.get("kind") != record["kind"]:
            raise ValueError(f"tune: trial {record['trial']} of {record['kind']} was trained as kind {meta.get('kind')!r}")
        mae = float(meta["best_valid"]["mae"])
        row = {"kind": record["kind"], "trial": record["trial"], "lr": record["overrides"]["train"]["lr"],
               "size": record["trial"].split("-lr")[0], "valid_mae": mae, "best_epoch": int(meta["best_epoch"]),
               "epochs_run": int(meta.get("epochs_run", meta["epochs"])), "parameters": int(meta["parameters"]),
               "train_seconds": float(meta["train_seconds"]), "seed": int(meta["seed"])}
        rows.append(row)
        if math.isfinite(mae) and (record["kind"] not in best or mae < best[record["kind"]][0]["valid_mae"]):
            best[record["kind"]] = (row, record)
    unlearned = sorted(set(search.kinds) - set(best))
    if unlearned:
        raise ValueError(f"tune: no trial of {unlearned} reached a finite validation MAE")
    for row in rows:
        row["chosen"] = best[row["kind"]][0] is row
    return {"version": CHOICE_VERSION,
            "search": {"kinds": list(search.kinds), "seed": search.seed, "sizes": list(search.sizes),
                       "lr_factors": list(search.lr_factors)},
            "chosen": {kind: {"trial": row["trial"], "base": record["base"], "overrides": record["overrides"]}
                       for kind, (row, record) in best.items()},
            "trials": rows}


def write_choice(search: TuneConfig, records: Sequence[Mapping[str, Any]], out_path: str | os.PathLike) -> dict:
    choice = choose(search, records)
    write_json(out_path, choice)
    return choice


def read_choice(path: str | os.PathLike) -> dict[str, Any]:
    """A choice file (``write_choice``), checked for the fields the runs and the report read."""
    choice = read_json(path, "tuning choice")
    if choice.get("version") != CHOICE_VERSION:
        raise ValueError(f"{path}: tuning choice version {choice.get('version')!r}, expected {CHOICE_VERSION}; "
                         "run the tune target again")
    for key in ("search", "chosen", "trials"):
        if key not in choice:
            raise ValueError(f"{path}: tuning choice without {key!r}; run the tune target again")
    return choice


def tuned_overrides(choice: Mapping[str, Any], kind: str, base: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The overrides a kind's runs take from a choice (read from ``where``), given the kind's present run settings
    ``base`` (``run_config`` of the dataset for the bare kind), which must be those the kind was tuned from."""
    entry = choice["chosen"].get(kind)
    if entry is None:
        raise ValueError(f"{where}: kind {kind!r} was not tuned (the search tuned {sorted(choice['chosen'])}); every "
                         "kind a tuned dataset trains gets its settings from the same search: add it to tune.kinds "
                         "and run the tune target")
    if dict(entry.get("base", {})) != dict(base):
        changed = sorted(part for part in ("model", "loss", "train")
                         if entry.get("base", {}).get(part) != base.get(part))
        raise ValueError(f"{where}: {kind} was tuned from other settings than the dataset's present ones (its "
                         f"{', '.join(changed) or 'kind'} section changed); run the tune target again")
    return dict(entry["overrides"])
