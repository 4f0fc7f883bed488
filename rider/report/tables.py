"""The paper's tables from the summary over seeds, with the published numbers beside them; CSV, Markdown,
LaTeX (booktabs) and HTML writers.

A ``Table`` is a list of ``Row``s grouped by dataset, each with one ``Cell`` per ``Column``. A cell of this run
holds mean, std, the number of seeds and the paired test against the reference variant, already in the unit the
paper shows (accuracies in %); a published cell holds the paper's digits as printed. Rounding happens only in the
renderers (``to_markdown``, ``to_latex``, ``to_html``); the CSV keeps every digit.

Layout (all datasets in one table, a header row per dataset):
- Table 1 (clean) and Table 2 (nAUC): every evaluated variant, then the paper's rows (its baselines and
  RIDER-MoE) as published for the dataset's paper counterpart.
- Tables 3, 4, 5: the variants of the config's ``ablations``, ``prior_sweep`` and ``dir_sweep`` lists that were
  evaluated, each followed by its published row ("↳ paper").
- Table 6: parameter count and memory (params × 4, 2 and 16 bytes) of every variant, then our architecture at the
  paper's App. C.5 sizes beside the paper's counts.
- Appendix D overhead (``overhead_table``): steps, view-forwards and the measured step-time multiplier.
- The signal chain (``chain_table``, no counterpart in the paper): every variant with reliability signals, the
  AUROCs of its signals for the inputs the stress plan corrupted, how r_m tracks the synthetic quality latent, and
  how diagonal its expert × latent matrix is.
"""

from __future__ import annotations

import html
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Iterable, Mapping, Sequence

import pandas as pd

from rider.atomic import atomic_path
from rider.metrics import HEADLINE_ACC2, HEADLINE_F1
from rider.report.layout import PAPER_TITLES, STRESSORS, TABLES
from rider.report.paper import published_rows
from rider.report.spec import ReportSpec


MIB: Final = 2 ** 20
BYTES_PER_PARAMETER: Final = {"fp32_mib": 4, "fp16_mib": 2, "train_state_mib": 16}  # Table 6's caption


@dataclass(frozen=True)
class Column:
    """One column of a table: which quantity, under which header, in which unit and precision."""

    name: str  # column name in the CSV and in the published file (acc2, noise_corr, ...)
    quantity: str  # key of the scalar frame (rider.report.aggregate.scalar_frame)
    header: str  # as the paper heads it
    scale: float = 1.0  # 100: shown in % as the paper does (accuracies, F1, nAUC of Acc-2)
    digits: int = 3  # decimals when rendered
    higher_is_better: bool | None = True  # None: no direction (sizes, times)
    thousands: bool = False  # render as 1,522,299


def _metric(name: str, quantity: str, header: str, percent: bool, higher: bool = True) -> Column:
    return Column(name, quantity, header, 100.0 if percent else 1.0, 2 if percent else 3, higher)


