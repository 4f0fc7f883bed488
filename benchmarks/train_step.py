"""Time one RIDER-MoE training step (forward + loss + backward + AdamW) for the ways the four views can run.

    OMP_NUM_THREADS=2 python benchmarks/train_step.py            # MOSI sizes (App. C.5)
    python benchmarks/train_step.py --size mosei --device cuda

Every variant starts from the same weights and sees the same random batch (32 x 50 words); the variants take
turns step by step, so a slow-down of the machine hits all of them alike. The median over ``--steps`` steps
after ``--warmup`` is reported. The last line printed is one JSON object: step times in ms,
``naive_over_fastest`` = four views as four passes / fastest four-view variant, ``four_view_over_single`` =
fastest four-view batched variant / fastest single-view variant, and the same ratio in matmul FLOPs.

Variants: single view (training without masked views) with separate or grouped experts; four views as four
passes of fusion + experts (separate experts, the straightforward way); four views as one batch of 4B with
separate or grouped experts; on CUDA also grouped + ``torch.compile(mode="reduce-overhead")`` (CUDA graphs).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import resource
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from rider.model import build_model, count_parameters
from rider.model.rider_moe.config import LossWeights
from rider.model.rider_moe.experts import copy_expert_weights
from rider.model.rider_moe.losses import compute_loss
from rider.model.rider_moe.network import RiderMoE
from rider.model.rider_moe.config import paper_config

STEPS_PER_EPOCH = {"mosi": 41, "mosei": 511}  # App. D: 1,284 and 16,326 training samples, batch 32
EPOCHS = 60


class FourPassRiderMoE(RiderMoE):
    """The straightforward way: fusion + experts called once per view instead of once on 4B samples."""

    def run_experts(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.experts(view) for view in tokens])  # (V, B, E)


def same_weights(model: RiderMoE, cls: type[RiderMoE], grouped: bool) -> RiderMoE:
    """A copy of ``model`` as class ``cls`` with grouped or separate experts, carrying the same weights."""
    cfg = dataclasses.replace(model.cfg, grouped_experts=grouped)
    clone = cls(cfg).to(next(model.parameters()).device)
    rest = {k: v for k, v in model.state_dict().items() if not k.startswith("experts.")}
    missing, unexpected = clone.load_state_dict(rest, strict=False)
    assert not unexpected and all(k.startswith("experts.") for k in missing)
    if grouped == model.cfg.grouped_experts:
        clone.experts.load_state_dict(model.experts.state_dict())
    else:
        copy_expert_weights(model.experts, clone.experts)
    return clone


def random_batch(cfg, batch: int, seq_len: int, device: torch.device, seed: int):
    g = torch.Generator().manual_seed(seed)
    inputs = (
        torch.randn(batch, seq_len, cfg.text_dim, generator=g),
        torch.randn(batch, seq_len, cfg.audio_dim, generator=g),
        torch.randn(batch, seq_len, cfg.vision_dim, generator=g),
        torch.randint(1, seq_len + 1, (batch,), generator=g),
    )
    y = torch.empty(batch).uniform_(-3, 3, generator=g)
    return tuple(t.to(device) for t in inputs), y.to(device)


def make_step(model: RiderMoE, weights: LossWeights, inputs, y, with_views: bool, compile_mode: str | None):
    """A closure running one full training step on ``model`` with its own AdamW."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=5e-4)  # App. C.5, MOSI

    def forward_loss():
        return compute_loss(model(*inputs, with_views=with_views), y, weights)[0]

    if compile_mode is not None:
        forward_loss = torch.compile(forward_loss, mode=compile_mode)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = forward_loss()
        loss.backward()
        opt.step()

    return step


