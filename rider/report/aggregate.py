"""From the evaluation JSONs (``rider.evaluate``) to tidy frames, mean ± std over seeds and a paired test.

Every frame is long ("tidy"): one row per (dataset, model, seed, ...) and a ``value`` column, in the units
``rider.evaluate`` writes (accuracies as fractions). Nothing here rounds or rescales: that belongs to the tables.

nAUC is recomputed from each stressor's severity points with ``rider.metrics.nauc`` (Eqs. 53-54), so a table
always matches the curves it summarises.

Significance: the workflow's default is a paired bootstrap over test samples (``rider.report.bootstrap``), whose
p-values are handed to ``summarize``. Without them, a two-sided paired t-test across seeds (``scipy.stats.ttest_rel``)
of each variant against the reference variant on the same dataset, pairing the runs with the same seed (same data
order and initial random stream); it needs at least two paired seeds whose differences are not all equal, otherwise
p is NaN and nothing is marked. A NaN value (an undefined metric, e.g. Corr of a constant prediction) is never
dropped: its mean is NaN.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from rider.chain import latent_diagonality
from rider.metrics import METRIC_KEYS, nauc
from rider.provenance import ProvenanceError
from rider.readers import read_json
from rider.report.layout import DIAGNOSTICS, INTENDED_LATENT
from rider.report.spec import RunRef

KEYS = ["dataset", "model", "seed"]


def load_evaluations(runs: Iterable[RunRef]) -> dict[RunRef, dict]:
    """Read every run's eval.json (through the checked reader); check that it holds what the report uses, and that
    the evaluations of one dataset share one cache and one stress plan (``provenance`` in eval.json), so that no
    table mixes numbers computed on different data.

    Raises:
        FileNotFoundError: a missing file. ValueError: a file that is not JSON or lacks ``clean`` / ``stress``,
            two runs with the same (dataset, model, seed), or (``ProvenanceError``) two evaluations of a dataset
            from different caches or plans; the message names the files.
    """
    evaluations: dict[RunRef, dict] = {}
    seen: dict[tuple, RunRef] = {}
    sources: dict[tuple[str, str], tuple[str, RunRef]] = {}  # (dataset, "cache" | "plan") -> (sha256, first run)
    for run in runs:
        key = (run.dataset, run.model, run.seed)
        if key in seen:
            raise ValueError(f"{run.eval}: {key} is also given by {seen[key].eval}")
        seen[key] = run
        result = read_json(run.eval, "evaluation")
        missing = [part for part in ("clean", "stress") if part not in result]
        if missing:
            raise ValueError(f"{run.eval}: no {missing} in the evaluation (written by rider.evaluate?)")
        for part, record in result.get("provenance", {}).items():
            if part == "checkpoint":
                continue
            first = sources.setdefault((run.dataset, part), (record["sha256"], run))
            if first[0] != record["sha256"]:
                raise ProvenanceError(
                    f"{run.eval}: evaluated on the {part} {record['path']} (sha256 {record['sha256'][:12]}), but "
                    f"{first[1].eval} on another {part} (sha256 {first[0][:12]}) of dataset {run.dataset}: one "
                    f"table would mix them; re-evaluate on one {part}")
        evaluations[run] = result
    return evaluations


def scalar_frame(evaluations: Mapping[RunRef, Mapping]) -> pd.DataFrame:
    """One number per (dataset, model, seed, quantity): columns dataset, model, seed, quantity, value.

    quantities: every clean metric (``acc2_non0``), the nAUC of every metric per stressor (``noise.corr``),
    the DIR diagnostics (``dir.var_r``; models with masked views only), ``parameters``, and the signal chain where
    the evaluation has it (``chain_scalars``).
    """
    records = []
    for run, result in evaluations.items():
        base = {"dataset": run.dataset, "model": run.model, "seed": run.seed}
        for key in METRIC_KEYS:
            records.append({**base, "quantity": key, "value": float(result["clean"][key])})
        for stressor, points in result["stress"].items():
            severities = [point["severity"] for point in points]
            for key in METRIC_KEYS:
                value = nauc(severities, [point["metrics"][key] for point in points])  # Eqs. 53-54
                records.append({**base, "quantity": f"{stressor}.{key}", "value": value})
        for key in DIAGNOSTICS:
            if key in result.get("dir", {}):
                records.append({**base, "quantity": f"dir.{key}", "value": float(result["dir"][key])})
        if "parameters" in result:
            records.append({**base, "quantity": "parameters", "value": float(result["parameters"])})
        records.extend({**base, "quantity": quantity, "value": value}
                       for quantity, value in chain_scalars(result).items())
    return pd.DataFrame.from_records(records, columns=[*KEYS, "quantity", "value"])


def over_axis(value) -> float:
    """A chain statistic as one number: itself, or the mean over its modalities where defined (NaN if none is)."""
    if not isinstance(value, Mapping):
        return float(value)
    values = np.array([float(v) for v in value.values()], dtype=np.float64)
    return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else float("nan")


def chain_scalars(result: Mapping) -> dict[str, float]:
    """The signal chain of one evaluation (rider.chain) as numbers, a per-modality statistic averaged over the
    modalities where it is defined (text under conflict is not):

    - ``separation.<stressor>.<signal>``: the AUROC pooled over the stressor's severities;
    - ``quality.<signal>.<pearson|spearman|auroc>``: tracking of the quality latent on the clean test split;
    - ``latent.diagonal``: ``rider.chain.latent_diagonality`` of the expert × latent correlations (five experts).
    """
    out = {}
    for stressor, signals in result.get("separation", {}).items():
        for signal, value in signals.items():
            out[f"separation.{stressor}.{signal}"] = over_axis(value)
    for signal, tracked in result.get("quality_tracking", {}).items():
        for stat, value in tracked.items():
            out[f"quality.{signal}.{stat}"] = over_axis(value)
    if set(INTENDED_LATENT) <= set(result.get("latent_correlation", {})):
        out["latent.diagonal"] = latent_diagonality(result["latent_correlation"], INTENDED_LATENT)
    return out


def chain_frame(evaluations: Mapping[RunRef, Mapping]) -> pd.DataFrame:
    """Each signal's mean at every severity (rider.chain): columns dataset, model, seed, stressor, severity, signal,
    part (the modality or expert; "" for a per-sample signal), value. Evaluations without signals add no rows."""
    records = []
    for run, result in evaluations.items():
        for stressor, points in result["stress"].items():
            for point in points:
                for signal, value in point.get("signals", {}).items():
                    parts = value.items() if isinstance(value, Mapping) else (("", value),)
                    records.extend({"dataset": run.dataset, "model": run.model, "seed": run.seed,
                                    "stressor": stressor, "severity": float(point["severity"]), "signal": signal,
                                    "part": part, "value": float(v)} for part, v in parts)
    return pd.DataFrame.from_records(records, columns=[*KEYS, "stressor", "severity", "signal", "part", "value"])


def curve_frame(evaluations: Mapping[RunRef, Mapping]) -> pd.DataFrame:
    """Every metric at every severity: columns dataset, model, seed, stressor, severity, metric, value."""
    records = [
        {"dataset": run.dataset, "model": run.model, "seed": run.seed, "stressor": stressor,
         "severity": float(point["severity"]), "metric": key, "value": float(point["metrics"][key])}
        for run, result in evaluations.items()
        for stressor, points in result["stress"].items()
        for point in points
        for key in METRIC_KEYS
    ]
    return pd.DataFrame.from_records(records, columns=[*KEYS, "stressor", "severity", "metric", "value"])


def routing_frame(evaluations: Mapping[RunRef, Mapping]) -> pd.DataFrame:
    """Mean routing weights at every severity: for RIDER-MoE's experts the uniqueness, redundancy and synergy groups,
    for another routed model (EMOE's modality experts) each of its experts.

    Columns dataset, model, seed, stressor, severity, group (π_U, π_R, π_S, or π_<expert>), value. Models with a
    single expert or none have nothing to route and are left out.
    """
    records = []
    for run, result in evaluations.items():
        experts = list(result.get("experts", ()))
        if len(experts) < 2:
            continue
        unique = [i for i, name in enumerate(experts) if name.startswith("U_")]
        for stressor, points in result["stress"].items():
            for point in points:
                pi = np.asarray(point["routing"], dtype=np.float64)  # (E,): mean over the test samples
                groups = ({"π_U": pi[unique].sum(), "π_R": pi[experts.index("R")], "π_S": pi[experts.index("S")]}
                          if {"R", "S"} <= set(experts) else {f"π_{name}": pi[i] for i, name in enumerate(experts)})
                records.extend({"dataset": run.dataset, "model": run.model, "seed": run.seed, "stressor": stressor,
                                "severity": float(point["severity"]), "group": group, "value": float(value)}
                               for group, value in groups.items())
    return pd.DataFrame.from_records(records, columns=[*KEYS, "stressor", "severity", "group", "value"])


def latent_frame(evaluations: Mapping[RunRef, Mapping]) -> pd.DataFrame:
    """Pearson correlation of each expert's clean output with each ground-truth latent (synthetic data only).

    Columns dataset, model, seed, expert, latent, value.
    """
    records = [
        {"dataset": run.dataset, "model": run.model, "seed": run.seed, "expert": expert, "latent": latent,
         "value": float(value)}
        for run, result in evaluations.items()
        for expert, row in result.get("latent_correlation", {}).items()
        for latent, value in row.items()
    ]
    return pd.DataFrame.from_records(records, columns=[*KEYS, "expert", "latent", "value"])


def over_seeds(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """n, mean and sample std (ddof = 1; NaN for one seed) of ``value`` over the seeds of each ``by`` group.

    A NaN value makes its group's mean and std NaN (it is not skipped); ``n`` counts the seeds.
    """
    grouped = frame.groupby(by, sort=False)["value"]
    out = grouped.agg(n="size", mean=lambda v: v.mean(skipna=False), std=lambda v: v.std(ddof=1, skipna=False))
    return out.reset_index()


def seed_differences(values: Mapping[int, float], reference: Mapping[int, float]) -> np.ndarray:
    """``values`` - ``reference`` over the seeds present in both, in seed order."""
    seeds = sorted(set(values) & set(reference))
    return np.array([values[s] - reference[s] for s in seeds], dtype=np.float64)


def paired_p_value(values: Mapping[int, float], reference: Mapping[int, float]) -> float:
    """Two-sided paired t-test p-value of ``values`` against ``reference``, paired by seed.

    Only seeds present in both count. NaN when fewer than two seeds pair up, when a paired value is NaN, or when
    every difference is the same (the t statistic is undefined at zero variance).
    """
    difference = seed_differences(values, reference)
    if len(difference) < 2 or not np.all(np.isfinite(difference)) or np.ptp(difference) == 0:
        return float("nan")
    return float(stats.ttest_1samp(difference, 0.0).pvalue)  # the paired t-test is one-sample on the differences


def same_sign_in_every_seed(values: Mapping[int, float], reference: Mapping[int, float] | None) -> bool:
    """Whether ``values`` - ``reference`` (by seed) is non-zero with one sign in every shared seed, at least two."""
    if reference is None:
        return False
    differences = [d for d in seed_differences(values, reference) if math.isfinite(d)]
    return len(differences) >= 2 and (all(d > 0 for d in differences) or all(d < 0 for d in differences))


def summarize(scalars: pd.DataFrame, reference: str, alpha: float = 0.05,
              p_values: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean ± std over seeds of every (dataset, model, quantity), with the paired test against ``reference``.

    ``p_values``: given (columns dataset, model, quantity, p_value; ``rider.report.bootstrap``), they replace the
    t-test across seeds, and a quantity they do not cover gets NaN; otherwise every p-value is the t-test's.

    Returns columns dataset, model, quantity, n, mean, std, p_value, significant, every_seed. The reference's own
    rows (and any model on a dataset where the reference was not run) get p_value NaN and significant False.
    ``every_seed``: the difference from the reference has the same sign in every seed the two share (paired by
    seed, at least two), whichever test gives the p-value: a difference that holds across training seeds, which
    the bootstrap over test samples does not measure.
    """
    summary = over_seeds(scalars, ["dataset", "model", "quantity"])
    by_seed = {key: dict(zip(part["seed"], part["value"]))
               for key, part in scalars.groupby(["dataset", "model", "quantity"], sort=False)}
    tested, every_seed = [], []
    for row in summary.itertuples(index=False):
        ref = by_seed.get((row.dataset, reference, row.quantity))
        if row.model == reference or ref is None:
            tested.append(float("nan"))
            every_seed.append(False)
        else:
            mine = by_seed[(row.dataset, row.model, row.quantity)]
            tested.append(paired_p_value(mine, ref) if p_values is None else float("nan"))
            every_seed.append(same_sign_in_every_seed(mine, ref))
    summary["every_seed"] = every_seed
    summary["p_value"] = tested
    if p_values is not None:  # the given p-values replace the t-test, which was not computed
        given = p_values.set_index(["dataset", "model", "quantity"])["p_value"]
        keys = pd.MultiIndex.from_frame(summary[["dataset", "model", "quantity"]])
        summary["p_value"] = given.reindex(keys).to_numpy(dtype=np.float64)
        summary.loc[summary["model"] == reference, "p_value"] = np.nan
    summary["significant"] = summary["p_value"] < alpha  # NaN compares False
    return summary
