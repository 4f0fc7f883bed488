"""The paper's Figures 3-5 and a ground-truth check, from the tidy frames of ``rider.report.aggregate``.

- Figure 3: Acc-2 and Corr against severity, one column per dataset × stressor, every variant; line = mean over
  seeds, band = ± one sample std. With baselines (report.baselines), the reference against the baselines and the
  reference against the other variants (the ablations) are drawn in rows of their own, so each stays readable.
- Figure 4: the reference variant's mean full-view routing weights π_U = π_U_T + π_U_A + π_U_V, π_R and π_S
  against severity, one row per dataset.
- Figure 5: the four DIR diagnostics (App. C.4) across the ablation variants: bar = mean, whisker = std, dots =
  the seeds.
- Signal chain: the reference's (and ``spec.chain``'s) mean H_m, r_m, cons_score, Prior^exp and π against severity,
  one row of panels per link and variant, one column per dataset × stressor: where the chain of §3.2 carries a
  corruption to the routing and where it stops.
- Latents: Pearson correlation of each expert's clean output with each synthetic ground-truth latent (reference
  variant), and of each expert with its intended latent across variants (U_m ~ u_m, R ~ r, S ~ s).

Every figure is a ``matplotlib.figure.Figure`` built without pyplot (no global state, no display needed) at a
size fixed by its grid: ``size_inches`` gives it, so a test knows the pixel size to expect (× ``DPI``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from rider.atomic import atomic_path
from rider.metrics import HEADLINE_ACC2
from rider.report.aggregate import over_seeds
from rider.report.layout import (DIAGNOSTIC_TITLES, DIAGNOSTICS, FIGURE_FORMATS, FIGURES, INTENDED_LATENT, LATENTS,
                                 STRESSOR_TITLES, STRESSORS)
from rider.report.spec import ReportSpec

DPI: Final = 150
PANEL: Final = (3.0, 2.4)  # inches per panel of Figures 3 and 4
LEGEND_WIDTH: Final = 2.6  # inches on the right for the legend
TITLE_HEIGHT: Final = 0.5  # inches on top for the suptitle
DIR_PANEL: Final = (3.0, 3.0)  # Figure 5: room below for the variant names
LATENT_WIDTHS: Final = (4.2, 4.6)  # the two heatmaps of the latent figure
LATENT_HEIGHT: Final = 3.6
CURVE_METRICS: Final = ((HEADLINE_ACC2, "Acc-2 (%)", 100.0), ("corr", "Corr", 1.0))
ROUTING_COLORS: Final = {"π_U": "tab:orange", "π_R": "tab:blue", "π_S": "tab:green"}
# The signal chain's links (rider.chain; RiderOutput's fields), top to bottom, with the y label of their row. Every
# row but the entropy's is drawn on [0, 1] (H_m from 0): on a zoomed axis a link that moves by 0.002 would look as
# lively as one that moves by 0.2, and a flat link is what the figure must show.
CHAIN_LINKS: Final = (("entropy", "H_m (Eq. 24)"), ("reliability", "r_m (Eq. 29)"),
                      ("consensus", "cons_score (Eq. 33)"), ("expert_prior", "Prior^exp (Eq. 36)"),
                      ("routing", "π⁽⁰⁾ (Eq. 39)"))
MODALITY_COLORS: Final = {"text": "tab:red", "audio": "tab:purple", "vision": "tab:cyan"}


def size_inches(name: str, n_datasets: int, n_groups: int = 1) -> tuple[float, float]:
    """(width, height) in inches of figure ``name`` for ``n_datasets`` datasets (with latents, for the latents);
    ``n_groups``: Figure 3's groups of models (``curve_groups``)."""
    rows = max(n_datasets, 1)
    if name == "figure3_severity":
        return (PANEL[0] * len(STRESSORS) * rows + LEGEND_WIDTH,
                PANEL[1] * len(CURVE_METRICS) * n_groups + TITLE_HEIGHT)
    if name == "figure4_routing":  # one row per dataset and routed model (n_groups)
        return PANEL[0] * len(STRESSORS) + LEGEND_WIDTH, PANEL[1] * rows * n_groups + TITLE_HEIGHT
    if name == "figure5_dir":
        return DIR_PANEL[0] * len(DIAGNOSTICS), DIR_PANEL[1] * rows + TITLE_HEIGHT
    if name == "figure_latents":
        return sum(LATENT_WIDTHS), LATENT_HEIGHT * rows + TITLE_HEIGHT
    if name == "figure_chain":  # n_groups: the variants drawn, each a block of one row per link
        return (PANEL[0] * len(STRESSORS) * rows + LEGEND_WIDTH,
                PANEL[1] * len(CHAIN_LINKS) * n_groups + TITLE_HEIGHT)
    raise ValueError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")


