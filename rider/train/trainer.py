"""Train one model variant with one seed (paper App. C.5: AdamW, batch 32; DESIGN §4).

The checkpoint with the best validation MAE is kept. Every loss term and every validation metric is logged per
epoch to ``epochs.csv``. The same seed on the same device gives the same numbers.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tqdm import tqdm

import rider
from rider.atomic import atomic_path
from rider.checkpoint import save_checkpoint
from rider.config import from_mapping
from rider.metrics import METRIC_KEYS, regression_metrics
from rider.data.csd import DataError
from rider.model import DEFAULT_KIND, LossWeights, ModelConfig, build_model, count_parameters, model_kind
from rider.train.data import Split, load_split

log = logging.getLogger(__name__)

EPOCHS_FILE = "epochs.csv"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    lr: float = 3e-4
    weight_decay: float = 5e-4
    batch_size: int = 32
    eval_batch_size: int = 512
    normalize: bool = True           # divide features by their train-set std (rider.train.data)
    text_feature: str = "text_glove"
    device: str = "auto"             # auto: CUDA when present, else CPU
    # Graph capture of forward + loss: at these sizes a GPU step is bound by kernel launches (DESIGN §8), and
    # CUDA graphs replay them at once. auto = on with CUDA, off (eager) on the CPU, where it gains nothing.
    compile: str = "auto"            # auto | on | off
    compile_mode: str = "reduce-overhead"
    compile_backend: str = "inductor"  # tests use aot_eager: the same graph capture without code generation


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run depends on; Snakemake passes it as the rule's params."""

    kind: str = DEFAULT_KIND  # rider.model.MODEL_KINDS: rider_moe | text_only
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunSpec":
        unknown = sorted(set(values) - {"kind", "model", "loss", "train"})
        if unknown:
            raise ValueError(f"run spec: unknown key(s) {unknown}; allowed: ['kind', 'loss', 'model', 'train']")
        kind = values.get("kind", DEFAULT_KIND)
        model_kind(kind)  # an unknown kind fails here, naming the known ones
        return cls(
            kind=kind,
            model=ModelConfig.from_dict(values.get("model", {}), where="model"),
            loss=LossWeights.from_dict(values.get("loss", {}), where="loss"),
            train=from_mapping(TrainConfig, values.get("train", {}), "train"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model.to_dict(), "loss": self.loss.to_dict(),
                "train": dataclasses.asdict(self.train)}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def use_compile(config: TrainConfig, device: torch.device) -> bool:
    if config.compile not in ("auto", "on", "off"):
        raise ValueError(f"train.compile = {config.compile!r}, expected auto, on or off")
    return config.compile == "on" or (config.compile == "auto" and device.type == "cuda")


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@torch.no_grad()
def predict(model: torch.nn.Module, split: Split, batch_size: int) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(split), batch_size):
        index = torch.arange(start, min(start + batch_size, len(split)), device=split.labels.device)
        text, audio, vision, lengths, _ = split.batch(index)
        out.append(model(text, audio, vision, lengths).prediction)
    return torch.cat(out).float().cpu().numpy()


def train(spec: RunSpec, cache_path: str | os.PathLike, out_dir: str | os.PathLike, seed: int,
          threads: int | None = None) -> dict[str, Any]:
    """Train, keep the best-validation-MAE weights, write the checkpoint and ``epochs.csv``; return the metadata."""
    out_dir = Path(out_dir)
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(spec.train.device)
    seed_everything(seed)
    train_split = load_split(cache_path, "train", device, spec.train.text_feature, spec.train.normalize)
    valid_split = load_split(cache_path, "valid", device, spec.train.text_feature, spec.train.normalize)
    # Input sizes come from the data (GloVe 300 or BERT 768 text; L of the cache), for the inputs the kind reads.
    kind = model_kind(spec.kind)
    dims = {name: getattr(train_split, name).shape[-1] for name in ("text", "audio", "vision")}
    for modality in kind.modalities:
        if dims[modality] == 0:  # a dataset without that modality stores it with zero features (rider.data.cache)
            name = spec.train.text_feature if modality == "text" else modality
            raise DataError(f"{cache_path}: holds no {name} features (0 columns); model kind '{spec.kind}' reads "
                            f"{', '.join(kind.modalities)}")
    model_cfg = dataclasses.replace(spec.model, max_len=train_split.text.shape[1],
                                    **{f"{m}_dim": dims[m] for m in kind.modalities})
    spec = dataclasses.replace(spec, model=model_cfg)
    model = build_model(model_cfg, spec.kind).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.train.lr, weight_decay=spec.train.weight_decay)
    order = torch.Generator(device=device).manual_seed(seed)

    def forward_loss(text, audio, vision, lengths, labels):
        return kind.loss(model(text, audio, vision, lengths), labels, spec.loss)

    if use_compile(spec.train, device):
        mode = spec.train.compile_mode if spec.train.compile_backend == "inductor" else None
        forward_loss = torch.compile(forward_loss, backend=spec.train.compile_backend, mode=mode)
    n_batches = (len(train_split) + spec.train.batch_size - 1) // spec.train.batch_size
    log.info("training %d parameters on %s: %d samples, %d steps per epoch, %d epochs",
             count_parameters(model), device, len(train_split), n_batches, spec.train.epochs)

    rows, best, started = [], None, time.perf_counter()
    progress = tqdm(range(1, spec.train.epochs + 1), desc="train", unit="epoch")
    for epoch in progress:
        epoch_start = time.perf_counter()
        model.train()
        sums = {name: torch.zeros((), device=device) for name in ("total", *kind.terms)}
        permutation = torch.randperm(len(train_split), generator=order, device=device)
        for step in range(n_batches):
            index = permutation[step * spec.train.batch_size:(step + 1) * spec.train.batch_size]
            text, audio, vision, lengths, labels = train_split.batch(index)
            total, terms = forward_loss(text, audio, vision, lengths, labels)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            sums["total"] += total.detach()
            for name in kind.terms:
                sums[name] += terms[name].detach()
        valid = regression_metrics(predict(model, valid_split, spec.train.eval_batch_size), valid_split.labels.cpu().numpy())
        row = {"epoch": epoch, **{f"train_{k}": float(v) / n_batches for k, v in sums.items()},
               **{f"valid_{k}": valid[k] for k in METRIC_KEYS}, "seconds": time.perf_counter() - epoch_start}
        rows.append(row)
        if not np.isfinite(row["train_total"]):
            raise FloatingPointError(f"training diverged at epoch {epoch}: total loss {row['train_total']}")
        if best is None or valid["mae"] < best["valid"]["mae"]:
            best = {"epoch": epoch, "valid": valid,
                    "state": {name: t.detach().clone() for name, t in model.state_dict().items()}}
        progress.set_postfix(loss=f"{row['train_total']:.3f}", valid_mae=f"{valid['mae']:.3f}")
    progress.close()

    metadata = {
        "seed": seed,
        "kind": spec.kind,
        "best_epoch": best["epoch"],
        "best_valid": best["valid"],
        "epochs": spec.train.epochs,
        "parameters": count_parameters(model),
        "device": str(device),
        "compiled": use_compile(spec.train, device),
        "threads": torch.get_num_threads(),
        "train_seconds": time.perf_counter() - started,
        "rider_version": rider.__version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "cache": str(cache_path),
    }
    with atomic_path(out_dir / EPOCHS_FILE, suffix=".csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    save_checkpoint(out_dir, best["state"], spec.to_dict(), metadata)
    log.info("best validation MAE %.4f at epoch %d; checkpoint in %s", best["valid"]["mae"], best["epoch"], out_dir)
    return metadata