CLEAN: Final = (
    _metric("acc7", "acc7", "Acc-7", True),
    _metric("acc2", HEADLINE_ACC2, "Acc-2", True),
    _metric("f1", HEADLINE_F1, "F1", True),
    _metric("mae", "mae", "MAE", False, higher=False),
    _metric("corr", "corr", "Corr", False),
)
_SHORT = {"noise": "N", "missing": "M", "conflict": "Cf"}
NAUC_ACC2: Final = {s: _metric(f"{s}_acc2", f"{s}.{HEADLINE_ACC2}", f"{_SHORT[s]}(A2)", True) for s in STRESSORS}
NAUC_CORR: Final = {s: _metric(f"{s}_corr", f"{s}.corr", f"{_SHORT[s]}(C)", False) for s in STRESSORS}
ROBUSTNESS: Final = tuple(  # Table 2 heads its columns by stressor, then metric
    Column(c.name, c.quantity, f"{s.capitalize()} {metric}", c.scale, c.digits)
    for s in STRESSORS for c, metric in ((NAUC_ACC2[s], "Acc-2"), (NAUC_CORR[s], "Corr"))
)
# Tables 3-5: clean metrics, then the nAUC of Corr, then the nAUC of Acc-2 (the paper's order).
CLEAN_AND_ROBUST: Final = (*CLEAN, *(NAUC_CORR[s] for s in STRESSORS), *(NAUC_ACC2[s] for s in STRESSORS))
PARAMETERS: Final = (
    Column("parameters", "parameters", "Params", 1.0, 0, None, thousands=True),
    Column("fp32_mib", "fp32_mib", "FP32 MiB", 1.0, 2, None),
    Column("fp16_mib", "fp16_mib", "FP16 MiB", 1.0, 2, None),
    Column("train_state_mib", "train_state_mib", "Train-state MiB", 1.0, 2, None),
)
OVERHEAD: Final = (
    Column("train_samples", "train_samples", "Train samples", 1.0, 0, None, thousands=True),
    Column("batch_size", "batch_size", "Batch", 1.0, 0, None),
    Column("steps_per_epoch", "steps_per_epoch", "Steps/epoch", 1.0, 0, None, thousands=True),
    Column("epochs", "epochs", "Epochs", 1.0, 0, None),
    Column("total_steps", "total_steps", "Total steps", 1.0, 0, None, thousands=True),
    Column("view_forwards", "view_forwards", "View-forwards", 1.0, 0, None, thousands=True),
    Column("single_view_forwards", "single_view_forwards", "Single-view forwards", 1.0, 0, None, thousands=True),
    Column("single_view_ms", "single_view_ms", "Single-view step ms", 1.0, 1, None),
    Column("four_view_ms", "four_view_ms", "Four-view step ms", 1.0, 1, None),
    Column("step_time_multiplier", "step_time_multiplier", "Step-time ×", 1.0, 2, None),
    Column("flop_ratio", "flop_ratio", "FLOP ×", 1.0, 2, None),
)

CHAIN: Final = (  # quantities of rider.report.aggregate.chain_scalars
    Column("missing_r", "separation.missing.reliability", "M: r_m"),
    Column("missing_h", "separation.missing.entropy", "M: H_m"),
    Column("noise_r", "separation.noise.reliability", "N: r_m"),
    Column("noise_h", "separation.noise.entropy", "N: H_m"),
    Column("conflict_cons", "separation.conflict.consensus", "Cf: cons"),
    Column("conflict_r", "separation.conflict.reliability", "Cf: r_m"),
    Column("quality_pearson", "quality.reliability.pearson", "q: Pearson"),
    Column("quality_spearman", "quality.reliability.spearman", "q: Spearman"),
    Column("quality_auroc", "quality.reliability.auroc", "q: AUROC"),
    Column("latent_diagonal", "latent.diagonal", "Latent diag."),
)
CHAIN_NOTES: Final = (
    "AUROC of a signal for telling the (sample, modality) pairs the stress plan corrupted from those it left alone, "
    "pooled over the stressor's severities with the clean test split (rider.chain), oriented so that > 0.5 means the "
    "signal moves the way the paper says (r_m and cons_score lower, H_m higher for a corrupted input); 0.5 = no "
    "separation. M: modality m absent; N: noised or zeroed (audio and vision at every ρ > 0, text where a token is "
    "zeroed); Cf: swapped for a donor's (cons: the sample has any swapped modality). r_m and H_m: mean over the "
    "modalities where defined (text is never swapped).",
    "q: r_m against the generator's quality latent q_m (1 = clean) on the clean test split, mean over modalities: "
    "Pearson and Spearman correlation (> 0: r_m lower where the modality is degraded) and AUROC for q_m < 1; "
    "empty where the cache has no quality latent.",
    "Latent diag.: mean |corr| of each expert's clean output with its intended latent (U_m ~ u_m, R ~ r, S ~ s) "
    "minus mean |corr| with the other latents: 1 for roles as named, 0 for no separation (synthetic data only).",
)
HEADLINE_NOTE: Final = (f"Acc-2 and F1 are {HEADLINE_ACC2} / {HEADLINE_F1}: the samples whose label is not 0, "
                        "positive = prediction > 0, weighted F1. The paper does not say which Acc-2 it reports.")
UNITS_NOTE: Final = "Acc-7, Acc-2, F1 and nAUC of Acc-2 in %; MAE, Corr and nAUC of Corr as fractions."
NAUC_NOTE: Final = ("nAUC: trapezoidal area under the metric-severity curve divided by the severity range "
                    "(App. C.3, Eqs. 53-54); N = Noise ρ, M = Missingness m, Cf = Conflict c; (A2) Acc-2, (C) Corr.")