def _figure(name: str, n_datasets: int, n_groups: int = 1) -> Figure:
    fig = Figure(figsize=size_inches(name, n_datasets, n_groups), dpi=DPI, layout="constrained")
    fig.suptitle(FIGURES[name], fontsize=11)
    return fig


def palette(models: Sequence[str], reference: str) -> dict[str, tuple]:
    """A colour per variant; the reference is black."""
    others = [m for m in models if m != reference]
    cmap = colormaps["tab10" if len(others) <= 10 else "tab20"]
    colors = {model: cmap(i % cmap.N) for i, model in enumerate(others)}
    colors[reference] = (0.0, 0.0, 0.0, 1.0)
    return colors


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _band(ax, part: pd.DataFrame, scale: float, color, label: str | None, width: float = 1.2, zorder: int = 2):
    part = part.sort_values("severity")
    x, mean, std = part["severity"].to_numpy(), part["mean"].to_numpy() * scale, part["std"].to_numpy() * scale
    ax.plot(x, mean, color=color, lw=width, marker="o", ms=2.5, label=label, zorder=zorder)
    if np.isfinite(std).any():
        std = np.nan_to_num(std)
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15, lw=0, zorder=zorder - 1)


def curve_groups(spec: ReportSpec) -> list[tuple[str, list[str]]]:
    """Figure 3's row groups: (title, variants). With baselines: the reference with the baselines, then the
    reference with every other variant; without: one group of every variant."""
    if not spec.baselines:
        return [("", list(spec.models))]
    others = [m for m in spec.models if m not in spec.baselines and m != spec.reference]
    groups = [("vs baselines", [spec.reference, *spec.baselines])]
    if others:
        groups.append(("vs ablations", [spec.reference, *others]))
    return groups


def figure3(curves: pd.DataFrame, spec: ReportSpec) -> Figure:
    """Acc-2 and Corr against severity per dataset × stressor, every variant (paper Figure 3)."""
    datasets, groups = spec.datasets, curve_groups(spec)
    fig = _figure("figure3_severity", len(datasets), len(groups))
    axes = fig.subplots(len(CURVE_METRICS) * len(groups), len(STRESSORS) * len(datasets), squeeze=False)
    summary = over_seeds(curves[curves["metric"].isin([m for m, _, _ in CURVE_METRICS])],
                         ["dataset", "model", "stressor", "severity", "metric"])
    found = {key: part for key, part in summary.groupby(["dataset", "model", "stressor", "metric"], sort=False)}
    colors = palette(list(spec.models), spec.reference)  # one colour per variant across groups: one legend
    for g, (title, models) in enumerate(groups):
        for d, dataset in enumerate(datasets):
            for s, stressor in enumerate(STRESSORS):
                for r, (metric, ylabel, scale) in enumerate(CURVE_METRICS):
                    ax = axes[g * len(CURVE_METRICS) + r, d * len(STRESSORS) + s]
                    drawn = False
                    for model in models:  # the reference last, on top
                        part = found.get((dataset, model, stressor, metric))
                        if part is None or model == spec.reference:
                            continue
                        _band(ax, part, scale, colors[model], spec.models[model])
                        drawn = True
                    part = found.get((dataset, spec.reference, stressor, metric))
                    if part is not None:
                        _band(ax, part, scale, colors[spec.reference], spec.models[spec.reference], width=2.2,
                              zorder=5)
                        drawn = True
                    if not drawn:
                        _empty(ax, f"no {stressor} evaluation")
                    _severity_panel(ax, " · ".join(filter(None, (dataset, STRESSOR_TITLES[stressor], title))),
                                    ylabel if d == 0 and s == 0 else None, r == len(CURVE_METRICS) - 1)
    _legend(fig, axes)
    return fig


def _severity_panel(ax, title: str, ylabel: str | None, xlabel: bool, title_size: int = 8) -> None:
    """The common dress of a panel drawn against severity (Figures 3 and 4, the chain figure)."""
    ax.set_title(title, fontsize=title_size)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if ylabel is not None:
        ax.set_ylabel(ylabel, fontsize=8)
    if xlabel:
        ax.set_xlabel("severity", fontsize=8)


def _legend(fig: Figure, axes) -> None:
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=7, frameon=False)


