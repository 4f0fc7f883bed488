"""Appendix D on this run: steps, view-level forwards and the training step-time multiplier of the four views.

Training runs fusion + experts on four views (p = 0, −T, −A, −V) per step; single-view training (no masked views)
runs them once. ``measure_step_times`` times both on the trained run's own kind and configuration: the same
initial weights, the same random batch, each with its own AdamW, alternating step by step so that a slow-down of
the machine hits both alike; the median over the timed steps is reported. A kind without masked views is timed
on its single view only. It takes seconds at the default run's sizes. ``rider overhead`` writes the result as
JSON (a stage of its own, beside training); the report only reads it.
"""

from __future__ import annotations

import copy
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

from rider.atomic import write_json
from rider.data.cache import validate_cache
from rider.device import resolve_device
from rider.model import Batch, build_model, model_kind, weighted_loss
from rider.model.kind import VIEWS



def _random_batch(cfg: Any, batch: int, device: torch.device, seed: int):
    g = torch.Generator().manual_seed(seed)
    inputs = (
        torch.randn(batch, cfg.max_len, cfg.text_dim, generator=g),  # (B, L, Dt)
        torch.randn(batch, cfg.max_len, cfg.audio_dim, generator=g),  # (B, L, Da)
        torch.randn(batch, cfg.max_len, cfg.vision_dim, generator=g),  # (B, L, Dv)
        torch.randint(1, cfg.max_len + 1, (batch,), generator=g),  # (B,)
    )
    y = torch.empty(batch).uniform_(-3, 3, generator=g)  # (B,)
    return tuple(t.to(device) for t in inputs), y.to(device)


def measure_step_times(kind: str, model: Mapping[str, Any], loss: Mapping[str, Any], batch_size: int,
                       steps: int = 10, warmup: int = 2, device: str = "auto", seed: int = 0) -> dict[str, float]:
    """Median training-step time (ms) of single-view and four-view training, their ratio and their FLOP ratio.

    ``model`` and ``loss`` are a checkpoint's resolved config sections of ``kind``. A kind with masked views
    computes them when asked, whatever its training used; a kind without them gets its single-view step only
    (the four-view columns are NaN).
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps = {steps} must be >= 1 and warmup = {warmup} >= 0")
    entry = model_kind(kind)
    torch_device = resolve_device(device)
    cfg = entry.config.from_dict(model, where=f"{kind} model")
    weights = entry.loss.from_dict(loss, where=f"{kind} loss")
    torch.manual_seed(seed)
    base = build_model(cfg, kind).to(torch_device).train()
    inputs, y = _random_batch(cfg, batch_size, torch_device, seed)
    batch = Batch(*inputs, labels=y, index=torch.arange(batch_size, device=torch_device))
    variants = {"single": False, "four": True} if entry.views else {"single": False}

    def loss_of(net, with_views: bool) -> torch.Tensor:
        objective = entry.objective(cfg, weights, batch_size)
        out = net(*inputs, **entry.call_options(None, with_views))
        return weighted_loss(objective(out, batch), weights.coefficients())[0]

    def make_step(with_views: bool):
        net = copy.deepcopy(base)
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss_of(net, with_views).backward()
            optimizer.step()

        return step

    runs = {name: make_step(with_views) for name, with_views in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    cuda = torch_device.type == "cuda"
    for i in range(warmup + steps):
        for name, step in runs.items():
            if cuda:
                torch.cuda.synchronize(torch_device)
            started = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize(torch_device)
            if i >= warmup:
                times[name].append(time.perf_counter() - started)

    flops = {}
    for name, with_views in variants.items():
        net = copy.deepcopy(base)
        with FlopCounterMode(display=False) as counter:
            loss_of(net, with_views).backward()
        flops[name] = counter.get_total_flops()

    single = 1e3 * statistics.median(times["single"])
    four = 1e3 * statistics.median(times["four"]) if "four" in times else math.nan
    return {"single_view_ms": single, "four_view_ms": four, "step_time_multiplier": four / single,
            "flop_ratio": flops["four"] / flops["single"] if "four" in flops and flops["single"] else math.nan}


def step_counts(train_samples: int, batch_size: int, epochs: int) -> dict[str, int]:
    """App. D's counts: steps per epoch (the last batch may be short), total steps and view-level forwards."""
    if train_samples < 1 or batch_size < 1 or epochs < 1:
        raise ValueError(f"train_samples = {train_samples}, batch_size = {batch_size} and epochs = {epochs} "
                         "must all be >= 1")
    per_epoch = math.ceil(train_samples / batch_size)
    total = per_epoch * epochs
    return {"train_samples": train_samples, "batch_size": batch_size, "steps_per_epoch": per_epoch,
            "epochs": epochs, "total_steps": total, "view_forwards": len(VIEWS) * total, "single_view_forwards": total}


def measure_overhead(run_config: Mapping[str, Any], train_samples: int, steps: int = 10, warmup: int = 2,
                     seed: int = 0) -> dict[str, Any]:
    """Every column of the overhead table for one trained configuration (a checkpoint's ``config.json``)."""
    train = run_config["train"]
    torch_device = resolve_device(train.get("device", "auto"))
    times = measure_step_times(run_config.get("kind", "rider_moe"), run_config["model"], run_config["loss"],
                               train["batch_size"], steps=steps, warmup=warmup, device=str(torch_device), seed=seed)
    device = (torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda"
              else f"CPU, {torch.get_num_threads()} threads")
    return {**step_counts(train_samples, train["batch_size"], train["epochs"]), **times, "device": device}


def write_overhead(config_path: str | os.PathLike, cache_path: str | os.PathLike, out_path: str | os.PathLike,
                   dataset: str, paper: str | None = None, steps: int = 10, warmup: int = 2) -> dict[str, Any]:
    """Time the run whose ``config.json`` is ``config_path`` on the training split size of ``cache_path``; write
    ``{dataset, paper, kind, device, steps..., single_view_ms, four_view_ms, ...}`` to ``out_path`` as JSON."""
    run_config = json.loads(Path(config_path).read_text())
    train_samples = validate_cache(cache_path)["train"]
    measured = {"dataset": dataset, "paper": paper, "kind": run_config.get("kind", "rider_moe"),
                **measure_overhead(run_config, train_samples, steps=steps, warmup=warmup)}
    write_json(out_path, measured)
    return measured
