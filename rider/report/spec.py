"""What one report covers: the evaluations it reads and how the tables arrange them.

The workflow builds this from its validated config with ``spec_from_config`` (report.smk) and passes it as JSON
(``rider report tables|figures --spec``); paths come from the workflow as templates:

    {"runs": [{"dataset": "synth_mosi", "model": "rider_moe", "seed": 0, "eval": "results/.../eval.json",
               "predictions": "results/.../predictions.h5"}, ...],   # predictions: for the bootstrap test only
     "models": [["rider_moe", "RIDER-MoE (full)"], ...],         # every evaluated variant, in table order
     "reference": "rider_moe", "alpha": 0.05,
     "significance": {"test": "bootstrap", "resamples": 1000, "seed": 0},   # or {"test": "t_test"}
     "tables": {"ablations": [...], "prior_sweep": [...], "dir_sweep": [...]},   # Tables 3, 4, 5
     "baselines": ["tfn", ...],                                    # Figure 3 draws them apart from the ablations
     "chain": ["remedy_all"],                                      # the signal-chain figure beside the reference
     "paper": {"synth_mosi": "mosi"},                              # whose published numbers sit beside a dataset
     "overhead": {"synth_mosi": "results/synth_mosi/overhead.json"},   # App. D timings (rider overhead)
     "parameters": "results/parameters.json",                      # counts at the published sizes (rider count)
     "tuning": {"synth_mosi": "resources/tuning/synth_mosi.json"}}  # the tuning choice each dataset trained from
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rider.report.layout import PAPER_DATASETS

TABLE_LISTS = ("ablations", "prior_sweep", "dir_sweep", "remedies")


@dataclass(frozen=True)
class RunRef:
    """One evaluation: a (dataset, model variant, seed), its eval.json and per-sample predictions."""

    dataset: str
    model: str
    seed: int
    eval: Path
    predictions: Path | None = None


SIGNIFICANCE_TESTS = ("bootstrap", "t_test")
SIGNIFICANCE_TYPES = {"test": str, "resamples": int, "seed": int}  # the fields of Significance, as JSON gives them


@dataclass(frozen=True)
class Significance:
    """How a cell is tested against the reference: ``bootstrap`` = paired bootstrap over test samples
    (rider.report.bootstrap, needs every run's predictions), ``t_test`` = paired t-test across seeds."""

    test: str = "t_test"
    resamples: int = 1000
    seed: int = 0

    def __post_init__(self):
        if self.test not in SIGNIFICANCE_TESTS:
            raise ValueError(f"report spec: significance test {self.test!r}; allowed: {list(SIGNIFICANCE_TESTS)}")
        if self.resamples < 1:
            raise ValueError(f"report spec: significance resamples = {self.resamples} must be at least 1")


@dataclass(frozen=True)
class ReportSpec:
    runs: tuple[RunRef, ...]
    models: Mapping[str, str]  # variant -> description (its label in every table), in table order
    reference: str = "rider_moe"  # the variant every other is tested against
    alpha: float = 0.05  # significance level of the paired test
    significance: Significance = Significance()
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # TABLE_LISTS -> variants, in row order
    paper: Mapping[str, str | None] = field(default_factory=dict)  # dataset -> "mosi" / "mosei" / None
    baselines: tuple[str, ...] = ()  # variants of other model kinds: Figure 3's baseline panels
    routing: tuple[str, ...] = ()  # Figure 4's rows, in order; () = the reference alone
    chain: tuple[str, ...] = ()  # variants the signal-chain figure draws beside the reference
    overhead: Mapping[str, Path] = field(default_factory=dict)  # dataset -> App. D timing JSON (rider overhead)
    parameters: Path | None = None  # counts at the published sizes (rider count)
    tuning: Mapping[str, Path] = field(default_factory=dict)  # dataset -> the tuning choice its runs trained from

    def __post_init__(self):
        if not self.runs:
            raise ValueError("report spec: no evaluations to report")
        unknown = sorted({run.model for run in self.runs} - set(self.models))
        if unknown:
            raise ValueError(f"report spec: runs of model(s) {unknown} that `models` does not describe")
        if self.reference not in self.models:
            raise ValueError(f"report spec: reference model {self.reference!r} is not among the evaluated models "
                             f"{sorted(self.models)}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"report spec: alpha = {self.alpha} must be in (0, 1)")
        bad_tables = sorted(set(self.tables) - set(TABLE_LISTS))
        if bad_tables:
            raise ValueError(f"report spec: unknown table list(s) {bad_tables}; allowed: {list(TABLE_LISTS)}")
        without = [str(run.eval) for run in self.runs if run.predictions is None]
        if self.significance.test == "bootstrap" and without:
            raise ValueError(f"report spec: the bootstrap test needs every run's predictions; none given for "
                             f"{without[:3]}{' ...' if len(without) > 3 else ''}")
        bad_paper = sorted({v for v in self.paper.values() if v is not None} - set(PAPER_DATASETS))
        if bad_paper:
            raise ValueError(f"report spec: paper dataset(s) {bad_paper}; expected {list(PAPER_DATASETS)}")

    @property
    def datasets(self) -> tuple[str, ...]:
        """Datasets in the order of their first run."""
        return tuple(dict.fromkeys(run.dataset for run in self.runs))

    @property
    def routing_models(self) -> tuple[str, ...]:
        """Figure 4's rows: the evaluated variants of ``routing``, else the reference."""
        return tuple(m for m in self.routing if m in self.models) or (self.reference,)

    @property
    def chain_models(self) -> tuple[str, ...]:
        """The signal-chain figure's variants: the reference, then those of ``chain`` that were evaluated."""
        return (self.reference, *(m for m in dict.fromkeys(self.chain) if m in self.models and m != self.reference))

    def rows(self, table: str) -> tuple[str, ...]:
        """The variants of a table list that were evaluated, in the list's order."""
        return tuple(model for model in self.tables.get(table, ()) if model in self.models)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ReportSpec":
        allowed = {"runs", "models", "reference", "alpha", "significance", "tables", "paper", "baselines", "routing",
                   "chain", "overhead", "parameters", "tuning"}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(f"report spec: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        runs = tuple(RunRef(r["dataset"], r["model"], int(r["seed"]), Path(r["eval"]),
                            Path(r["predictions"]) if r.get("predictions") else None) for r in values["runs"])
        significance = dict(values.get("significance", {}))
        unknown = sorted(set(significance) - set(SIGNIFICANCE_TYPES))
        if unknown:
            raise ValueError(f"report spec: unknown significance key(s) {unknown}; allowed: {list(SIGNIFICANCE_TYPES)}")
        models = values["models"]  # [[name, description], ...] keeps the order through JSON with sorted keys
        return cls(runs=runs, models=dict(models.items() if isinstance(models, Mapping) else models),
                   reference=values.get("reference", "rider_moe"),
                   alpha=float(values.get("alpha", 0.05)),
                   significance=Significance(**{k: SIGNIFICANCE_TYPES[k](v) for k, v in significance.items()}),
                   tables={k: tuple(v) for k, v in values.get("tables", {}).items()},
                   paper=dict(values.get("paper", {})),
                   baselines=tuple(values.get("baselines", ())),
                   routing=tuple(values.get("routing", ())),
                   chain=tuple(values.get("chain", ())),
                   overhead={d: Path(path) for d, path in values.get("overhead", {}).items()},
                   parameters=Path(values["parameters"]) if values.get("parameters") else None,
                   tuning={d: Path(path) for d, path in values.get("tuning", {}).items()})

    @classmethod
    def from_json(cls, text: str) -> "ReportSpec":
        return cls.from_dict(json.loads(text))


# --- from the workflow's config ---------------------------------------------------------------------------------
# Pure functions of the validated config.yaml (the schema's `run`, `models`, `datasets` and `report` sections),
# so the workflow's report rules need no helpers of their own and the rules here are tested without Snakemake.


def report_models(config: Mapping[str, Any]) -> list[str]:
    """The variants the report covers: run.models, then with report.sweeps = full every other variant that Tables
    3-5 name (so the full sweeps are trained and evaluated for the report).

    Raises:
        ValueError: a name in run.models or report that is not under `models`, or a reference that is not trained.
    """
    section = config["report"]
    listed = list(dict.fromkeys(model for name in TABLE_LISTS for model in section[name]))
    unknown = sorted(set(config["run"]["models"]) - set(config["models"]))
    if unknown:
        raise ValueError(f"config: run.models names {unknown}, which are not under models")
    unknown = sorted(set(listed + [section["reference"], *section["chain_models"], *section["routing_models"]])
                     - set(config["models"]))
    if unknown:
        raise ValueError(f"config: report names {unknown}, which are not under models")
    models = list(config["run"]["models"])
    if section["sweeps"] == "full":
        models += [model for model in listed if model not in models]
    if section["reference"] not in models:
        raise ValueError(f"config: report.reference {section['reference']!r} is not trained; add it to run.models")
    return models


def spec_from_config(config: Mapping[str, Any], eval_path: str, predictions_path: str | None = None,
                     overhead_path: str | None = None, parameters_path: str | None = None,
                     tuning: bool = False) -> dict[str, Any]:
    """The ``ReportSpec`` of a workflow run, as a JSON-ready dict.

    ``eval_path``, ``predictions_path``: where an evaluation and its per-sample predictions lie, templates with
    ``{dataset}``, ``{model}`` and ``{seed}``. The predictions are named when report.significance_test is
    ``bootstrap``; without ``predictions_path`` (the figures, which mark nothing) the spec holds no significance
    settings, so changing them reruns only the tables. ``overhead_path`` (``{dataset}``) and ``parameters_path``:
    the App. D timings and the counts at the published sizes, which only the tables read, as they read the tuning
    choice each tuned dataset trained from (``tuning``: datasets.<name>.tuned). The paper counterpart
    of a dataset is the paper dataset whose folds it uses (``datasets.<name>.folds``).
    """
    section, models, datasets = config["report"], report_models(config), config["run"]["datasets"]
    tested = predictions_path is not None
    bootstrap = tested and section["significance_test"] == "bootstrap"
    spec = {
        "runs": [{"dataset": d, "model": m, "seed": s, "eval": eval_path.format(dataset=d, model=m, seed=s),
                  **({"predictions": predictions_path.format(dataset=d, model=m, seed=s)} if bootstrap else {})}
                 for d in datasets for m in models for s in config["run"]["seeds"]],
        "models": [[m, config["models"][m].get("description", m)] for m in models],
        "reference": section["reference"],
        "alpha": section["alpha"],
        "tables": {name: list(section[name]) for name in TABLE_LISTS},
        "baselines": [m for m in section["baselines"] if m in models],
        "routing": [m for m in section["routing_models"] if m in models],
        "chain": [m for m in section["chain_models"] if m in models],
        "paper": {d: config["datasets"][d]["folds"] for d in datasets},
    }
    if tested:
        spec["significance"] = {"test": section["significance_test"], "resamples": section["bootstrap_resamples"],
                                "seed": section["bootstrap_seed"]}
    if overhead_path is not None:
        spec["overhead"] = {d: overhead_path.format(dataset=d) for d in datasets}
    if parameters_path is not None:
        spec["parameters"] = parameters_path
    if tuning:
        spec["tuning"] = {d: config["datasets"][d]["tuned"] for d in datasets if config["datasets"][d]["tuned"]}
    return spec


def run_kinds(config: Mapping[str, Any]) -> list[str]:
    """The model kinds of the variants the report covers, in order (what ``rider count`` counts)."""
    return list(dict.fromkeys(config["models"][m].get("kind", "rider_moe") for m in report_models(config)))


def overhead_run(config: Mapping[str, Any], dataset: str, config_path: str) -> str:
    """The checkpoint ``config.json`` that App. D times on ``dataset``: the reference variant's first seed
    (``config_path``: a template with ``{dataset}``, ``{model}``, ``{seed}``)."""
    return config_path.format(dataset=dataset, model=config["report"]["reference"], seed=config["run"]["seeds"][0])


def eval_files(config: Mapping[str, Any], eval_path: str) -> list[str]:
    """Every eval.json the report reads (the inputs of the tables and figures)."""
    return [run["eval"] for run in spec_from_config(config, eval_path)["runs"]]


def prediction_files(config: Mapping[str, Any], eval_path: str, predictions_path: str) -> list[str]:
    """Every predictions file the tables' bootstrap test reads (none with the t-test)."""
    return [run["predictions"] for run in spec_from_config(config, eval_path, predictions_path)["runs"]
            if "predictions" in run]
