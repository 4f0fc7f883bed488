"""The report's three jobs, from files to files: tables, figures, and the Appendix D overhead.

Each reads what the workflow hands it (a ``ReportSpec`` naming the eval.json of every run, the published-number
files, a checkpoint's config) and writes into the folder it is given; the file names come from
``rider.report.layout``. ``rider report tables|figures|overhead`` (rider/cli.py) calls these.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from rider.predictions import read_predictions
from rider.report import figures as fig
from rider.report import tables as tab
from rider.report.aggregate import (curve_frame, latent_frame, load_evaluations, routing_frame, scalar_frame,
                                    summarize)
from rider.report.bootstrap import bootstrap_p_values
from rider.report.layout import OVERHEAD_TABLE, OVERHEAD_TITLE, PAPER_DATASETS
from rider.report.paper import load_published, load_published_cost
from rider.report.spec import ReportSpec


def paper_size_counts() -> list[dict[str, Any]]:
    """Our RIDER-MoE's parameter count at the paper's App. C.5 MOSI and MOSEI sizes (rider.model.params counts
    the same), built on the meta device: no memory is allocated, so the 91 M-parameter MOSEI model costs nothing."""
    import torch

    from rider.model import build_model, count_parameters
    from rider.model.config import paper_config

    counts = []
    for dataset in PAPER_DATASETS:
        with torch.device("meta"):
            model = build_model(paper_config(dataset)[0])
        counts.append({"dataset": dataset, "ours": count_parameters(model)})
    return counts


def build_tables(spec: ReportSpec, published_path: str | os.PathLike, cost_path: str | os.PathLike,
                 paper_sizes: Sequence[Mapping] | None = None) -> list[tab.Table]:
    """Tables 1-6 of the runs ``spec`` names. ``paper_sizes``: our parameter counts at the paper's sizes
    (default: ``paper_size_counts()``)."""
    p_values = None
    if spec.significance.test == "bootstrap":
        predictions = {run: read_predictions(run.predictions) for run in spec.runs}
        p_values = bootstrap_p_values(predictions, spec.reference, spec.significance.resamples, spec.significance.seed)
    summary = summarize(scalar_frame(load_evaluations(spec.runs)), spec.reference, spec.alpha, p_values)
    published, cost = load_published(published_path), load_published_cost(cost_path)
    if paper_sizes is None:
        paper_sizes = paper_size_counts()
    return [
        tab.clean_table(summary, spec, published),
        tab.robustness_table(summary, spec, published),
        *(tab.variant_table(name, summary, spec, published) for name in tab.VARIANT_TABLES),
        tab.parameter_table(summary, spec, cost, paper_sizes),
    ]


def write_tables(spec: ReportSpec, published_path: str | os.PathLike, cost_path: str | os.PathLike,
                 out_dir: str | os.PathLike, paper_sizes: Sequence[Mapping] | None = None) -> list[Path]:
    return [path for table in build_tables(spec, published_path, cost_path, paper_sizes)
            for path in tab.write_table(table, out_dir)]


def write_figures(spec: ReportSpec, out_dir: str | os.PathLike) -> list[Path]:
    """Figures 3-5 and the latent figure of the runs ``spec`` names, as PNG and PDF."""
    evaluations = load_evaluations(spec.runs)
    built = {
        "figure3_severity": fig.figure3(curve_frame(evaluations), spec),
        "figure4_routing": fig.figure4(routing_frame(evaluations), spec),
        "figure5_dir": fig.figure5(scalar_frame(evaluations), spec),
        "figure_latents": fig.figure_latents(latent_frame(evaluations), spec),
    }
    return [path for name, figure in built.items() for path in fig.save_figure(figure, out_dir, name)]


def write_overhead(datasets: Mapping[str, Mapping[str, Any]], cost_path: str | os.PathLike,
                   out_dir: str | os.PathLike, steps: int = 10, warmup: int = 2) -> list[Path]:
    """The Appendix D table: per dataset, ``{"config": config.json of a trained run, "cache": its cache,
    "paper": "mosi" | "mosei" | None}``; step times measured here, now."""
    from rider.data.cache import validate_cache
    from rider.report.overhead import measure_overhead

    measured = []
    for dataset, where in datasets.items():
        paper = where.get("paper")
        if paper is not None and paper not in PAPER_DATASETS:
            raise ValueError(f"overhead: dataset {dataset}: paper = {paper!r}, expected one of {PAPER_DATASETS}")
        run_config = json.loads(Path(where["config"]).read_text())
        train_samples = validate_cache(where["cache"])["train"]
        measured.append({"dataset": dataset, "paper": paper,
                         **measure_overhead(run_config, train_samples, steps=steps, warmup=warmup)})
    table = tab.overhead_table(measured, load_published_cost(cost_path), OVERHEAD_TITLE, OVERHEAD_TABLE)
    return tab.write_table(table, out_dir)
