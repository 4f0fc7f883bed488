"""Paired bootstrap over test samples: is a variant's clean metric or nAUC different from the reference's?

With the few seeds a laptop run affords, a t-test across seeds has one or two degrees of freedom and marks almost
nothing. The test-set sampling error is the other uncertainty a reader of a table cares about, and it can be
measured from one run: resample the N test segments with replacement B times (the same resamples for every model,
so the comparison is paired), score every model on each resample, and look at where the difference falls.

For each resample b the statistic is the difference of the seed means, mean_s M(variant, s)_b − mean_s
M(reference, s)_b, over the seeds both have, i.e. the difference the table prints. A quantity is a clean metric
(``acc2_non0``) or the nAUC of a metric under a stressor (``noise.corr``, Eqs. 53-54 on the resampled curves).
The two-sided p-value inverts the percentile interval: p = 2 · min(#{d_b ≤ 0} + 1, #{d_b ≥ 0} + 1) / (B + 1),
capped at 1, so p < α when 0 lies outside the (1 − α) percentile interval of the difference (up to the +1).
It conditions on the trained models: seed-to-seed variation is what the t-test across seeds
(``rider.report.aggregate``) measures.

Every metric is computed for all B resamples at once; ``resampled_metrics`` equals ``rider.metrics``'s
``regression_metrics`` on each resample (tested), including its NaN cases.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Mapping

import numpy as np
import pandas as pd

from rider.metrics import METRIC_KEYS, nauc_curves
from rider.predictions import Predictions
from rider.report.spec import RunRef

P_VALUE_COLUMNS = ["dataset", "model", "quantity", "p_value"]


class ResampledLabels:
    """The labels of B resamples (indices (B, N)) and what every metric derives from them, computed once per
    dataset and shared by every model's predictions."""

    def __init__(self, labels: np.ndarray, indices: np.ndarray):
        self.indices = indices
        y = np.asarray(labels, dtype=np.float64)[indices]
        self.y = y
        self.classes = {bound: np.round(np.clip(y, -bound, bound)) for bound in (3.0, 2.0)}
        self.non0 = y != 0
        self.positive = y > 0
        self.nonnegative = y >= 0
        centred = y - y.mean(axis=1, keepdims=True)
        self.y_centred, self.y_norm = centred, np.sqrt(np.sum(centred ** 2, axis=1))
        self.y_constant = np.ptp(y, axis=1) == 0


def resampled_metrics(prediction: np.ndarray, labels: ResampledLabels) -> dict[str, np.ndarray]:
    """Every metric of ``METRIC_KEYS`` on each resample: ``{key: (B,)}``, as ``regression_metrics`` defines it."""
    p = np.asarray(prediction, dtype=np.float64)[labels.indices]
    every = np.ones_like(labels.non0)
    acc2_non0, f1_non0 = _binary_scores(p > 0, labels.positive, labels.non0)
    acc2_has0, f1_has0 = _binary_scores(p >= 0, labels.nonnegative, every)
    centred = p - p.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.sum(centred * labels.y_centred, axis=1) / (np.sqrt(np.sum(centred ** 2, axis=1)) * labels.y_norm)
    corr[labels.y_constant | (np.ptp(p, axis=1) == 0)] = np.nan  # Pearson's r is undefined for a constant vector
    return {
        "acc7": np.mean(np.round(np.clip(p, -3.0, 3.0)) == labels.classes[3.0], axis=1),
        "acc5": np.mean(np.round(np.clip(p, -2.0, 2.0)) == labels.classes[2.0], axis=1),
        "acc2_non0": acc2_non0,
        "f1_non0": f1_non0,
        "acc2_has0": acc2_has0,
        "f1_has0": f1_has0,
        "mae": np.mean(np.abs(p - labels.y), axis=1),
        "corr": np.clip(corr, -1.0, 1.0),
    }