def figure4(routing: pd.DataFrame, spec: ReportSpec) -> Figure:
    """Mean routing weights against severity (paper Figure 4): a row per dataset and model of ``spec.routing``
    (the reference by default), RIDER-MoE's as π_U, π_R, π_S, another routed model's per expert."""
    datasets, models = spec.datasets, spec.routing_models
    fig = _figure("figure4_routing", len(datasets), len(models))
    axes = fig.subplots(len(datasets) * len(models), len(STRESSORS), squeeze=False)
    summary = over_seeds(routing[routing["model"].isin(models)], ["dataset", "model", "stressor", "severity", "group"])
    parts = {key: part for key, part in summary.groupby(["dataset", "model", "stressor"], sort=False)}
    others = colormaps["Dark2"]
    for row, (dataset, model) in enumerate((d, m) for d in datasets for m in models):
        for s, stressor in enumerate(STRESSORS):
            ax = axes[row, s]
            part = parts.get((dataset, model, stressor))
            if part is None:
                _empty(ax, f"{model}: no routing weights")
            else:
                for i, (group, curve) in enumerate(part.groupby("group", sort=False)):
                    _band(ax, curve, 1.0, ROUTING_COLORS.get(group, others(i % others.N)), group, width=1.8)
            ax.set_ylim(0, 1)
            _severity_panel(ax, f"{dataset} · {STRESSOR_TITLES[stressor]}",
                            f"mean π⁽⁰⁾, {model}" if s == 0 else None, xlabel=True)
    _legend(fig, axes)
    return fig


def figure5(scalars: pd.DataFrame, spec: ReportSpec) -> Figure:
    """The four DIR diagnostics across the ablation variants (paper Figure 5)."""
    datasets = spec.datasets
    fig = _figure("figure5_dir", len(datasets))
    axes = fig.subplots(len(datasets), len(DIAGNOSTICS), squeeze=False)
    variants = list(spec.rows("ablations")) or list(spec.models)
    colors = palette(list(spec.models), spec.reference)
    dir_rows = scalars[scalars["quantity"].str.startswith("dir.")]
    for d, dataset in enumerate(datasets):
        here = dir_rows[dir_rows["dataset"] == dataset]
        shown = [v for v in variants if (here["model"] == v).any()]  # the single expert has no DIR checks
        for k, key in enumerate(DIAGNOSTICS):
            ax = axes[d, k]
            ax.set_title(f"{dataset} · {DIAGNOSTIC_TITLES[key]}", fontsize=8)
            if not shown:
                _empty(ax, "no variant with masked-view diagnostics")
                continue
            values = here[here["quantity"] == f"dir.{key}"]
            for i, variant in enumerate(shown):
                seeds = values.loc[values["model"] == variant, "value"].to_numpy()
                mean = seeds.mean() if seeds.size else np.nan
                std = seeds.std(ddof=1) if seeds.size > 1 else 0.0
                ax.bar(i, mean, yerr=std, color=colors[variant], alpha=0.8, capsize=2, width=0.7)
                ax.scatter(np.full(seeds.size, i), seeds, s=12, facecolor="white", edgecolor="0.1", lw=0.8, zorder=3)
            ax.set_xticks(range(len(shown)), shown, rotation=60, ha="right", fontsize=6.5)
            ax.tick_params(axis="y", labelsize=7)
            ax.axhline(0, color="0.3", lw=0.6)
            ax.grid(axis="y", alpha=0.3)
    return fig


def figure_latents(latents: pd.DataFrame, spec: ReportSpec) -> Figure:
    """Expert outputs against the synthetic ground-truth latents: the reference's full matrix and each variant's
    intended pairs (U_m ~ u_m, R ~ r, S ~ s), mean over seeds."""
    datasets = [d for d in spec.datasets if (latents["dataset"] == d).any()]
    fig = _figure("figure_latents", len(datasets))
    axes = fig.subplots(max(len(datasets), 1), 2, squeeze=False, width_ratios=LATENT_WIDTHS)
    if not datasets:
        for ax in axes[0]:
            _empty(ax, "no dataset with ground-truth latents (synthetic data only)")
        return fig
    mean = latents.groupby(["dataset", "model", "expert", "latent"], sort=False)["value"].mean()
    image = None
    for d, dataset in enumerate(datasets):
        left, right = axes[d]
        experts = list(INTENDED_LATENT)
        if ((latents["dataset"] == dataset) & (latents["model"] == spec.reference)).any():
            matrix = np.array([[mean.get((dataset, spec.reference, e, z), np.nan) for z in LATENTS] for e in experts])
            image = _heatmap(left, matrix, experts, list(LATENTS))
            left.set_title(f"{dataset} · {spec.reference}: corr(y_e, latent)", fontsize=8)
        else:
            _empty(left, f"{spec.reference}: no latent correlations")
        variants = [m for m in spec.models
                    if all((dataset, m, e, INTENDED_LATENT[e]) in mean.index for e in experts)]
        if variants:
            matrix = np.array([[mean[(dataset, m, e, INTENDED_LATENT[e])] for e in experts] for m in variants])
            image = _heatmap(right, matrix, variants, [f"{e}~{INTENDED_LATENT[e]}" for e in experts])
            right.set_title(f"{dataset} · intended pairs across variants", fontsize=8)
        else:
            _empty(right, "no five-expert variant with latent correlations")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="Pearson r")
    return fig


