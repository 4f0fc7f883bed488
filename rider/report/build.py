"""The report's two jobs, from files to files: tables (Tables 1-6, the Appendix D overhead and the signal chain)
and figures.

Each reads what the workflow hands it (a ``ReportSpec`` naming the eval.json of every run, the published-number
files, the App. D timings and the counts at the published sizes, which stages of their own measured) and writes
into the folder it is given; the file names come from ``rider.report.layout``. ``rider report tables|figures``
(rider/cli.py) calls these. Nothing here builds, trains or times a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from rider.predictions import read_predictions
from rider.readers import read_json
from rider.report import figures as fig
from rider.report import tables as tab
from rider.report.aggregate import (chain_frame, curve_frame, latent_frame, load_evaluations, routing_frame,
                                    scalar_frame, summarize)
from rider.report.bootstrap import bootstrap_p_values
from rider.report.layout import OVERHEAD_TABLE, OVERHEAD_TITLE
from rider.report.paper import load_published, load_published_cost
from rider.report.spec import ReportSpec
from rider.train.tune import read_choice


def build_tables(spec: ReportSpec, published_path: str | os.PathLike, cost_path: str | os.PathLike) -> list[tab.Table]:
    """Tables 1-6 and the App. D table of the runs ``spec`` names; Table 6's counts at the published sizes and
    App. D's timings are read from what ``rider count`` and ``rider overhead`` wrote (``spec.parameters``,
    ``spec.overhead``)."""
    p_values = None
    if spec.significance.test == "bootstrap":
        predictions = {run: read_predictions(run.predictions) for run in spec.runs}
        p_values = bootstrap_p_values(predictions, spec.reference, spec.significance.resamples, spec.significance.seed)
    evaluations = load_evaluations(spec.runs)
    summary = summarize(scalar_frame(evaluations), spec.reference, spec.alpha, p_values)
    published, cost = load_published(published_path), load_published_cost(cost_path)
    paper_sizes = read_json(spec.parameters, "parameter-count file", expect=list) if spec.parameters else []
    measured = [read_json(path, "overhead timing") for path in spec.overhead.values()]
    notes = kind_notes(evaluations, spec)
    return [
        tab.clean_table(summary, spec, published, notes),
        tab.robustness_table(summary, spec, published, notes),
        *(tab.variant_table(name, summary, spec, published) for name in tab.VARIANT_TABLES),
        tab.parameter_table(summary, spec, cost, paper_sizes),
        tab.overhead_table(measured, cost, OVERHEAD_TITLE, OVERHEAD_TABLE),
        tab.chain_table(summary, spec),
        tab.tuning_table({dataset: read_choice(path) for dataset, path in spec.tuning.items()}),
    ]


def kind_notes(evaluations: Mapping, spec: ReportSpec) -> tuple[str, ...]:
    """What a reader must know about the kinds in a table (a baseline reading frozen features where its original
    fine-tunes BERT, ...): each evaluation's ``kind_note``, once per model."""
    notes = {}
    for run, result in evaluations.items():
        if result.get("kind_note"):
            notes.setdefault(run.model, f"{spec.models[run.model]}: {result['kind_note']}")
    return tuple(notes[m] for m in spec.models if m in notes)


def write_tables(spec: ReportSpec, published_path: str | os.PathLike, cost_path: str | os.PathLike,
                 out_dir: str | os.PathLike) -> list[Path]:
    return [path for table in build_tables(spec, published_path, cost_path)
            for path in tab.write_table(table, out_dir)]


def write_figures(spec: ReportSpec, out_dir: str | os.PathLike) -> list[Path]:
    """Figures 3-5, the latent figure and the signal-chain figure of the runs ``spec`` names, as PNG and PDF."""
    evaluations = load_evaluations(spec.runs)
    built = {
        "figure3_severity": fig.figure3(curve_frame(evaluations), spec),
        "figure4_routing": fig.figure4(routing_frame(evaluations), spec),
        "figure5_dir": fig.figure5(scalar_frame(evaluations), spec),
        "figure_latents": fig.figure_latents(latent_frame(evaluations), spec),
        "figure_chain": fig.figure_chain(chain_frame(evaluations), routing_frame(evaluations), spec),
    }
    return [path for name, figure in built.items() for path in fig.save_figure(figure, out_dir, name)]