def _binary_scores(pred_pos: np.ndarray, label_pos: np.ndarray, scored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per resample: accuracy and weighted F1 (scikit-learn's ``average="weighted"``, ``zero_division=0``) over
    the samples where ``scored``; NaN where a resample scores no sample."""
    def count(pred, label):
        return np.sum(pred & label & scored, axis=1).astype(np.float64)

    tp, tn = count(pred_pos, label_pos), count(~pred_pos, ~label_pos)
    fp, fn = count(pred_pos, ~label_pos), count(~pred_pos, label_pos)
    total = tp + tn + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = (tp + tn) / total
        # F1 of a class = 2TP / (2TP + FP + FN), 0 when it is neither true nor predicted; weights = true support.
        f1_pos = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        f1_neg = np.where(2 * tn + fp + fn > 0, 2 * tn / (2 * tn + fp + fn), 0.0)
        weighted = ((tp + fn) * f1_pos + (tn + fp) * f1_neg) / total
    return accuracy, weighted


def resampled_quantities(predictions: Predictions, labels: ResampledLabels) -> dict[str, np.ndarray]:
    """Every quantity the tables show for one run, on each resample: clean metrics and ``stressor.metric`` nAUC."""
    out = resampled_metrics(predictions.clean, labels)
    for stressor, (severities, values) in predictions.stress.items():
        curves = [resampled_metrics(row, labels) for row in values]
        for key in METRIC_KEYS:
            out[f"{stressor}.{key}"] = nauc_curves(severities, np.stack([c[key] for c in curves], axis=1))  # (B,)
    return out


def two_sided_p(differences: np.ndarray) -> float:
    """p-value of "the difference is 0" from its bootstrap distribution (module docstring); NaN resamples (an
    undefined Corr) are left out, and fewer than half of them finite gives NaN."""
    d = differences[np.isfinite(differences)]
    if d.size == 0 or d.size < differences.size / 2:
        return float("nan")
    tail = min(np.sum(d <= 0), np.sum(d >= 0)) + 1
    return float(min(1.0, 2.0 * tail / (d.size + 1)))


def bootstrap_p_values(predictions: Mapping[RunRef, Predictions], reference: str, resamples: int = 1000,
                       seed: int = 0) -> pd.DataFrame:
    """p-value of every (dataset, variant, quantity) against ``reference`` on the same dataset.

    Returns columns dataset, model, quantity, p_value; the reference itself, and variants that share no seed with
    it, get no row.

    Raises:
        ValueError: two runs of one dataset whose test splits differ (ids or labels): their predictions cannot be
            paired. The message names both runs' files.
    """
    if resamples < 1:
        raise ValueError(f"bootstrap: resamples = {resamples} must be at least 1")
    by_dataset: dict[str, list[RunRef]] = defaultdict(list)
    for run in predictions:
        by_dataset[run.dataset].append(run)
    records = []
    for dataset, runs in by_dataset.items():
        first = predictions[runs[0]]
        for run in runs[1:]:
            other = predictions[run]
            if not (np.array_equal(other.ids, first.ids) and np.array_equal(other.labels, first.labels)):
                raise ValueError(f"bootstrap: {run.predictions} and {runs[0].predictions} hold different test splits "
                                 f"of {dataset} (ids or labels differ); rerun their evaluations on one cache")
        rng = np.random.default_rng(seed)
        labels = ResampledLabels(first.labels, rng.integers(0, len(first.labels), size=(resamples, len(first.labels))))
        scores = {(run.model, run.seed): resampled_quantities(predictions[run], labels) for run in runs}
        reference_seeds = {s for m, s in scores if m == reference}
        for model in dict.fromkeys(m for m, _ in scores if m != reference):
            seeds = sorted(reference_seeds & {s for m, s in scores if m == model})
            if not seeds:
                continue
            shared = set.intersection(*(set(scores[(name, s)]) for name in (model, reference) for s in seeds))
            for quantity in sorted(shared):
                difference = (np.mean([scores[(model, s)][quantity] for s in seeds], axis=0)
                              - np.mean([scores[(reference, s)][quantity] for s in seeds], axis=0))
                records.append({"dataset": dataset, "model": model, "quantity": quantity,
                                "p_value": two_sided_p(difference)})
    return pd.DataFrame.from_records(records, columns=P_VALUE_COLUMNS)
