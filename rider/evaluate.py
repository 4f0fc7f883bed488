"""Evaluate one trained model: clean test metrics, every stressor at every severity, nAUC, routing, DIR checks.

One job per model and seed loops over all severities (DESIGN §1); the test split is read once and every
severity's corrupted inputs come from the shared stress plan, so every model sees the same bytes. Every model kind
goes through the same code: its ``ModelKind`` says how an absent modality reaches it (the presence mask, or zeroed
features as App. C.2 gives the baselines), which stressors measure something about it (``ModelKind.stressors``:
a text-only model has no conflict or missingness to react to; those are listed under ``not_applicable`` with the
reason), whether it reads the segments' words (passed with the stressors' marks, ``MASKED_WORD``, as the call
option ``words``), and which extra outputs it has (routing weights, masked-view expert outputs for the DIR
checks, the per-sample reliability signals of ``ModelKind.signals``).

The signal chain (rider.chain): at every stressor and severity beside the routing means, each signal's mean and
its AUROC for the inputs the plan corrupted there (against those left alone and the clean inputs); per stressor,
the AUROC pooled over its severities (``separation``); on synthetic data whose cache holds the quality latent
(``/test/latents/quality``), how each per-modality signal tracks it on the clean test split (``quality_tracking``).
A kind without signals gets empty entries, by the same code.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rider.atomic import write_json
from rider.checkpoint import METADATA, WEIGHTS, load_checkpoint
from rider.chain import quality_tracking, separation, signal_means
from rider.data.cache import cache_dataset, read_words
from rider.data.split import arrays_to_split, feature_scales, read_latents
from rider.device import resolve_device
from rider.diagnostics import dir_diagnostics, latent_correlations
from rider.metrics import METRIC_KEYS, nauc, regression_metrics
from rider.model import ModelKind, model_kind
from rider.model.kind import INTERACTION_EXPERTS
from rider.predictions import Predictions, write_predictions
from rider.provenance import check_built_from, file_record, sha256_file
from rider.stress import (check_plan_cache, corrupted_modalities, iter_severities, load_test_split, read_plan,
                          zero_absent)

log = logging.getLogger(__name__)


@torch.no_grad()
def run_model(model: torch.nn.Module, kind: ModelKind, arrays: dict[str, np.ndarray], presence: np.ndarray | None,
              scales: dict[str, np.ndarray] | None, device: torch.device, text_feature: str,
              batch_size: int, with_views: bool = False) -> dict[str, np.ndarray]:
    """Prediction (N,) of ``model`` on numpy inputs, with routing π (N, E) and expert outputs (V, N, E) for a
    routed kind, and ``signals``: each of the kind's reliability signals (N, ...) by field. An absent modality
    (``presence`` False) reaches the model the way its kind declares."""
    if presence is not None and kind.absent == "zeros":
        arrays = zero_absent(arrays, presence)
    split = arrays_to_split(arrays, scales, device, text_feature)
    present = None if presence is None else torch.from_numpy(presence).to(device)
    parts: dict[str, list] = {"prediction": [], "routing": [], "experts": []}
    signals: dict[str, list] = {signal.field: [] for signal in kind.signals}
    for start in range(0, len(split), batch_size):
        index = torch.arange(start, min(start + batch_size, len(split)), device=device)
        text, audio, vision, lengths, _ = split.batch(index)
        options = kind.call_options(None if present is None else present[index], with_views, split.batch_words(index))
        out = model(text, audio, vision, lengths, **options)
        parts["prediction"].append(out.prediction.float().cpu())
        if kind.routed:
            parts["routing"].append(out.routing.float().cpu())
            parts["experts"].append(out.expert_outputs.float().cpu())
        for field, kept in signals.items():
            if not hasattr(out, field):
                raise ValueError(f"model kind {kind.name} declares the signal {field!r}, but its output "
                                 f"{type(out).__name__} has no such field ({', '.join(out._fields)})")
            kept.append(getattr(out, field).float().cpu())
    result = {"prediction": torch.cat(parts["prediction"]).numpy(),
              "signals": {field: torch.cat(kept).numpy() for field, kept in signals.items()}}
    if kind.routed:
        result.update(routing=torch.cat(parts["routing"]).numpy(), experts=torch.cat(parts["experts"], dim=1).numpy())
    return result


def evaluate(checkpoint_dir: str | os.PathLike, cache_path: str | os.PathLike, plan_path: str | os.PathLike,
             out_path: str | os.PathLike, device: str = "auto", batch_size: int = 512,
             threads: int | None = None, predictions_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write the evaluation JSON to ``out_path`` and, when ``predictions_path`` is given, every per-sample test
    prediction (``rider.predictions``) there; returns the evaluation."""
    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    torch_device = resolve_device(device)
    # Provenance first (rider.provenance): the checkpoint and the plan must come from this cache, else the numbers
    # would describe other data. The cache is hashed once for both checks and the record in eval.json.
    cache_sha256 = sha256_file(cache_path)
    model, config, metadata = load_checkpoint(checkpoint_dir, torch_device)
    if isinstance(metadata.get("cache"), dict):
        check_built_from(Path(checkpoint_dir) / METADATA, "checkpoint", metadata["cache"], cache_path, "cache file",
                         sha256=cache_sha256)
    plan = read_plan(plan_path)
    check_plan_cache(plan, cache_path, sha256=cache_sha256)
    text_feature = config["train"]["text_feature"]
    kind = model_kind(config["kind"])
    model_cfg = kind.config.from_dict(config["model"], where=f"{checkpoint_dir}: model")
    scales = feature_scales(cache_path, text_feature) if config["train"]["normalize"] else None
    # text_glove is always read: the stress plan's arrays are checked against it (zero columns without GloVe).
    test = load_test_split(cache_path, features=tuple(dict.fromkeys(("text_glove", text_feature, "audio", "vision"))))
    if kind.reads_words(model_cfg):  # the stressors mark the words whose features they zero (MASKED_WORD)
        test["words"] = read_words(cache_path, "test")
    labels = test["labels"]
    experts = kind.expert_names(model_cfg)
    modalities = kind.modalities
    dir_checks = kind.views and experts == INTERACTION_EXPERTS  # App. C.4 needs the five U/R/S experts on the four views

    clean = run_model(model, kind, test, None, scales, torch_device, text_feature, batch_size, with_views=dir_checks)
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint_dir),
        "provenance": {  # what this evaluation was computed from; the report refuses to mix caches or plans
            "cache": file_record(cache_path, cache_sha256, dataset=cache_dataset(cache_path)),
            "plan": file_record(plan_path, dataset=plan.dataset),
            "checkpoint": file_record(Path(checkpoint_dir) / WEIGHTS),
        },
        "kind": config["kind"],
        "kind_note": kind.note,
        "seed": metadata["seed"],
        "best_epoch": metadata["best_epoch"],
        "valid": metadata["best_valid"],
        "parameters": metadata["parameters"],
        "experts": list(experts),
        "clean": regression_metrics(clean["prediction"], labels),
        "clean_routing": clean["routing"].mean(axis=0).tolist() if kind.routed else [],
        "clean_signals": signal_means(clean["signals"], kind.signals, modalities, experts),
        "stress": {},
        "nauc": {},
        "separation": {},
    }
    if dir_checks:
        result["dir"] = dir_diagnostics(clean["experts"], clean["routing"], labels)
    # The ground truth (synthetic data): a routed kind's experts and a kind's signals are held against it.
    latents = read_latents(cache_path, "test")
    if latents is not None and kind.routed:
        result["latent_correlation"] = latent_correlations(clean["experts"][0], latents, experts)
    if latents is not None and "quality" in latents and kind.signals:  # older caches have no quality latent
        result["quality_tracking"] = quality_tracking(clean["signals"], latents["quality"], kind.signals, modalities)

    stressors, skipped = kind.stressors(tuple(plan.grids))
    if skipped:
        result["not_applicable"] = skipped
    severities = list(iter_severities(plan, test, stressors))
    per_sample: dict[str, list[np.ndarray]] = {}
    # rider.chain: the clean inputs are the untouched reference of every separation (nothing corrupted there).
    clean_level = (clean["signals"], np.zeros((len(labels), 3), dtype=bool))
    stressed_levels: dict[str, list] = {}
    for stressor, severity, stressed in tqdm(severities, desc="evaluate", unit="severity"):
        out = run_model(model, kind, stressed.arrays, stressed.presence, scales, torch_device, text_feature,
                        batch_size)
        per_sample.setdefault(stressor, []).append(out["prediction"])
        level = (out["signals"], corrupted_modalities(plan, stressor, severity))  # (N, 3) T, A, V changed here
        if severity > 0:  # a severity 0 is the clean inputs again: pooled once, through clean_level
            stressed_levels.setdefault(stressor, []).append(level)
        result["stress"].setdefault(stressor, []).append({
            "severity": float(severity),
            "metrics": regression_metrics(out["prediction"], labels),
            "routing": out["routing"].mean(axis=0).tolist() if kind.routed else [],
            "present": stressed.presence.mean(axis=0).tolist(),
            "signals": signal_means(out["signals"], kind.signals, modalities, experts),
            "separation": separation([clean_level, level], kind.signals, modalities),
        })
    for stressor, levels in stressed_levels.items():
        result["separation"][stressor] = separation([clean_level, *levels], kind.signals, modalities)
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
