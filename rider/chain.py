"""The router's signal chain, measured: what a kind's reliability signals (``ModelKind.signals``) say about the
inputs the stress plan corrupted and about the ground-truth quality of the synthetic data.

The paper's mechanism is a chain (§3.2, §4.4): a corrupted modality -> its probe's entropy H_m rises and the probes
disagree -> r_m and cons_score fall -> the expert prior moves -> π moves. The evaluation records, at every stressor
and severity, each signal's mean (per modality or per expert where it has that axis) and how well it separates the
corrupted inputs from the ones left alone; on the clean test split, how well each per-modality signal tracks the
generator's quality latent q_m (1 = clean).

Separation is the AUROC (rider.metrics.auroc) of the signal, oriented so that 0.5 < AUROC means it moves the way
the paper says (a signal that "falls" is negated): r_m, Rel_m, Imp_m lower and H_m higher for a corrupted modality,
cons_score and r̄ lower for a sample with any corrupted modality. What is "corrupted" comes from the plan
(rider.stress.corrupted_modalities): an absent modality (missingness), a swapped one (conflict), a noised or
zeroed one (noise). The negatives always include the clean test split, because under noise no audio or vision is
left alone at ρ > 0:

- at one severity s > 0: the (sample, modality) pairs corrupted at s against those left alone at s together with
  every pair of the clean inputs (for missingness: m absent at s vs m present at s or clean);
- pooled over a stressor: the clean inputs once, plus every severity s > 0 of its grid (a severity 0 in the grid
  is the clean inputs again and is not counted twice); each (sample, severity) pair counts once.
The means, by contrast, are over the test samples at one severity.

Shapes: N samples, M the kind's modalities, E its experts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from rider.metrics import auroc, pearson, spearman
from rider.stress.inputs import MODALITIES as PLAN_MODALITIES  # the column order of the plan's masks: T, A, V

if TYPE_CHECKING:  # the report reads latent_diagonality without importing torch
    from rider.model.kind import Signal

Values = Mapping[str, np.ndarray]  # signal field -> (N,), (N, M) or (N, E)
Level = tuple[Values, np.ndarray]  # the signals at one severity and the plan's corrupted pairs there, (N, 3) T, A, V


def axis_names(signal: Signal, modalities: Sequence[str], experts: Sequence[str]) -> tuple[str, ...]:
    """The names along a signal's axis: the kind's modalities or experts; () for a per-sample signal."""
    return {"sample": (), "modality": tuple(modalities), "expert": tuple(experts)}[signal.axis]


def _by_axis(values: np.ndarray, names: Sequence[str]) -> float | dict[str, float]:
    return {name: float(v) for name, v in zip(names, values)} if names else float(values)


def signal_means(values: Values, signals: Sequence[Signal], modalities: Sequence[str],
                 experts: Sequence[str]) -> dict[str, float | dict[str, float]]:
    """Each signal's mean over the samples: a number, or one per modality / expert (keyed by name)."""
    out = {}
    for signal in signals:
        names = axis_names(signal, modalities, experts)
        value = np.asarray(values[signal.field], dtype=np.float64)  # (N,), (N, M) or (N, E)
        if value.shape[1:] != ((len(names),) if names else ()):
            raise ValueError(f"signal {signal.field}: shape {value.shape}, expected (N{', ' if names else ''}"
                             f"{len(names) if names else ''}) over {signal.axis} {list(names)}")
        out[signal.field] = _by_axis(value.mean(axis=0), names)
    return out


def oriented(signal: Signal, value: np.ndarray) -> np.ndarray:
    """The signal turned so that higher means "more corrupted" as the paper says: a falling one is negated."""
    return -value if signal.corrupted == "falls" else value


