"""Train one model variant with one seed (paper App. C.5: AdamW, batch 32; DESIGN §4).

One trainer serves every model kind (rider.model.MODEL_KINDS): the kind's objective gives the unweighted loss
terms, its loss dataclass their weights; a kind that reads the segments' words (ModelKind.words) gets each
batch's words as the call option ``words``; a stateful objective hears of every epoch and step (Self-MM's label
memory), a model with ``parameter_groups`` trains its parts at their own rates, and a kind that declares
optimisation stages (rider.model.stages: MMIM's estimators, then the rest) makes each epoch of several passes, each
with its own loss and its own optimiser over its own parameters; a kind without them trains in one stage. The
checkpoint with the best validation MAE is kept. Every loss term, every validation metric and the learning rate
are logged per epoch to ``epochs.csv``. The same seed on the same device gives the same numbers.

The baselines' authors train differently from the paper's App. C.5, and ``TrainConfig`` can follow them without
the trainer knowing which model it trains (issue 21): Adam with the weight decay as an L2 term in the gradient
(``weight_decay_mode: l2``) instead of AdamW; each gradient element clipped (``grad_clip_mode: value``) instead
of the norm; ``accumulate`` batches per step, their gradients summed as MMSA's trainers do
(``accumulate_reduction: sum``) or averaged, each batch's clipped after its backward pass as theirs are, and an
epoch's last incomplete group making no step, as in theirs; ReduceLROnPlateau on the validation MAE
(``schedule: plateau``); early stopping after ``patience`` epochs without a lower validation MAE. The defaults
are the paper's (AdamW, norm clipping, one batch per step, a constant rate, every epoch run).

A run that diverges (a non-finite loss or validation prediction) stops there, like early stopping, and keeps its
best epoch before it; the metadata names the epoch (``diverged_at_epoch``). One that diverges before any finite
epoch fails.
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
    grad_clip: float = 0.0           # clip the gradients to this (0: no clipping), as grad_clip_mode says
    grad_clip_mode: str = "norm"     # norm: the norm of all gradients together; value: each element to ±grad_clip
    weight_decay_mode: str = "decoupled"  # decoupled: AdamW; l2: Adam with weight_decay · θ added to the gradient
    accumulate: int = 1              # batches per optimiser step; an epoch's last, incomplete group makes none
    accumulate_reduction: str = "mean"  # mean: the group's mean gradient; sum: the sum of its batches' (MMSA's)
    schedule: str = "none"           # none: a constant rate; plateau: ReduceLROnPlateau on validation MAE
    plateau_patience: int = 5        # plateau: the rate drops after more than this many epochs without a lower MAE
    plateau_factor: float = 0.1      # plateau: the rate is multiplied by this at each drop
    patience: int = 0                # early stopping after this many epochs without a lower validation MAE; 0: never
    # Corruption-aware training (rider.train.corruption): the stressors drawn for each training batch; () = clean.
    corrupt: tuple[str, ...] = ()
    corrupt_seed: int = 0            # with the run's seed, seeds the corruption stream (never the test plan's)

    def __post_init__(self):
        object.__setattr__(self, "corrupt", tuple(self.corrupt))  # YAML gives a list
        for name, allowed in (("grad_clip_mode", ("norm", "value")), ("weight_decay_mode", ("decoupled", "l2")),
                              ("schedule", ("none", "plateau")), ("accumulate_reduction", ("mean", "sum"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"train.{name} = {getattr(self, name)!r}, expected one of {list(allowed)}")
        for name in ("accumulate", "plateau_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} = {getattr(self, name)} must be >= 1")
        if self.patience < 0:
            raise ValueError(f"train.patience = {self.patience} must be >= 0 (0: no early stopping)")
        if not 0.0 < self.plateau_factor < 1.0:
            raise ValueError(f"train.plateau_factor = {self.plateau_factor} must be in (0, 1)")
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


def run_config(dataset: Mapping[str, Any], variant: Mapping[str, Any],
               tuned: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A training run's settings (``RunSpec.from_dict``'s input) from a dataset's validated config section and a
    variant of `models`: the kind's own sections (the dataset's ``model``/``loss`` for the kinds that share them,
    ``baselines.<kind>`` for the others), the dataset's ``train`` under the kind's, then what tuning chose for the
    kind (``tuned``: sections of overrides, rider.train.tune), and the variant's overrides on top of each."""
    kind = model_kind(variant.get("kind", DEFAULT_KIND))
    own = dataset.get("baselines", {}).get(kind.name, {})
    base = {part: dict(dataset.get(part, {})) if part in kind.shared_sections else dict(own.get(part, {}))
            for part in ("model", "loss")}
    base["train"] = {**dataset.get("train", {}), **own.get("train", {})}
    tuned = tuned or {}
    run = {part: {**base[part], **tuned.get(part, {}), **variant.get(part, {})} for part in ("model", "loss", "train")}
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
    """One optimiser per optimisation stage (rider.model.stages), over the parameters the stage steps: AdamW, or
    with ``weight_decay_mode: l2`` Adam whose weight decay is an L2 term added to the gradient (torch's Adam
    ``weight_decay``, as the baselines' authors pass it), so that it is rescaled by Adam's second moment. A model whose
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
        adam = torch.optim.AdamW if config.weight_decay_mode == "decoupled" else torch.optim.Adam
        optimizers.append(adam([g for g in groups if g["params"]], lr=lr, weight_decay=decay))
    return optimizers


def clip_gradients(model: torch.nn.Module, grad_clip: float, mode: str = "norm") -> None:
    """Clip every parameter's gradient together: their joint norm to ``grad_clip`` (``norm``), or each element
    to [-grad_clip, grad_clip] (``value``, as MMSA's trainers do); nothing when ``grad_clip`` is 0."""
    if grad_clip <= 0:
        return
    if mode == "norm":
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    elif mode == "value":
        torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
    else:
        raise ValueError(f"grad_clip_mode = {mode!r}, expected norm or value")


def optimisation_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, total: torch.Tensor,
                      grad_clip: float, grad_clip_mode: str = "norm", *, first: bool = True,
                      last: bool = True, scale: float = 1.0) -> None:
    """One batch of one stage: every parameter's gradient of ``scale`` · ``total`` is added to what the batches
    before it in its group left (cleared at the group's ``first`` batch), and what has accumulated is clipped
    (every parameter together, as the authors clip ``model.parameters()``, after every backward pass as MMSA's
    trainers do); at the group's ``last`` batch only ``optimizer``'s parameters move. With one batch per group
    (the defaults) that is the usual clipped step per batch; with N batches and ``scale`` 1/N, a step on their
    mean gradient, with ``scale`` 1 on their sum."""
    if first:
        model.zero_grad(set_to_none=True)
    (total * scale if scale != 1.0 else total).backward()
    clip_gradients(model, grad_clip, grad_clip_mode)
    if last:
        optimizer.step()