@dataclass(frozen=True)
class Cell:
    mean: float = math.nan
    std: float = math.nan
    n: int = 0  # seeds behind the value; 0 for a published number
    p_value: float = math.nan
    significant: bool = False
    printed: str | None = None  # a published number, with the paper's digits
    every_seed: bool = False  # the difference from the reference has one sign in every seed (rider.report.aggregate)


@dataclass(frozen=True)
class Row:
    dataset: str  # the dataset group the row is shown under
    key: str  # variant name, or the published row's key
    label: str  # what the table shows in its first column
    source: str  # "run" or "paper"
    cells: Mapping[str, Cell]
    n: int = 0


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    groups: Mapping[str, str] = field(default_factory=dict)  # dataset -> its header line
    notes: tuple[str, ...] = ()
    first_header: str = "Model"


# --- building --------------------------------------------------------------------------------------------------


def _lookup(summary: pd.DataFrame) -> dict[tuple[str, str, str], pd.Series]:
    return {(r.dataset, r.model, r.quantity): r for r in summary.itertuples(index=False)}


def _run_row(found: Mapping, dataset: str, model: str, label: str, columns: Sequence[Column]) -> Row:
    cells, n = {}, 0
    for column in columns:
        hit = found.get((dataset, model, column.quantity))
        if hit is None:
            cells[column.name] = Cell()
            continue
        cells[column.name] = Cell(hit.mean * column.scale, hit.std * column.scale, int(hit.n),
                                  float(hit.p_value), bool(hit.significant), every_seed=bool(hit.every_seed))
        n = max(n, int(hit.n))
    return Row(dataset, model, label, "run", cells, n)


def _paper_row(dataset: str, key: str, label: str, printed: Mapping[str, str], columns: Sequence[Column]) -> Row:
    cells = {c.name: Cell(float(printed[c.name]), printed=printed[c.name]) if c.name in printed else Cell()
             for c in columns}
    return Row(dataset, key, label, "paper", cells)


def _groups(spec: ReportSpec) -> dict[str, str]:
    out = {}
    for dataset in spec.datasets:
        paper = spec.paper.get(dataset)
        out[dataset] = dataset + (f" (paper rows: {PAPER_TITLES[paper]})" if paper else " (no published counterpart)")
    return out


def _seed_note(spec: ReportSpec) -> str:
    seeds = sorted({run.seed for run in spec.runs})
    return (f"This run: mean ± sample std (ddof 1) over seeds {seeds}; n = seeds per row. "
            "Paper rows: the published numbers, digits as printed.")


SEED_MARK: Final = "†"


def _significance_note(spec: ReportSpec) -> str:
    n = len({run.seed for run in spec.runs})
    across = (f" {SEED_MARK} the difference from {spec.reference} has the same sign in each of the seeds (paired by "
              "seed): it holds across training seeds" + (f" (with {n} seeds, a chance of 2 x 0.5^{n} = "
                                                         f"{2 * 0.5 ** n:.2f} for a difference that is pure seed "
                                                         "noise)" if n >= 2 else " (needs two seeds or more)") + ".")
    marked = f"* differs from {spec.models[spec.reference]} ({spec.reference}) at p < {spec.alpha:g}: "
    if spec.significance.test == "bootstrap":
        return marked + (
            f"two-sided paired bootstrap over the test samples ({spec.significance.resamples} resamples of the test "
            "segments, the same for every model; the difference of the seed means, nAUC recomputed on each "
            "resample). It measures test-set sampling error given the trained models, not seed-to-seed variation "
            "(which report.significance_test: t_test tests)." + across)
    note = marked + "two-sided paired t-test across seeds, runs paired by seed, same dataset."
    if n < 3:
        note += (f" With {n} seed(s) the test has at most {max(n - 1, 0)} degree(s) of freedom and flags only "
                 "differences that are nearly constant across seeds; add seeds (run.seeds) for power.")
    return note + across


def _paper_note(spec: ReportSpec, table: int | None) -> str:
    if table is None:
        return "The paper has no such table: no paper rows."
    pairs = [f"{d} → {PAPER_TITLES[p]}" for d, p in spec.paper.items() if p and d in spec.datasets]
    if not pairs:
        return "No dataset of this run has a published counterpart: no paper rows."
    return (f"Paper rows: the paper's Table {table} ({'; '.join(pairs)}), from resources/paper/"
            "rider_moe_published.csv. On synthetic data compare the pattern across rows, not the values.")