def separation(levels: Sequence[Level], signals: Sequence[Signal], modalities: Sequence[str]
               ) -> dict[str, float | dict[str, float]]:
    """AUROC of every directed signal for telling the corrupted pairs from the others, over ``levels`` pooled.

    A per-modality signal is scored per modality m (corrupted = m corrupted); a per-sample signal on the samples
    with any of the kind's modalities corrupted. NaN where one group is empty (text under conflict).
    """
    columns = [PLAN_MODALITIES.index(m) for m in modalities]  # the plan's T, A, V columns of the kind's modalities
    corrupted = np.concatenate([mask[:, columns] for _, mask in levels])  # (n, M) over all levels
    out = {}
    for signal in signals:
        if signal.corrupted is None:
            continue
        value = oriented(signal, np.concatenate([np.asarray(v[signal.field], dtype=np.float64) for v, _ in levels]))
        if signal.axis == "modality":
            out[signal.field] = {m: auroc(value[:, i], corrupted[:, i]) for i, m in enumerate(modalities)}
        elif signal.axis == "sample":
            out[signal.field] = auroc(value, corrupted.any(axis=1))
    return out


def quality_tracking(values: Values, quality: np.ndarray, signals: Sequence[Signal], modalities: Sequence[str]
                     ) -> dict[str, dict[str, dict[str, float]]]:
    """How each directed per-modality signal tracks the ground-truth quality q_m (N, 3) T, A, V in [0, 1], 1 clean.

    Per signal and modality: ``pearson`` and ``spearman`` of the raw signal with q_m (positive expected for a
    signal that falls on corruption, such as r_m; negative for H_m), and ``auroc`` of the oriented signal for
    "q_m < 1 (degraded) vs q_m = 1" (0.5 < AUROC: it moves the way the paper says; NaN if no segment, or every
    segment, is degraded).
    """
    quality = np.asarray(quality, dtype=np.float64)
    if quality.ndim != 2 or quality.shape[1] != len(PLAN_MODALITIES):
        raise ValueError(f"quality latent of shape {quality.shape}, expected (N, {len(PLAN_MODALITIES)}) T, A, V")
    out = {}
    for signal in signals:
        if signal.axis != "modality" or signal.corrupted is None:
            continue
        value = np.asarray(values[signal.field], dtype=np.float64)  # (N, M)
        if value.shape[0] != quality.shape[0]:
            raise ValueError(f"signal {signal.field} has {value.shape[0]} samples, the quality latent "
                             f"{quality.shape[0]}")
        stats = {"pearson": {}, "spearman": {}, "auroc": {}}
        for i, modality in enumerate(modalities):
            q = quality[:, PLAN_MODALITIES.index(modality)]  # (N,)
            stats["pearson"][modality] = pearson(value[:, i], q)
            stats["spearman"][modality] = spearman(value[:, i], q)
            stats["auroc"][modality] = auroc(oriented(signal, value[:, i]), q < 1)
        out[signal.field] = stats
    return out


def latent_diagonality(correlations: Mapping[str, Mapping[str, float]], intended: Mapping[str, str]) -> float:
    """How diagonal the expert × latent correlation matrix is (the latent figure in one number).

    D = mean |corr(y_e, intended latent of e)| - mean |corr(y_e, any other latent)|, over the experts ``intended``
    names (U_m ~ u_m, R ~ r, S ~ s) and the latents they name; NaN cells are left out. D = 1 for the identity
    matrix (each expert tracks its own latent only), 0 when every expert correlates equally with every latent
    (roles not separated at all), negative when experts track other experts' latents more than their own.
    NaN when an expert or latent is missing.
    """
    latents = list(dict.fromkeys(intended.values()))
    try:
        matrix = np.array([[correlations[e][z] for z in latents] for e in intended], dtype=np.float64)
    except KeyError:
        return float("nan")
    on = np.array([[z == intended[e] for z in latents] for e in intended])  # (E, Z) the intended pairs
    absolute = np.abs(matrix)
    if not np.isfinite(absolute[on]).any() or not np.isfinite(absolute[~on]).any():
        return float("nan")
    return float(np.nanmean(absolute[on]) - np.nanmean(absolute[~on]))
