"""Regression metrics of multimodal sentiment analysis and the robustness summary nAUC.

Every metric is named by its definition, following the names MMSA's ``utils/metricsTop.py`` gives them
(``Non0_acc_2`` vs ``Has0_acc_2``), because the field reports several incompatible "Acc-2" numbers:

- ``acc7``      mean(round(clip(pred, -3, 3)) == round(clip(label, -3, 3)))   -- 7 classes, -3..3
- ``acc5``      the same with clip to [-2, 2]                                  -- 5 classes, -2..2
- ``acc2_non0`` binary accuracy over the samples whose label is not 0; positive means value > 0
- ``f1_non0``   weighted F1 (scikit-learn ``average="weighted"``) over those same samples
- ``acc2_has0`` binary accuracy over all samples; positive means value >= 0
- ``f1_has0``   weighted F1 with that split
- ``mae``       mean |pred - label|, unclipped
- ``corr``      Pearson correlation of pred and label (scipy)

Rounding is numpy's ``np.round``, i.e. round half to even, as MMSA does: 0.5 -> 0, -0.5 -> -0, 1.5 -> 2,
2.5 -> 2, -2.5 -> -2. So a prediction of exactly 2.5 counts as class 2, not 3.

The headline Acc-2 and F1 of our tables are the ``non0`` variants (``HEADLINE``); tables say so.

Beside them, ``auroc``: how well a per-sample score separates two groups (the reliability signals of
``rider.chain`` against the inputs the stress plan corrupted).

Nothing here prints or rounds a result: rounding belongs to the report.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn.metrics import f1_score

METRIC_KEYS: Final[tuple[str, ...]] = (
    "acc7", "acc5", "acc2_non0", "f1_non0", "acc2_has0", "f1_has0", "mae", "corr",
)

HEADLINE_ACC2: Final[str] = "acc2_non0"  # the Acc-2 our tables report: label != 0 only, positive = > 0
HEADLINE_F1: Final[str] = "f1_non0"  # the F1 our tables report: same samples, weighted F1
HEADLINE: Final = MappingProxyType({"acc2": HEADLINE_ACC2, "f1": HEADLINE_F1})


def regression_metrics(pred: npt.ArrayLike, label: npt.ArrayLike) -> dict[str, float]:
    """All clean metrics of one prediction vector against its labels.

    Args:
        pred: predicted sentiment per sample, 1-D, finite (any scale; it is clipped only where a metric says so).
        label: true sentiment per sample, 1-D, finite, same length as ``pred``.

    Returns:
        ``{key: float}`` for every key of ``METRIC_KEYS``, unrounded. Computed in float64 (float32 inputs convert
        exactly, so the rounding-based metrics equal MMSA's on the same numbers).

    Edge cases, defined here rather than left to a library's warning:
        - ``corr`` is NaN when either vector is constant (or there is a single sample): Pearson's r is undefined
          there, and 0 would rank a collapsed model that predicts a constant above one that is anti-correlated.
        - ``acc2_non0`` and ``f1_non0`` are NaN when every label is 0 (no sample to score).
        - F1 uses ``zero_division=0``: a class that is never predicted has precision 0, as scikit-learn's default
          does after its warning, so the numbers equal MMSA's.

    Raises:
        ValueError: inputs that are not 1-D, differ in length, are empty, or hold NaN/inf; the message names the
            argument and the problem.
    """
    p = _as_vector(pred, "pred")
    y = _as_vector(label, "label")
    if p.shape != y.shape:
        raise ValueError(f"pred has {p.size} samples but label has {y.size}")

    non0 = y != 0
    if non0.any():
        acc2_non0, f1_non0 = _binary_scores(p[non0] > 0, y[non0] > 0)
    else:
        acc2_non0 = f1_non0 = float("nan")
    acc2_has0, f1_has0 = _binary_scores(p >= 0, y >= 0)

    return {
        "acc7": _clipped_class_accuracy(p, y, bound=3.0),
        "acc5": _clipped_class_accuracy(p, y, bound=2.0),
        "acc2_non0": acc2_non0,
        "f1_non0": f1_non0,
        "acc2_has0": acc2_has0,
        "f1_has0": f1_has0,
        "mae": float(np.mean(np.abs(p - y))),
        "corr": pearson(p, y),
    }


def nauc(severities: npt.ArrayLike, values: npt.ArrayLike) -> float:
    """Normalised area under a performance-severity curve (paper App. C.3, Eqs. 53-54).

    AUC = sum_k (s_k - s_{k-1}) * (M(s_k) + M(s_{k-1})) / 2, and nAUC = AUC / (s_K - s_0): the trapezoidal mean of
    the metric over the severity range. On a uniform grid that is the plain mean with the two end points weighted 1/2.

    Args:
        severities: s_0 < s_1 < ... < s_K, at least two, finite, strictly increasing (any spacing).
        values: M(s_k) per severity, same length. NaN propagates (a NaN ``corr`` at one severity gives a NaN nAUC,
            so an undefined point is never silently dropped); +-inf is rejected.

    Raises:
        ValueError: fewer than two points, lengths that differ, severities that are not finite and strictly
            increasing, or infinite values.
    """
    s = np.asarray(severities, dtype=np.float64)
    m = np.asarray(values, dtype=np.float64)
    if s.ndim != 1 or m.ndim != 1:
        raise ValueError(f"severities and values must be 1-D, got shapes {s.shape} and {m.shape}")
    return float(nauc_curves(s, m))


def nauc_curves(severities: npt.ArrayLike, values: npt.ArrayLike) -> np.ndarray:
    """``nauc`` of every curve at once: ``values`` (..., K) at ``severities`` (K,) -> nAUC of shape (...).

    The checks and the NaN rule are ``nauc``'s (the bootstrap of rider.report.bootstrap scores B curves per run).
    """
    s = np.asarray(severities, dtype=np.float64)
    m = np.asarray(values, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"severities must be 1-D, got shape {s.shape}")
    if m.ndim == 0 or m.shape[-1] != s.size:
        raise ValueError(f"{s.size} severities but {m.shape[-1] if m.ndim else 0} values")
    if s.size < 2:
        raise ValueError(f"nAUC needs at least 2 severities, got {s.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"severities must be finite, got {s.tolist()}")
    if not np.all(np.diff(s) > 0):
        raise ValueError(f"severities must be strictly increasing, got {s.tolist()}")
    if np.any(np.isinf(m)):
        raise ValueError(f"values must not be infinite, got {m.tolist()}")
    auc = np.sum(np.diff(s) * (m[..., 1:] + m[..., :-1]) / 2.0, axis=-1)  # Eq. 53: trapezoidal rule
    return auc / (s[-1] - s[0])  # Eq. 54: normalise by the severity range


def auroc(score: npt.ArrayLike, positive: npt.ArrayLike) -> float:
    """Area under the ROC curve of ``score`` for telling ``positive`` samples from the others: the probability that a
    random positive scores higher than a random negative, a tie counting one half (the Mann-Whitney U statistic
    divided by n_pos * n_neg). 1: every positive above every negative; 0.5: no separation (or a constant score);
    0: every positive below.

    Args:
        score: finite per-sample scores, 1-D.
        positive: bool per sample, same length.

    Returns:
        The AUROC, or NaN when either group is empty (nothing to separate).

    Raises:
        ValueError: inputs that are not 1-D, differ in length, or scores that are not finite.
    """
    s = _as_vector(score, "score") if np.size(score) else np.zeros(0)
    pos = np.asarray(positive, dtype=bool)
    if pos.shape != s.shape:
        raise ValueError(f"score has shape {s.shape} but positive has {pos.shape}")
    n_pos = int(pos.sum())
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(s)  # average ranks: a tie between a positive and a negative counts one half
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0  # Mann-Whitney U of the positives
    return float(u / (n_pos * n_neg))


def _as_vector(x: npt.ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} holds {int(bad.sum())} non-finite value(s), first at index {int(np.argmax(bad))}")
    return a


def _clipped_class_accuracy(p: np.ndarray, y: np.ndarray, bound: float) -> float:
    """Share of samples whose clipped, rounded (half to even) prediction equals the clipped, rounded label."""
    p_cls = np.round(np.clip(p, -bound, bound))
    y_cls = np.round(np.clip(y, -bound, bound))
    return float(np.mean(p_cls == y_cls))


def _binary_scores(pred_pos: np.ndarray, label_pos: np.ndarray) -> tuple[float, float]:
    """(accuracy, weighted F1) of boolean predictions against boolean labels."""
    acc = float(np.mean(pred_pos == label_pos))
    f1 = float(f1_score(label_pos, pred_pos, average="weighted", zero_division=0))
    return acc, f1


def pearson(p: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r of two equal-length vectors; NaN where it is undefined (fewer than 2 samples, a constant)."""
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.pearsonr(p, y).statistic)


def spearman(p: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson's r of the average ranks); NaN where ``pearson`` is."""
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return float("nan")
    return pearson(stats.rankdata(p), stats.rankdata(y))
