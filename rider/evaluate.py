"""Evaluate one trained model: clean test metrics, every stressor at every severity, nAUC, routing, DIR checks.

One job per model and seed loops over all severities (DESIGN §1); the test split is read once and every
severity's corrupted inputs come from the shared stress plan, so every model sees the same bytes.

A model without experts or routing (``text_only``) gets its clean metrics and the noise stressor, whose text part
(a fraction of each sample's tokens zeroed) is what reaches it. Missingness and conflict are not evaluated for
it and are listed under ``not_applicable``: conflict swaps only audio and vision, which it never reads (its
predictions would equal the clean ones by construction), and missingness drops modalities of a three-modality
plan, whose text-only part (text gone, nothing left to predict from) measures nothing about the model.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rider.checkpoint import load_checkpoint, write_json
from rider.diagnostics import dir_diagnostics, latent_correlations
from rider.metrics import METRIC_KEYS, nauc, regression_metrics
from rider.model import EXPERTS, model_kind
from rider.predictions import Predictions, write_predictions
from rider.stress import iter_severities, load_test_split, read_plan
from rider.train.data import arrays_to_split, feature_scales, read_arrays
from rider.train.trainer import resolve_device

log = logging.getLogger(__name__)

# Why a model without routing skips a stressor (module docstring).
NOT_APPLICABLE = {
    "missing": "a text-only model: dropping text leaves nothing to predict from, dropping audio/vision changes nothing",
    "conflict": "a text-only model: conflict swaps audio and vision, which it does not read",
}


@torch.no_grad()
def run_model(model: torch.nn.Module, arrays: dict[str, np.ndarray], presence: np.ndarray | None,
              scales: dict[str, np.ndarray] | None, device: torch.device, text_feature: str,
              batch_size: int, with_views: bool = False, routed: bool = True) -> dict[str, np.ndarray]:
    """Prediction (N,), routing π (N, E) and expert outputs (V, N, E) of ``model`` on numpy inputs
    (the prediction alone for a model without routing)."""
    split = arrays_to_split(arrays, scales, device, text_feature)
    present = None if presence is None else torch.from_numpy(presence).to(device)
    parts: dict[str, list] = {"prediction": [], "routing": [], "experts": []}
    for start in range(0, len(split), batch_size):
        index = torch.arange(start, min(start + batch_size, len(split)), device=device)
        text, audio, vision, lengths, _ = split.batch(index)
        out = model(text, audio, vision, lengths, None if present is None else present[index], with_views=with_views)
        parts["prediction"].append(out.prediction.float().cpu())
        if routed:
            parts["routing"].append(out.routing.float().cpu())
            parts["experts"].append(out.expert_outputs.float().cpu())
    if not routed:
        return {"prediction": torch.cat(parts["prediction"]).numpy()}
    return {"prediction": torch.cat(parts["prediction"]).numpy(), "routing": torch.cat(parts["routing"]).numpy(),
            "experts": torch.cat(parts["experts"], dim=1).numpy()}


def evaluate(checkpoint_dir: str | os.PathLike, cache_path: str | os.PathLike, plan_path: str | os.PathLike,
             out_path: str | os.PathLike, device: str = "auto", batch_size: int = 512,
             threads: int | None = None, predictions_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write the evaluation JSON to ``out_path`` and, when ``predictions_path`` is given, every per-sample test
    prediction (``rider.predictions``) there; returns the evaluation."""
    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    torch_device = resolve_device(device)
    model, config, metadata = load_checkpoint(checkpoint_dir, torch_device)
    text_feature = config["train"]["text_feature"]
    kind = model_kind(config["kind"])
    scales = feature_scales(cache_path, text_feature) if config["train"]["normalize"] else None
    # text_glove is always read: the stress plan's arrays are checked against it (zero columns without GloVe).
    test = load_test_split(cache_path, features=tuple(dict.fromkeys(("text_glove", text_feature, "audio", "vision"))))
    labels = test["labels"]
    experts = () if not kind.routed else ("single",) if config["model"]["single_expert"] else EXPERTS
    n_experts = len(experts)

    clean = run_model(model, test, None, scales, torch_device, text_feature, batch_size, with_views=n_experts > 1,
                      routed=kind.routed)
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint_dir),
        "kind": config["kind"],
        "seed": metadata["seed"],
        "best_epoch": metadata["best_epoch"],
        "valid": metadata["best_valid"],
        "parameters": metadata["parameters"],
        "experts": list(experts),
        "clean": regression_metrics(clean["prediction"], labels),
        "clean_routing": clean["routing"].mean(axis=0).tolist() if kind.routed else [],
        "stress": {},
        "nauc": {},
    }
    if n_experts > 1:
        result["dir"] = dir_diagnostics(clean["experts"], clean["routing"], labels)
    latents = read_arrays(cache_path, "test", text_feature).get("latents")
    if latents is not None and kind.routed:
        result["latent_correlation"] = latent_correlations(clean["experts"][0], latents, experts)

    plan = read_plan(plan_path)
    stressors = list(plan.grids) if kind.routed else [s for s in plan.grids if s == "noise"]
    if not kind.routed:
        result["not_applicable"] = {s: NOT_APPLICABLE[s] for s in plan.grids if s not in stressors}
    severities = list(iter_severities(plan, test, stressors))
    per_sample: dict[str, list[np.ndarray]] = {}
    for stressor, severity, stressed in tqdm(severities, desc="evaluate", unit="severity"):
        out = run_model(model, stressed.arrays, stressed.presence, scales, torch_device, text_feature, batch_size,
                        routed=kind.routed)
        per_sample.setdefault(stressor, []).append(out["prediction"])
        result["stress"].setdefault(stressor, []).append({
            "severity": float(severity),
            "metrics": regression_metrics(out["prediction"], labels),
            "routing": out["routing"].mean(axis=0).tolist() if kind.routed else [],
            "present": stressed.presence.mean(axis=0).tolist(),
        })
    for stressor, points in result["stress"].items():
        severities = [point["severity"] for point in points]
        result["nauc"][stressor] = {key: nauc(severities, [p["metrics"][key] for p in points]) for key in METRIC_KEYS}
    result["seconds"] = time.perf_counter() - started
    if predictions_path is not None:
        write_predictions(predictions_path, Predictions(
            ids=test["ids"], labels=labels, clean=clean["prediction"],
            stress={s: ([p["severity"] for p in points], np.stack(per_sample[s]))
                    for s, points in result["stress"].items()}))
    write_json(out_path, result)
    log.info("clean MAE %.4f corr %.4f; nAUC acc2 %s", result["clean"]["mae"], result["clean"]["corr"],
             {s: round(v["acc2_non0"], 4) for s, v in result["nauc"].items()})
    return result
