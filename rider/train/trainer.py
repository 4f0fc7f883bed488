"""Train one model variant with one seed (paper App. C.5: AdamW, batch 32; DESIGN §4).

One trainer serves every model kind (rider.model.MODEL_KINDS): the kind's objective gives the unweighted loss
terms, its loss dataclass their weights; a kind that reads the segments' words (ModelKind.words) gets each
batch's words as the call option ``words``; a stateful objective hears of every epoch and step (Self-MM's label
memory), a model with ``parameter_groups`` trains its parts at their own rates, and a kind that declares
optimisation stages (rider.model.stages: MMIM's estimators, then the rest) makes each epoch of several passes, each
with its own loss and its own optimiser over its own parameters; a kind without them trains in one stage. The
checkpoint with the best validation MAE is kept. Every loss term and every validation metric is logged per epoch to ``epochs.csv``. The
same seed on the same device gives the same numbers.
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
from rider.errors import DataError
from rider.data.cache import cache_record
from rider.data.split import Split, load_split
from rider.device import resolve_device
from rider.model import DEFAULT_KIND, Batch, build_model, count_parameters, model_kind
from rider.model.objective import weighted_loss
from rider.model.stages import stage_parameters
from rider.stress.plan import STRESSORS
from rider.train.corruption import TrainingCorruption, feature_sigma, zero_absent_batch

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
    grad_clip: float = 0.0           # clip the gradient norm to this (0: no clipping); MulT's authors use 0.8
    # Corruption-aware training (rider.train.corruption): the stressors drawn for each training batch; () = clean.
    corrupt: tuple[str, ...] = ()
    corrupt_seed: int = 0            # with the run's seed, seeds the corruption stream (never the test plan's)

    def __post_init__(self):
        object.__setattr__(self, "corrupt", tuple(self.corrupt))  # YAML gives a list
        unknown = sorted(set(self.corrupt) - set(STRESSORS))
        if unknown:
            raise ValueError(f"train.corrupt: unknown stressor(s) {unknown}; expected some of {list(STRESSORS)}")


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run depends on; Snakemake passes it as the rule's params. ``model`` and ``loss``
    are the kind's own dataclasses (rider.model.MODEL_KINDS[kind].config / .loss)."""

    kind: str = DEFAULT_KIND
    model: Any = None  # None: the kind's defaults
    loss: Any = None
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        entry = model_kind(self.kind)
        for part, default in (("model", entry.config), ("loss", entry.loss)):
            if getattr(self, part) is None:
                object.__setattr__(self, part, default())
        for part, expected in (("model", entry.config), ("loss", entry.loss)):
            if not isinstance(getattr(self, part), expected):
                raise TypeError(f"run spec: {part} of kind {self.kind!r} must be a {expected.__name__}, "
                                f"got {type(getattr(self, part)).__name__}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunSpec":
        unknown = sorted(set(values) - {"kind", "model", "loss", "train"})
        if unknown:
            raise ValueError(f"run spec: unknown key(s) {unknown}; allowed: ['kind', 'loss', 'model', 'train']")
        kind = values.get("kind", DEFAULT_KIND)
        entry = model_kind(kind)  # an unknown kind fails here, naming the known ones
        return cls(
            kind=kind,
            model=entry.config.from_dict(values.get("model", {}), where=f"{kind} model"),
            loss=entry.loss.from_dict(values.get("loss", {}), where=f"{kind} loss"),
            train=from_mapping(TrainConfig, values.get("train", {}), "train"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model.to_dict(), "loss": self.loss.to_dict(),
                "train": dataclasses.asdict(self.train)}


def run_config(dataset: Mapping[str, Any], variant: Mapping[str, Any]) -> dict[str, Any]:
    """A training run's settings (``RunSpec.from_dict``'s input) from a dataset's validated config section and a
    variant of `models`: the kind's own sections (the dataset's ``model``/``loss`` for the kinds that share them,
    ``baselines.<kind>`` for the others), the dataset's ``train`` under the kind's, and the variant's overrides on
    top of each."""
    kind = model_kind(variant.get("kind", DEFAULT_KIND))
    own = dataset.get("baselines", {}).get(kind.name, {})
    base = {part: dict(dataset.get(part, {})) if part in kind.shared_sections else dict(own.get(part, {}))
            for part in ("model", "loss")}
    base["train"] = {**dataset.get("train", {}), **own.get("train", {})}
    run = {part: {**base[part], **variant.get(part, {})} for part in ("model", "loss", "train")}
    return {"kind": kind.name, **run}


def use_compile(config: TrainConfig, device: torch.device) -> bool:
    if config.compile not in ("auto", "on", "off"):
        raise ValueError(f"train.compile = {config.compile!r}, expected auto, on or off")
    return config.compile == "on" or (config.compile == "auto" and device.type == "cuda")


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@torch.no_grad()
def predict(model: torch.nn.Module, split: Split, batch_size: int, kind=None) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(split), batch_size):
        index = torch.arange(start, min(start + batch_size, len(split)), device=split.labels.device)
        text, audio, vision, lengths, _ = split.batch(index)
        words = split.batch_words(index)  # None unless the kind reads words
        options = {} if words is None else kind.call_options(None, False, words)
        out.append(model(text, audio, vision, lengths, **options).prediction)
    return torch.cat(out).float().cpu().numpy()


def stage_optimizers(model: torch.nn.Module, stages, config: TrainConfig) -> list[torch.optim.Optimizer]:
    """One AdamW per optimisation stage (rider.model.stages), over the parameters the stage steps. A model whose
    parts learn at their own rates says so with ``parameter_groups`` (e.g. Self-MM's audio and vision
    sub-networks): each stage keeps the groups' own rates for the parameters it steps; a stage's own ``lr`` /
    ``weight_decay`` replace the run's for the rest."""
    owned = stage_parameters(model, stages)
    optimizers = []
    for stage, parameters in zip(stages, owned):
        lr = config.lr if stage.lr is None else stage.lr
        decay = config.weight_decay if stage.weight_decay is None else stage.weight_decay
        groups = (model.parameter_groups(lr, decay) if hasattr(model, "parameter_groups")
                  else [{"params": list(model.parameters())}])
        mine = {id(p) for p in parameters}
        groups = [{**group, "params": [p for p in group["params"] if id(p) in mine]} for group in groups]
        optimizers.append(torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, weight_decay=decay))
    return optimizers