def plateau_schedulers(optimizers, config: TrainConfig) -> list:
    """With ``schedule: plateau``, one ReduceLROnPlateau per optimiser on the validation MAE (MMSA's trainers step
    theirs on the validation loss, which is the MAE for their L1); none otherwise."""
    if config.schedule == "none":
        return []
    return [torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=config.plateau_factor,
                                                       patience=config.plateau_patience)
            for optimizer in optimizers]


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
    schedulers = plateau_schedulers(optimizers, spec.train)
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

    rows, best, diverged_at, started = [], None, None, time.perf_counter()
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
            group = spec.train.accumulate  # batches per optimiser step
            if steps < group:
                raise ValueError(f"train.accumulate = {group} batches per step, but an epoch of stage {stage.name} "
                                 f"has {steps}: no step would be taken")
            complete = steps - steps % group  # the batches after these make no step (MMSA's trainers drop them)
            scale = 1.0 / group if spec.train.accumulate_reduction == "mean" else 1.0
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
                optimisation_step(model, optimizer, total, spec.train.grad_clip, spec.train.grad_clip_mode,
                                  first=step % group == 0, last=step % group == group - 1 and step < complete,
                                  scale=scale)
                objective.after_step(output, batch)
                sums["total"] += total.detach()
                for name in objective.terms:
                    sums[name] += terms[name].detach()
            # The last stage's losses keep the plain names (train_total, train_<term>); earlier stages' carry theirs.
            prefix = "train_" if stage is stages[-1] else f"train_{stage.name}_"
            row_losses.update({f"{prefix}{k}": float(v) / steps for k, v in sums.items()})
        predictions = predict(model, valid_split, spec.train.eval_batch_size, kind)
        diverged = [f"{k} = {v}" for k, v in row_losses.items() if k.endswith("_total") and not np.isfinite(v)]
        if not np.isfinite(predictions).all():
            diverged.append(f"{int((~np.isfinite(predictions)).sum())} non-finite validation predictions")
        valid = ({k: float("nan") for k in METRIC_KEYS} if diverged
                 else regression_metrics(predictions, valid_split.labels.cpu().numpy()))
        row = {"epoch": epoch, "lr": optimizers[-1].param_groups[0]["lr"], **row_losses,
               **{f"valid_{k}": valid[k] for k in METRIC_KEYS}, "seconds": time.perf_counter() - epoch_start}
        rows.append(row)
        if diverged:  # like early stopping: the best epoch before it is kept, and the metadata says so
            if best is None:
                raise FloatingPointError(f"training diverged at epoch {epoch}: {diverged[0]}; no epoch before it "
                                         "to keep")
            log.warning("training diverged at epoch %d (%s): stopped, keeping epoch %d", epoch, diverged[0],
                        best["epoch"])
            diverged_at = epoch
            break
        if best is None or valid["mae"] < best["valid"]["mae"]:
            best = {"epoch": epoch, "valid": valid,
                    "state": {name: t.detach().clone() for name, t in model.state_dict().items()}}
        progress.set_postfix(loss=f"{row['train_total']:.3f}", valid_mae=f"{valid['mae']:.3f}")
        for scheduler in schedulers:
            scheduler.step(valid["mae"])
        if spec.train.patience and epoch - best["epoch"] >= spec.train.patience:
            log.info("early stop at epoch %d: no lower validation MAE in %d epochs", epoch, spec.train.patience)
            break
    progress.close()

    metadata = {
        "seed": seed,
        "kind": spec.kind,
        "best_epoch": best["epoch"],
        "best_valid": best["valid"],
        "epochs": spec.train.epochs,
        "epochs_run": len(rows),  # fewer than epochs where early stopping (train.patience) ended the run
        "diverged_at_epoch": diverged_at,  # the epoch whose loss or validation predictions were not finite, or None
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