def _model_rows(spec: ReportSpec, found: Mapping, models: Iterable[str], columns: Sequence[Column],
                published: pd.DataFrame | None, paper_table: int | None) -> list[Row]:
    rows = []
    for dataset in spec.datasets:
        paper = spec.paper.get(dataset)
        published_by_key = ({key: (label, cells) for key, label, cells in published_rows(published, paper_table, paper)}
                            if paper and published is not None and paper_table else {})
        for model in models:
            if any((dataset, model, c.quantity) in found for c in columns):
                rows.append(_run_row(found, dataset, model, spec.models[model], columns))
                if model in published_by_key:
                    label, printed = published_by_key[model]
                    rows.append(_paper_row(dataset, model, f"↳ paper: {label}", printed, columns))
    return rows


def _reference_block(spec: ReportSpec, columns: Sequence[Column], published: pd.DataFrame, table: int,
                     exclude: Mapping = {}) -> list[Row]:
    """The paper's rows of a table for the models this run did not evaluate (``exclude``: the run's lookup)."""
    rows = []
    for dataset in spec.datasets:
        paper = spec.paper.get(dataset)
        if paper:
            rows.extend(_paper_row(dataset, key, f"{label} (paper)", cells, columns)
                        for key, label, cells in published_rows(published, table, paper)
                        if not any((dataset, key, c.quantity) in exclude for c in columns))
    return rows


def _sorted_by_dataset(spec: ReportSpec, rows: list[Row]) -> tuple[Row, ...]:
    order = {d: i for i, d in enumerate(spec.datasets)}
    return tuple(sorted(rows, key=lambda row: order[row.dataset]))  # stable: keeps the order within a dataset


def clean_table(summary: pd.DataFrame, spec: ReportSpec, published: pd.DataFrame,
                kind_notes: Sequence[str] = ()) -> Table:
    """Table 1: clean metrics of every evaluated variant, each followed by its published row where the paper has
    one (RIDER-MoE and the baselines), then the paper's rows of models this run did not evaluate."""
    found = _lookup(summary)
    rows = (_model_rows(spec, found, spec.models, CLEAN, published, 1)
            + _reference_block(spec, CLEAN, published, 1, exclude=found))
    return Table("table1_clean", TABLES["table1_clean"], CLEAN, _sorted_by_dataset(spec, rows), _groups(spec),
                 (HEADLINE_NOTE, UNITS_NOTE, _seed_note(spec), _significance_note(spec), _paper_note(spec, 1),
                  *kind_notes))


def robustness_table(summary: pd.DataFrame, spec: ReportSpec, published: pd.DataFrame,
                     kind_notes: Sequence[str] = ()) -> Table:
    """Table 2: nAUC of Acc-2 and Corr per stressor for every evaluated variant, each followed by its published
    row where the paper has one, then the paper's rows of models this run did not evaluate."""
    found = _lookup(summary)
    rows = (_model_rows(spec, found, spec.models, ROBUSTNESS, published, 2)
            + _reference_block(spec, ROBUSTNESS, published, 2, exclude=found))
    return Table("table2_robustness", TABLES["table2_robustness"], ROBUSTNESS, _sorted_by_dataset(spec, rows),
                 _groups(spec), (NAUC_NOTE, HEADLINE_NOTE, UNITS_NOTE, _seed_note(spec), _significance_note(spec),
                                 _paper_note(spec, 2), *kind_notes))


VARIANT_TABLES: Final = {  # table name -> (config list, the paper's table number)
    "table3_ablations": ("ablations", 3),
    "table4_prior_sweep": ("prior_sweep", 4),
    "table5_dir_sweep": ("dir_sweep", 5),
    "table_remedies": ("remedies", None),  # ours: remedies for a router that does not react; the paper has none
}