def optimisation_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, total: torch.Tensor,
                      grad_clip: float) -> None:
    """One step of one stage: every parameter's gradient of ``total`` (clipped together, as the authors clip
    ``model.parameters()``), then only ``optimizer``'s parameters move."""
    model.zero_grad(set_to_none=True)
    total.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def train(spec: RunSpec, cache_path: str | os.PathLike, out_dir: str | os.PathLike, seed: int,
          threads: int | None = None) -> dict[str, Any]:
    """Train, keep the best-validation-MAE weights, write the checkpoint and ``epochs.csv``; return the metadata."""
    out_dir = Path(out_dir)
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(spec.train.device)
    seed_everything(seed)
    kind = model_kind(spec.kind)
    # A kind that tokenises the words itself (ModelKind.words) gets them from the cache, batch by batch.
    words = kind.reads_words(spec.model)
    train_split = load_split(cache_path, "train", device, spec.train.text_feature, spec.train.normalize, words)
    valid_split = load_split(cache_path, "valid", device, spec.train.text_feature, spec.train.normalize, words)
    # Input sizes come from the data (GloVe 300 or BERT 768 text; L of the cache), for the inputs the kind reads.
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
    objective = kind.objective(model_cfg, spec.loss, len(train_split))
    stages = kind.training_stages(model_cfg, spec.loss)
    optimizers = stage_optimizers(model, stages, spec.train)
    order = torch.Generator(device=device).manual_seed(seed)

    corruption = None
    if spec.train.corrupt:
        if words:  # the stream zeroes token features; a language model reading the words would never see it
            raise ValueError(f"train.corrupt is not supported for a kind that reads the words ({spec.kind} with "
                             "this configuration); train it on clean batches")
        sigma = {name: feature_sigma(getattr(train_split, name), train_split.lengths) for name in ("audio", "vision")}
        corruption = TrainingCorruption(spec.train.corrupt, spec.train.corrupt_seed, seed, sigma)

    def forward_loss(batch: Batch, coefficients: Mapping[str, float], options: dict[str, Any]):
        output = model(batch.text, batch.audio, batch.vision, batch.lengths, **options)
        total, terms = weighted_loss(objective(output, batch), coefficients)
        return total, terms, output

    if use_compile(spec.train, device):
        mode = spec.train.compile_mode if spec.train.compile_backend == "inductor" else None
        forward_loss = torch.compile(forward_loss, backend=spec.train.compile_backend, mode=mode)
    n_batches = (len(train_split) + spec.train.batch_size - 1) // spec.train.batch_size
    log.info("training %s, %d parameters on %s: %d samples, %d steps per epoch, %d epochs", spec.kind,
             count_parameters(model), device, len(train_split), n_batches, spec.train.epochs)

    rows, best, started = [], None, time.perf_counter()
    progress = tqdm(range(1, spec.train.epochs + 1), desc=f"train {spec.kind}", unit="epoch")
    for epoch in progress:
        epoch_start = time.perf_counter()
        model.train()
        objective.start_epoch(epoch)
        row_losses = {}
        for stage, optimizer in zip(stages, optimizers):
            objective.start_stage(stage.name)
            steps = stage.batches(n_batches)
            sums = {name: torch.zeros((), device=device) for name in ("total", *objective.terms)}
            permutation = torch.randperm(len(train_split), generator=order, device=device)  # each pass reshuffles
            for step in range(steps):
                index = permutation[step * spec.train.batch_size:(step + 1) * spec.train.batch_size]
                batch = Batch(*train_split.batch(index), index=index, words=train_split.batch_words(index))
                presence = None
                if corruption is not None:  # every stage's batches are stressed alike
                    batch, presence, _, _ = corruption(batch)
                    if presence is not None and kind.absent == "zeros":
                        batch = zero_absent_batch(batch, presence)
                options = kind.call_options(presence, None, batch.words)
                total, terms, output = forward_loss(batch, stage.coefficients, options)
                optimisation_step(model, optimizer, total, spec.train.grad_clip)
                objective.after_step(output, batch)
                sums["total"] += total.detach()
                for name in objective.terms:
                    sums[name] += terms[name].detach()
            # The last stage's losses keep the plain names (train_total, train_<term>); earlier stages' carry theirs.
            prefix = "train_" if stage is stages[-1] else f"train_{stage.name}_"
            row_losses.update({f"{prefix}{k}": float(v) / steps for k, v in sums.items()})
        valid = regression_metrics(predict(model, valid_split, spec.train.eval_batch_size, kind), valid_split.labels.cpu().numpy())
        row = {"epoch": epoch, **row_losses,
               **{f"valid_{k}": valid[k] for k in METRIC_KEYS}, "seconds": time.perf_counter() - epoch_start}
        rows.append(row)
        diverged = [k for k in row_losses if k.endswith("_total") and not np.isfinite(row_losses[k])]
        if diverged:
            raise FloatingPointError(f"training diverged at epoch {epoch}: {diverged[0]} = {row_losses[diverged[0]]}")
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
        "corrupt": list(spec.train.corrupt),
        "cache": cache_record(cache_path),  # checked when the checkpoint is evaluated (rider.provenance)
    }
    with atomic_path(out_dir / EPOCHS_FILE, suffix=".csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    save_checkpoint(out_dir, best["state"], spec.to_dict(), metadata)
    log.info("best validation MAE %.4f at epoch %d; checkpoint in %s", best["valid"]["mae"], best["epoch"], out_dir)
    return metadata