def training_flops(model: RiderMoE, weights: LossWeights, inputs, y, with_views: bool) -> int:
    """Matmul/attention FLOPs of one forward + backward: what a compute-bound machine has to pay for."""
    model = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as counter:
        compute_loss(model(*inputs, with_views=with_views), y, weights)[0].backward()
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("mosi", "mosei"), default="mosi")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)  # CUDA graphs record on the 2nd call
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    torch.manual_seed(args.seed)
    cfg, weights = paper_config(args.size)
    base = build_model(dataclasses.replace(cfg, grouped_experts=True)).to(device)
    inputs, y = random_batch(cfg, args.batch, args.seq_len, device, args.seed)

    # name -> (model class, grouped experts?, with views?, compile mode)
    plan = {
        "single_view_separate": (RiderMoE, False, False, None),
        "single_view_grouped": (RiderMoE, True, False, None),
        "four_passes_separate": (FourPassRiderMoE, False, True, None),
        "four_view_batched_separate": (RiderMoE, False, True, None),
        "four_view_batched_grouped": (RiderMoE, True, True, None),
    }
    if cuda:
        plan["four_view_grouped_compiled"] = (RiderMoE, True, True, "reduce-overhead")
    steps = {name: make_step(same_weights(base, cls, grouped), weights, inputs, y, views, mode)
             for name, (cls, grouped, views, mode) in plan.items()}

    times = {name: [] for name in steps}
    peak = {name: 0 for name in steps}
    for i in range(args.warmup + args.steps):
        for name, step in steps.items():
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
                peak[name] = max(peak[name], torch.cuda.max_memory_allocated())
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)

    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    four_view = [n for n in ms if n != "four_passes_separate" and not n.startswith("single_view")]
    batched_fastest = min(four_view, key=ms.get)
    single_fastest = min((n for n in ms if n.startswith("single_view")), key=ms.get)

    flops = {views: training_flops(base, weights, inputs, y, views) for views in (False, True)}
    flop_ratio = flops[True] / flops[False]

    device_name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    steps_per_epoch = STEPS_PER_EPOCH[args.size]
    print(f"RIDER-MoE training step, {args.size.upper()} sizes ({count_parameters(base):,} parameters), "
          f"batch {args.batch} x {args.seq_len} words, {device_name}, torch {torch.__version__}, "
          f"median of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'variant':<30}{'step ms':>10}{'x single':>10}{f'{EPOCHS} epochs':>12}" + ("  peak MiB" if cuda else ""))
    for name, t in ms.items():
        total = t / 1e3 * steps_per_epoch * EPOCHS
        line = f"{name:<30}{t:>10.1f}{t / ms[single_fastest]:>10.2f}{total:>11.0f}s"
        print(line + (f"{peak[name] / 2**20:>10.0f}" if cuda else ""))
    if not cuda:
        print("four_view_grouped_compiled: skipped (torch.compile reduce-overhead uses CUDA graphs; CUDA only)")
        maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        print(f"peak resident memory of this process (all variants together): {maxrss_mib:.0f} MiB")
    print(f"matmul/attention FLOPs of forward + backward: single view {flops[False] / 1e9:.2f} G, four views "
          f"{flops[True] / 1e9:.2f} G ({flop_ratio:.2f}x; the step-time ratio where arithmetic is all that counts)")
    print(f"projected {EPOCHS}-epoch {args.size.upper()} time ({steps_per_epoch} steps/epoch), fastest four-view "
          f"variant {batched_fastest}: {ms[batched_fastest] / 1e3 * steps_per_epoch * EPOCHS:.0f} s")

    result = {
        "device": device_name, "size": args.size, "batch": args.batch, "seq_len": args.seq_len,
        "steps": args.steps, "step_ms": {k: round(v, 2) for k, v in ms.items()},
        "peak_mib": ({k: round(v / 2**20, 1) for k, v in peak.items()} if cuda
                     else {"process_maxrss": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}),
        "naive_over_fastest": round(ms["four_passes_separate"] / ms[batched_fastest], 3),
        "four_view_over_single": round(ms[batched_fastest] / ms[single_fastest], 3),
        "flop_ratio_four_over_single": round(flop_ratio, 3),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