def _expert_groups(parts: Sequence[str]) -> dict[str, list[str]]:
    """Figure 4's grouping of experts (π_U = the sum over U_T, U_A, U_V) where the five are there; else each."""
    if {"R", "S"} <= set(parts):
        return {"π_U": [p for p in parts if p.startswith("U_")], "π_R": ["R"], "π_S": ["S"]}
    return {p: [p] for p in parts}


def figure_chain(chain: pd.DataFrame, routing: pd.DataFrame, spec: ReportSpec) -> Figure:
    """Mean H_m, r_m, cons_score, Prior^exp and π against severity for the reference and ``spec.chain``'s variants:
    rows = variant × link, columns = dataset × stressor; line = mean over seeds, band = ± one std."""
    datasets, models = spec.datasets, spec.chain_models
    fig = _figure("figure_chain", len(datasets), len(models))
    axes = fig.subplots(len(CHAIN_LINKS) * len(models), len(STRESSORS) * len(datasets), squeeze=False)
    per_seed = chain.copy()
    prior = per_seed["signal"] == "expert_prior"  # the prior's experts summed like π's (Figure 4)
    grouped = []
    for key, part in per_seed[prior].groupby(["dataset", "model", "seed", "stressor", "severity"], sort=False):
        for group, members in _expert_groups(list(part["part"])).items():
            grouped.append(dict(zip(["dataset", "model", "seed", "stressor", "severity"], key), signal="expert_prior",
                                part=group, value=part.loc[part["part"].isin(members), "value"].sum()))
    pi = routing.rename(columns={"group": "part"}).assign(signal="routing")
    frame = pd.concat([per_seed[~prior], pd.DataFrame(grouped, columns=per_seed.columns), pi[per_seed.columns]],
                      ignore_index=True)
    summary = over_seeds(frame, ["dataset", "model", "stressor", "signal", "part", "severity"])
    found = {key: part for key, part in summary.groupby(["dataset", "model", "stressor", "signal"], sort=False)}
    for g, model in enumerate(models):
        for d, dataset in enumerate(datasets):
            for s, stressor in enumerate(STRESSORS):
                for r, (signal, ylabel) in enumerate(CHAIN_LINKS):
                    ax = axes[g * len(CHAIN_LINKS) + r, d * len(STRESSORS) + s]
                    here = found.get((dataset, model, stressor, signal))
                    if here is None:
                        _empty(ax, f"{model}: no {signal} under {stressor}")
                    else:
                        for part, curve in here.groupby("part", sort=False):
                            color = MODALITY_COLORS.get(part) or ROUTING_COLORS.get(part) or "0.1"
                            label = {"": signal, **{m: m[0].upper() for m in MODALITY_COLORS}}.get(part, part)
                            _band(ax, curve, 1.0, color, label, width=1.6)
                    if signal == "entropy":
                        ax.set_ylim(bottom=0)
                    else:
                        ax.set_ylim(0, 1)
                    _severity_panel(ax, f"{dataset} · {STRESSOR_TITLES[stressor]} · {model}",
                                    ylabel if d == 0 and s == 0 else None, r == len(CHAIN_LINKS) - 1, title_size=7)
    _legend(fig, axes)
    return fig


def _heatmap(ax, matrix: np.ndarray, rows: Sequence[str], columns: Sequence[str]):
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7 if len(rows) <= 12 else 5.5)
    size = 6.5 if len(rows) <= 12 else 5
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if np.isfinite(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=size,
                        color="white" if abs(matrix[i, j]) > 0.6 else "black")
    return image


def save_figure(fig: Figure, out_dir: str | os.PathLike, name: str) -> list[Path]:
    """Write ``<name>.png`` and ``<name>.pdf`` into ``out_dir`` atomically, at ``DPI``, the figure's own size."""
    written = []
    for suffix in FIGURE_FORMATS:
        path = Path(out_dir) / f"{name}.{suffix}"
        metadata = {"CreationDate": None} if suffix == "pdf" else {"Software": None}
        with atomic_path(path, suffix=f".{suffix}") as tmp:
            fig.savefig(tmp, format=suffix, dpi=DPI, metadata=metadata)
        written.append(path)
    return written