def variant_table(name: str, summary: pd.DataFrame, spec: ReportSpec, published: pd.DataFrame) -> Table:
    """Tables 3-5 (and the remedies): the evaluated variants of the table's config list, each followed by its
    published row where the paper has the table."""
    list_name, paper_table = VARIANT_TABLES[name]
    found = _lookup(summary)
    rows = _model_rows(spec, found, spec.rows(list_name), CLEAN_AND_ROBUST, published, paper_table)
    notes = [HEADLINE_NOTE, UNITS_NOTE, NAUC_NOTE, _seed_note(spec), _significance_note(spec),
             _paper_note(spec, paper_table)]
    not_run = [model for model in spec.tables.get(list_name, ()) if model not in spec.models]
    if not_run:
        notes.append(f"Declared in report.{list_name} but not evaluated in this run (reduced sweep): "
                     f"{', '.join(not_run)}. README, \"Results and report\", runs the full sweep.")
    if not spec.tables.get(list_name):
        notes.append(f"report.{list_name} in the config names no variant: this table has none of this run.")
    return Table(name, TABLES[name], CLEAN_AND_ROBUST, _sorted_by_dataset(spec, rows), _groups(spec), tuple(notes))


def chain_table(summary: pd.DataFrame, spec: ReportSpec) -> Table:
    """The signal chain: every evaluated variant with reliability signals (a kind without them has no row)."""
    found = _lookup(summary)
    rows = _model_rows(spec, found, spec.models, CHAIN, None, None)
    return Table("table_chain", TABLES["table_chain"], CHAIN, _sorted_by_dataset(spec, rows),
                 {d: d for d in spec.datasets}, (*CHAIN_NOTES, _seed_note(spec), _significance_note(spec)))


TUNING: Final = (
    Column("lr", "lr", "Learning rate", 1.0, 5, None),
    Column("parameters", "parameters", "Params", 1.0, 0, None, thousands=True),
    Column("valid_mae", "valid_mae", "Valid MAE", 1.0, 3, False),
    Column("best_epoch", "best_epoch", "Best epoch", 1.0, 0, None),
    Column("epochs_run", "epochs_run", "Epochs run", 1.0, 0, None),
    Column("train_seconds", "train_seconds", "Train s", 1.0, 0, None),
)


def tuning_table(choices: Mapping[str, Mapping]) -> Table:
    """Every tuned dataset's trials (rider.train.tune's choice file): one row per kind and trial, in the declared
    order, the chosen trial of each kind marked."""
    rows, groups = [], {}
    for dataset, choice in choices.items():
        search = choice["search"]
        groups[dataset] = (f"{dataset}: sizes {', '.join(search['sizes'])} x learning rate x "
                           f"{', '.join(f'{f:g}' for f in search['lr_factors'])}, seed {search['seed']}")
        for trial in choice["trials"]:
            label = f"{trial['kind']}: {trial['trial']}" + (" ← chosen" if trial["chosen"] else "")
            rows.append(Row(dataset, f"{trial['kind']}/{trial['trial']}", label, "run",
                            {c.name: Cell(float(trial[c.quantity]), n=1) for c in TUNING}, 1))
    notes = ("Each kind trained once per trial (a size: configured = the dataset's section for the kind, authors = "
             "its published configuration; and its configured learning rate times a factor) with the same epoch "
             "cap, early stopping and seed; the chosen trial has the lowest best validation MAE (the first listed of "
             "equal ones), and every variant of the kind trains from it. The test split is never read.",
             "Valid MAE: the best epoch's; Train s: the trial's training time on the machine that tuned.")
    if not choices:
        notes = ("No dataset of this run was tuned (datasets.<name>.tuned is null): each kind trains as configured.",)
    return Table("table_tuning", TABLES["table_tuning"], TUNING, tuple(rows), groups, notes, first_header="Trial")


def memory_cells(parameters: float, n: int = 1) -> dict[str, Cell]:
    """Table 6's columns for a parameter count: params × 4 (FP32), × 2 (FP16), × 16 bytes (train state), in MiB."""
    cells = {"parameters": Cell(parameters, n=n)}
    for column, size in BYTES_PER_PARAMETER.items():
        cells[column] = Cell(parameters * size / MIB, n=n)
    return cells


