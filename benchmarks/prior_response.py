"""What holds RIDER-MoE's expert prior (Eqs. 34-36) at its bias? Train a few settings side by side and measure.

    python benchmarks/prior_response.py --cache resources/cache/synth_mosi.h5 --epochs 12

For each setting the same seed trains the default run's RIDER-MoE (d_model 64, two expert layers) and then, on the
clean test split, prints:
- ``f_std``: std over samples of each Eq. 34 feature (r_T, r_A, r_V, cons_score);
- ``W_init`` / ``W_end``: mean |W_prior| at initialisation and after training; ``W_grad``: mean gradient norm that
  reached W_prior per step, beside the base router's (``base_grad``);
- ``logit_std``: std over samples of the prior's logits W_prior f (what can move pi through Eq. 38), beside the std
  of the base router's logits; ``prior_std``: std over samples of Prior^exp, averaged over experts;
- ``prior_move``: how far the mean Prior^exp moves between the clean test split and every modality missing but
  one (text kept), the largest |change| over experts.
The last line printed is one JSON object with every number. Settings: the paper's (raw features), the same without
weight decay, with a ten times larger learning rate on W_prior alone, and with standardised features.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from rider.data.split import load_split
from rider.model import Batch, build_model
from rider.model.rider_moe.config import LossWeights, ModelConfig
from rider.model.rider_moe.losses import rider_objective
from rider.model.objective import weighted_loss

SETTINGS = {
    "paper": {},
    "no_weight_decay": {"weight_decay": 0.0},
    "prior_lr_x10": {"prior_lr_scale": 10.0},
    "standardized": {"prior_features": "standardized"},
}


def run(setting: dict, train, test, epochs: int, seed: int) -> dict:
    torch.manual_seed(seed)
    cfg = ModelConfig(d_model=64, expert_layers=2, expert_ff=128, text_dim=train.text.shape[-1],
                      audio_dim=train.audio.shape[-1], vision_dim=train.vision.shape[-1],
                      max_len=train.text.shape[1], prior_features=setting.get("prior_features", "raw"))
    model = build_model(cfg)
    prior_w = model.router.prior.weight
    w_init = prior_w.detach().abs().mean().item()
    prior_params = list(model.router.prior.parameters())
    others = [p for p in model.parameters() if all(p is not q for q in prior_params)]
    lr, wd = 1e-3, setting.get("weight_decay", 5e-4)
    optimizer = torch.optim.AdamW([{"params": others},
                                   {"params": prior_params, "lr": lr * setting.get("prior_lr_scale", 1.0)}],
                                  lr=lr, weight_decay=wd)
    objective, coefficients = rider_objective(), LossWeights().coefficients()
    grads = {"prior": [], "base": []}
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        permutation = torch.randperm(len(train), generator=order)
        for start in range(0, len(train), 32):
            index = permutation[start:start + 32]
            batch = Batch(*train.batch(index), index=index)
            output = model(batch.text, batch.audio, batch.vision, batch.lengths)
            total, _ = weighted_loss(objective(output, batch), coefficients)
            optimizer.zero_grad()
            total.backward()
            grads["prior"].append(prior_w.grad.norm().item())
            grads["base"].append(model.router.base.weight.grad.norm().item())
            optimizer.step()
    model.eval()
    with torch.no_grad():
        text, audio, vision, lengths, _ = test.batch(torch.arange(len(test)))
        out = model(text, audio, vision, lengths)
        f = torch.cat([out.reliability, out.consensus[:, None]], dim=-1)
        prior_logits = model.router.prior(model.router.prior_norm(f))
        base_logits = model.router.base(model.fusion.pool(out.fused_tokens[0]))
        text_only = torch.tensor([[True, False, False]]).expand(len(test), 3)
        missing = model(text, audio, vision, lengths, presence=text_only)
    return {
        "f_std": f.std(dim=0).tolist(),
        "W_init": w_init, "W_end": prior_w.detach().abs().mean().item(),
        "W_grad": float(np.mean(grads["prior"])), "base_grad": float(np.mean(grads["base"])),
        "logit_std": prior_logits.std(dim=0).mean().item(), "base_logit_std": base_logits.std(dim=0).mean().item(),
        "prior_std": out.expert_prior.std(dim=0).mean().item(),
        "prior_move": (missing.expert_prior.mean(0) - out.expert_prior.mean(0)).abs().max().item(),
        "pi_move": (missing.routing.mean(0) - out.routing.mean(0)).abs().max().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default="resources/cache/synth_mosi.h5")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    train = load_split(args.cache, "train", device)
    test = load_split(args.cache, "test", device)
    results = {}
    for name in args.settings:
        results[name] = run(SETTINGS[name], train, test, args.epochs, args.seed)
        r = results[name]
        print(f"{name:16s} f_std {np.round(r['f_std'], 3)} W |init| {r['W_init']:.3f} |end| {r['W_end']:.3f} "
              f"grad W_prior {r['W_grad']:.4f} base {r['base_grad']:.4f} | logit std prior {r['logit_std']:.4f} "
              f"base {r['base_logit_std']:.4f} | Prior^exp std {r['prior_std']:.4f} move {r['prior_move']:.4f} "
              f"pi move {r['pi_move']:.4f}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
