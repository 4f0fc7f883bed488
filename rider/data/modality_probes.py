"""How much each modality of a cache carries: simple probes on segment-level statistics of the features.

Two questions, each answered from the train split (fit) and the test split (score):
- the label from one modality alone, and from all three: a ridge regression (linear) and a small MLP (which can
  also learn the synergy s = b_T·b_A·b_V of the synthetic data, DESIGN §2, from all three together), scored by
  Acc-2 (non-zero labels) and Pearson correlation (``rider.metrics``);
- for synthetic data, the quality latent (``latents/quality``, columns text, audio, vision): whether segments with
  a degraded modality (quality < 1) are told apart from clean ones, by a logistic regression on one modality's
  statistics, scored by AUROC. Each modality should reveal its own degradation and nothing about another's.

The statistics are per segment over its real words (the first ``lengths`` rows): the mean of each feature for the
label probes; the mean, the std and the share of all-zero rows (occluded frames) for the quality probes.
"""

from __future__ import annotations

import os

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rider.errors import DataError
from rider.data.split import read_arrays
from rider.metrics import regression_metrics

FEATURES = ("text_glove", "audio", "vision")  # the cache's fields, in the order of the quality columns
ALL = "all three"


def segment_statistics(cache_path: str | os.PathLike, split: str) -> dict[str, dict[str, np.ndarray]]:
    """Per feature: ``mean`` (N, D) and ``spread`` (N, 2D + 1: std over words, then the share of all-zero rows)
    over each segment's real words; plus ``labels`` (N,) and ``latents`` (name -> array, {} when absent)."""
    arrays = read_arrays(cache_path, split)
    lengths = arrays["lengths"]
    real = np.arange(arrays["audio"].shape[1])[None, :] < lengths[:, None]  # (N, L)
    count = np.maximum(lengths, 1)[:, None].astype(np.float64)
    stats = {}
    for name in FEATURES:
        values = arrays[name].astype(np.float64) * real[..., None]  # (N, L, D), padding zero
        mean = values.sum(1) / count  # (N, D)
        std = np.sqrt(np.maximum((values ** 2).sum(1) / count - mean ** 2, 0.0))  # (N, D)
        zero = ((~values.any(axis=2)) & real).sum(1, keepdims=True) / count  # (N, 1)
        stats[name] = {"mean": mean, "spread": np.concatenate([mean, std, zero], axis=1)}
    return {"features": stats, "labels": arrays["labels"], "latents": arrays.get("latents", {})}


def label_probes(train: dict, test: dict, seed: int = 0) -> dict[str, dict[str, float]]:
    """``{modality or ALL: {ridge_acc2, ridge_corr, mlp_acc2, mlp_corr}}`` of probes predicting the label from the
    segment means (``segment_statistics`` of the train and the test split)."""
    table = {}
    for name in (*FEATURES, ALL):
        names = FEATURES if name == ALL else (name,)
        x_train = np.concatenate([train["features"][n]["mean"] for n in names], axis=1)
        x_test = np.concatenate([test["features"][n]["mean"] for n in names], axis=1)
        probes = {
            "ridge": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13))),
            # Small and regularised: ~1,300 training segments; early stopping on a held-out tenth.
            "mlp": make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(64, 64), alpha=1e-2, max_iter=500,
                                                                early_stopping=True, random_state=seed)),
        }
        row = {}
        for kind, probe in probes.items():
            probe.fit(x_train, train["labels"])
            metrics = regression_metrics(probe.predict(x_test), test["labels"])
            row[f"{kind}_acc2"], row[f"{kind}_corr"] = metrics["acc2_non0"], metrics["corr"]
        table[name] = row
    return table


def quality_probes(train: dict, test: dict) -> np.ndarray:
    """(3, 3) AUROC: row = the modality whose statistics the probe reads, column = the modality whose degradation
    (quality < 1) it predicts; order text, audio, vision. Needs ``latents/quality`` in the cache."""
    for split in (train, test):
        if "quality" not in split["latents"]:
            raise DataError("the cache holds no latents/quality (synthetic data generated with quality on only)")
    auroc = np.full((len(FEATURES), len(FEATURES)), np.nan)
    for row, name in enumerate(FEATURES):
        for column in range(len(FEATURES)):
            y_train = train["latents"]["quality"][:, column] < 1.0
            y_test = test["latents"]["quality"][:, column] < 1.0
            if y_train.all() or not y_train.any() or y_test.all() or not y_test.any():
                continue  # no degraded (or no clean) segment: AUROC undefined
            probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
            probe.fit(train["features"][name]["spread"], y_train)
            auroc[row, column] = roc_auc_score(y_test, probe.decision_function(test["features"][name]["spread"]))
    return auroc


def format_tables(labels: dict[str, dict[str, float]], quality: np.ndarray | None) -> str:
    """The two tables as Markdown."""
    lines = ["| probe from | ridge Acc-2 | ridge Corr | MLP Acc-2 | MLP Corr |", "|---|---|---|---|---|"]
    for name, row in labels.items():
        lines.append(f"| {name} | {100 * row['ridge_acc2']:.1f} | {row['ridge_corr']:.3f} | "
                     f"{100 * row['mlp_acc2']:.1f} | {row['mlp_corr']:.3f} |")
    if quality is not None:
        lines += ["", "| AUROC: statistics of \\ degraded | text | audio | vision |", "|---|---|---|---|"]
        for name, row in zip(FEATURES, quality):
            lines.append(f"| {name} | " + " | ".join(f"{value:.3f}" for value in row) + " |")
    return "\n".join(lines)