def parameter_table(summary: pd.DataFrame, spec: ReportSpec, published_cost: pd.DataFrame,
                    paper_sizes: Sequence[Mapping]) -> Table:
    """Table 6: parameters and memory of every evaluated variant; each kind at its authors' published sizes.

    ``paper_sizes``: ``rider count`` rows ``{kind, title, dataset, parameters}`` (rider.model.params), every trained
    kind built at the sizes its authors give for CMU-MOSI / CMU-MOSEI; the paper's own Table 6 row follows ours.
    """
    found = _lookup(summary)
    rows = []
    for dataset in spec.datasets:
        for model in spec.models:
            hit = found.get((dataset, model, "parameters"))
            if hit is not None:
                rows.append(Row(dataset, model, spec.models[model], "run", memory_cells(hit.mean, int(hit.n)),
                                int(hit.n)))
    group = "the published sizes (App. C.5; each baseline's authors)"
    printed = {(r.dataset, r.column): r.printed for r in published_cost.itertuples(index=False)}
    for size in paper_sizes:
        kind, paper = size["kind"], size["dataset"]
        rows.append(Row(group, f"{kind}_{paper}", f"{size.get('title', kind)} as built here, "
                        f"{PAPER_TITLES[paper]} sizes", "run", memory_cells(size["parameters"]), 1))
        cells = {c.name: Cell(float(printed[(paper, c.name)]), printed=printed[(paper, c.name)])
                 for c in PARAMETERS if (paper, c.name) in printed}
        if kind == "rider_moe" and cells:
            rows.append(Row(group, paper, f"paper, {PAPER_TITLES[paper]} (Table 6)", "paper", cells))
    groups = {**{d: d for d in spec.datasets}, group: group}
    notes = ("Memory = parameters × bytes per parameter, in MiB (2^20 bytes): FP32 4 B, FP16 2 B, train state 16 B "
             "(mixed precision with AdamW: fp16 weights, fp32 master, fp16 grads, fp32 m and v), as the paper's "
             "Table 6 defines it.",
             "Parameter counts of this run come from each checkpoint's metadata (trainable parameters).",
             "At the published sizes each model is built with the feature widths its authors' configuration names; "
             "a baseline whose original fine-tunes BERT is counted without its text encoder (tests record the "
             "authors' implementation's count beside ours).",
             "Our five experts are full Transformer stacks as §3.1 describes; at the App. C.5 sizes that gives more "
             "parameters than the paper's Table 6, whose counts five such experts cannot reach (DESIGN §3).")
    return Table("table6_parameters", TABLES["table6_parameters"], PARAMETERS, tuple(rows), groups, notes)


def overhead_table(measured: Sequence[Mapping], published_cost: pd.DataFrame, title: str,
                   name: str = "overhead") -> Table:
    """Appendix D: steps, view-forwards and the four-view step-time multiplier measured on this run.

    ``measured``: one mapping per dataset with ``dataset``, ``paper`` (its published counterpart or None),
    ``device`` and every ``OVERHEAD`` column (``rider.train.overhead.measure_overhead``, via ``rider overhead``).
    """
    printed = {(r.dataset, r.column): r.printed for r in published_cost.itertuples(index=False)}
    rows, groups = [], {}
    for m in measured:
        dataset = m["dataset"]
        groups[dataset] = dataset
        rows.append(Row(dataset, dataset, f"this run ({m['device']})", "run",
                        {c.name: Cell(float(m[c.name]), n=1) for c in OVERHEAD}, 1))
        paper = m.get("paper")
        if paper:
            cells = {c.name: Cell(float(printed[(paper, c.name)]), printed=printed[(paper, c.name)])
                     if (paper, c.name) in printed else Cell() for c in OVERHEAD}
            rows.append(Row(dataset, paper, f"paper, {PAPER_TITLES[paper]} (App. D)", "paper", cells))
    notes = ("Step time: median of timed training steps (forward, loss, backward, AdamW) on one random batch, "
             "single view (fusion and experts once) against the four views p ∈ {0, −T, −A, −V} as one batch, "
             "the two alternating step by step, with the run's model and loss settings.",
             "View-forwards = 4 × total steps (fusion + experts per view); the single-view baseline runs them once "
             "per step. FLOP × = matmul/attention FLOPs of a four-view step over a single-view step.",
             "The paper gives one step-time multiplier (2.80×, A100) for both datasets and no step times.")
    return Table(name, title, OVERHEAD, tuple(rows), groups, notes, first_header="Setting")


# --- rendering -------------------------------------------------------------------------------------------------


def format_number(value: float, column: Column) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:,.{column.digits}f}" if column.thousands else f"{value:.{column.digits}f}"


def cell_text(cell: Cell, column: Column, plus_minus: str = "±", mark: str = "*") -> str:
    """What a cell shows: the printed paper value, or mean ± std (std only over 2+ seeds) and the mark."""
    if cell.printed is not None:
        return format_number(cell.mean, column) if column.thousands else cell.printed
    text = format_number(cell.mean, column)
    if cell.n > 1 and math.isfinite(cell.std):
        text += f" {plus_minus} {format_number(cell.std, column)}"
    return text + (mark if cell.significant else "") + (SEED_MARK if cell.every_seed and mark else "")


def _arrow(column: Column) -> str:
    return {True: " ↑", False: " ↓", None: ""}[column.higher_is_better]


def _grouped(table: Table) -> list[tuple[str, list[Row]]]:
    groups: dict[str, list[Row]] = {}
    for row in table.rows:
        groups.setdefault(row.dataset, []).append(row)
    return list(groups.items())


def to_frame(table: Table) -> pd.DataFrame:
    """The CSV's content: one row per table row; every column's mean, and for this run std, p-value and mark."""
    records = []
    for row in table.rows:
        record = {"dataset": row.dataset, "source": row.source, "key": row.key, "label": row.label, "n": row.n}
        for column in table.columns:
            cell = row.cells[column.name]
            record[column.name] = cell.mean
            record[f"{column.name}_std"] = cell.std
            record[f"{column.name}_p"] = cell.p_value
            record[f"{column.name}_significant"] = cell.significant
            record[f"{column.name}_every_seed"] = cell.every_seed
        records.append(record)
    return pd.DataFrame.from_records(records)


def to_markdown(table: Table) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("*", "\\*")

    headers = [table.first_header, *(c.header + _arrow(c) for c in table.columns), "n"]
    lines = [f"**{escape(table.title)}**", "", "| " + " | ".join(headers) + " |",
             "|" + "---|" + "---:|" * (len(headers) - 1)]
    for dataset, rows in _grouped(table):
        lines.append(f"| **{escape(table.groups.get(dataset, dataset))}** |" + " |" * (len(headers) - 1))
        for row in rows:
            cells = [escape(cell_text(row.cells[c.name], c)) for c in table.columns]
            lines.append("| " + " | ".join([escape(row.label), *cells, str(row.n) if row.n else "–"]) + " |")
    lines.append("")
    lines.extend(f"- {escape(note)}" for note in table.notes)
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"λ": r"\lambda", "π": r"\pi", "Δ": r"\Delta", "ρ": r"\rho", "δ": r"\delta", "↑": r"\uparrow",
                  "↓": r"\downarrow", "±": r"\pm", "×": r"\times", "≠": r"\neq", "∈": r"\in", "→": r"\to",
                  "↳": r"\hookrightarrow", "·": r"\cdot", "−": "-"}
_SUBSCRIPT = re.compile(r"([λπΔLy])_([A-Za-z]+(?:-[A-Za-z]+)?)")


def latex_escape(text: str) -> str:
    """Plain text (with the Greek letters and subscripts the labels use) as LaTeX: λ_PID -> $\\lambda_{PID}$."""
    out, last = [], 0
    for match in _SUBSCRIPT.finditer(text):
        out.append(_latex_plain(text[last:match.start()]))
        symbol = _LATEX_SYMBOLS.get(match.group(1), match.group(1))
        out.append(f"${symbol}_{{\\text{{{match.group(2)}}}}}$")
        last = match.end()
    out.append(_latex_plain(text[last:]))
    return "".join(out)


def _latex_plain(text: str) -> str:
    out = []
    for char in text:
        if char in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[char])
        elif char in _LATEX_SYMBOLS:
            symbol = _LATEX_SYMBOLS[char]
            out.append(f"${symbol}$" if symbol.startswith("\\") else symbol)
        elif char == "†":
            out.append(r"\textdagger{}")
        else:
            out.append(char)
    return "".join(out)


def _latex_mark(cell: Cell) -> str:
    marks = ("*" if cell.significant else "") + (r"\dagger" if cell.every_seed else "")
    return f"$^{{{marks}}}$" if marks else ""


def to_latex(table: Table) -> str:
    """A booktabs table scaled to the text width (needs booktabs, graphicx and amsmath)."""
    width = len(table.columns) + 2
    headers = [latex_escape(table.first_header), *(latex_escape(c.header + _arrow(c)) for c in table.columns), "$n$"]
    lines = [f"% {table.title}; written by rider.report. Needs \\usepackage{{booktabs,graphicx,amsmath}}.",
             r"\begin{table*}[t]", r"\centering", r"\small", r"\setlength{\tabcolsep}{3pt}",
             r"\resizebox{\textwidth}{!}{%", r"\begin{tabular}{l" + "r" * (width - 1) + "}", r"\toprule",
             " & ".join(headers) + r" \\", r"\midrule"]
    for i, (dataset, rows) in enumerate(_grouped(table)):
        if i:
            lines.append(r"\midrule")
        group = latex_escape(table.groups.get(dataset, dataset))
        lines.append(rf"\multicolumn{{{width}}}{{l}}{{\textbf{{{group}}}}} \\")
        for row in rows:
            cells = [latex_escape(cell_text(row.cells[c.name], c, mark="")) + _latex_mark(row.cells[c.name])
                     for c in table.columns]
            lines.append(" & ".join([latex_escape(row.label), *cells, str(row.n) if row.n else "--"]) + r" \\")
    which, _, title = table.title.partition(": ")  # \caption numbers it: "Table 3: x" -> "x (the paper's Table 3)"
    caption = f"{title} (the paper's {which})" if title else which
    lines += [r"\bottomrule", r"\end{tabular}}",
              r"\caption{" + latex_escape(caption) + ". " + " ".join(latex_escape(n) for n in table.notes) + "}",
              rf"\label{{tab:{table.name}}}", r"\end{table*}"]
    return "\n".join(lines) + "\n"


_HTML_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 13px; margin: 12px; color: #111; }
table { border-collapse: collapse; }
caption { text-align: left; font-weight: 600; padding-bottom: 6px; }
th, td { padding: 3px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { border-top: 2px solid #111; border-bottom: 1px solid #111; }
tbody tr:last-child td { border-bottom: 2px solid #111; }
tr.group td { font-weight: 600; background: #f2f2f2; }
tr.paper td { color: #555; font-style: italic; }
td.sig { font-weight: 600; }
ul { padding-left: 18px; color: #333; max-width: 1100px; }
"""


def to_html(table: Table) -> str:
    """A standalone HTML page holding the table (what the Snakemake report shows inline)."""
    esc = html.escape
    headers = [table.first_header, *(c.header + _arrow(c) for c in table.columns), "n"]
    body = []
    for dataset, rows in _grouped(table):
        group = esc(table.groups.get(dataset, dataset))
        body.append(f'<tr class="group"><td colspan="{len(headers)}">{group}</td></tr>')
        for row in rows:
            cells = []
            for column in table.columns:
                cell = row.cells[column.name]
                css = ' class="sig"' if cell.significant else ""
                cells.append(f"<td{css}>{esc(cell_text(cell, column))}</td>")
            n = str(row.n) if row.n else "–"
            body.append(f'<tr class="{row.source}"><td>{esc(row.label)}</td>{"".join(cells)}<td>{n}</td></tr>')
    notes = "".join(f"<li>{esc(note)}</li>" for note in table.notes)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(table.title)}</title>'
            f"<style>{_HTML_STYLE}</style></head><body>\n<table><caption>{esc(table.title)}</caption>\n<thead><tr>"
            + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr></thead>\n<tbody>\n" + "\n".join(body)
            + f"\n</tbody></table>\n<ul>{notes}</ul>\n</body></html>\n")


def write_table(table: Table, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``<name>.csv``, ``.md``, ``.tex`` and ``.html`` into ``out_dir``, each atomically."""
    out_dir = Path(out_dir)
    written = []
    for suffix, text in (("csv", to_frame(table).to_csv(index=False)), ("md", to_markdown(table)),
                         ("tex", to_latex(table)), ("html", to_html(table))):
        path = out_dir / f"{table.name}.{suffix}"
        with atomic_path(path, suffix=f".{suffix}") as tmp:
            tmp.write_text(text, encoding="utf-8")
        written.append(path)
    return written
