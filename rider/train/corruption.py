"""Corruption-aware training: every training batch stressed the way the evaluation stresses the test split.

Remedy 1 of the README's "Does the routing react?": a model trained on clean inputs only never sees what its
reliability probes and router are meant to react to. With ``train.corrupt`` set, each training batch gets one
stressor, drawn uniformly from the configured ones, at a severity drawn uniformly from [0, the largest severity of
that stressor's default test grid] (noise rho <= .5, missingness m <= .8, conflict c <= 1), applied as App. C.2
applies it to the test split (rider.stress.noise / missing / conflict):

- noise: round(rho * length) real tokens zeroed; audio and vision get N(0, (rho sigma_f)^2) on every real position
  (sigma_f: the training split's std of feature f, in the units the model sees) and round(rho * length) real
  timesteps zeroed, each modality its own positions;
- missingness: each modality dropped with probability m, a sample that would lose all three redrawn; the model
  receives the presence mask or zeroed features, as its kind declares (``ModelKind.absent``);
- conflict: with probability c a sample takes its audio, its vision or both (uniform) from another sample of the
  batch with the opposite polarity, drawn with probability proportional to the label distance (a receiver labelled
  0 draws from every non-zero sample; with no such donor, from every other sample), time-stretched to the
  receiver's length; text, length and label stay the receiver's.

The stream is its own ``torch.Generator``, seeded from ``train.corrupt_seed`` and the run's seed: it never reads the
test split or the stress plan and never draws from the global generators, so the test plan's bytes and the
model's initialisation and batch order are what they are without it.

Shapes: B batch, L words, F features, M = 3 modalities (T, A, V).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from rider.model.objective import Batch
from rider.stress.conflict import SWAP_CHOICES as PLAN_SWAP_CHOICES
from rider.stress.plan import DEFAULT_GRIDS, STRESSORS

MAX_SEVERITY = {name: max(DEFAULT_GRIDS[name]) for name in STRESSORS}
SWAP_CHOICES = torch.from_numpy(PLAN_SWAP_CHOICES)  # (3 choices, T A V): audio, vision or both, as the plan
_STREAM_TAG = 0x7C0_2272  # keeps this stream apart from any other seeded from the same two numbers


class StressedBatch(NamedTuple):
    batch: Batch
    presence: torch.Tensor | None  # (B, 3) bool where the stressor dropped modalities, else None
    stressor: str
    severity: float


def feature_sigma(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N, L, F) -> (F,): std of each feature over the real positions of a split."""
    real = torch.arange(values.shape[1], device=values.device)[None, :] < lengths[:, None]  # (N, L)
    return values[real].std(dim=0, unbiased=False)  # (F,)


def drop_positions(x: torch.Tensor, lengths: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Zero round(share * length) real positions of each sample, chosen at random: (B, L, F) -> (B, L, F)."""
    B, L, _ = x.shape
    real = torch.arange(L)[None, :] < lengths[:, None].cpu()  # (B, L)
    keys = torch.rand(B, L, generator=generator).masked_fill(~real, 2.0)  # padding sorts last
    ranks = keys.argsort(dim=1).argsort(dim=1)  # (B, L): place of each position in a random order
    count = torch.from_numpy(np.round(share * lengths.cpu().numpy().astype(np.float64)))  # numpy's round, as the plan
    drop = ranks < count[:, None]  # (B, L)
    return x.masked_fill(drop.to(x.device)[..., None], 0.0)


def draw_presence(batch_size: int, m: float, generator: torch.Generator) -> torch.Tensor:
    """(B, 3) bool: each modality kept with probability 1 - m; a sample left with none is redrawn."""
    presence = torch.rand(batch_size, 3, generator=generator) >= m
    while not presence.any(dim=1).all():
        empty = ~presence.any(dim=1)
        presence[empty] = torch.rand(int(empty.sum()), 3, generator=generator) >= m
    return presence


def pick_donor(labels: torch.Tensor, lengths: torch.Tensor, receiver: int, generator: torch.Generator) -> int | None:
    """A donor for ``receiver`` within the batch (module docstring), or None when no other sample has words."""
    y = labels[receiver]
    others = (torch.arange(len(labels)) != receiver) & (lengths > 0)
    pool = others & (torch.sign(labels) == -torch.sign(y)) if y != 0 else others & (labels != 0)
    if not pool.any():
        pool = others
    if not pool.any():
        return None
    weight = (labels - y).abs() * pool
    if weight.sum() == 0:
        weight = pool.float()
    return int(torch.multinomial(weight, 1, generator=generator))


def stretch_rows(donor: torch.Tensor, donor_length: int, length: int, padded: torch.Tensor) -> torch.Tensor:
    """The receiver's row t < length takes the donor's real row t * donor_length // length (rider.stress.conflict);
    rows >= length stay the receiver's padding ``padded``: (L, F) -> (L, F)."""
    out = padded.clone()
    if length > 0 and donor_length > 0:
        rows = torch.arange(length) * donor_length // length
        out[:length] = donor[rows]
    return out


class TrainingCorruption:
    """The seeded stream of stressed training batches (module docstring)."""

    def __init__(self, stressors: Sequence[str], seed: int, run_seed: int, sigma: dict[str, torch.Tensor]):
        unknown = sorted(set(stressors) - set(STRESSORS))
        if unknown or not stressors:
            raise ValueError(f"train.corrupt = {list(stressors)}: expected some of {list(STRESSORS)}")
        self.stressors = tuple(stressors)
        self.sigma = sigma  # audio, vision: (F,) in the units the model sees
        state = np.random.SeedSequence([_STREAM_TAG, seed, run_seed]).generate_state(2, dtype=np.uint64)
        self.generator = torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))

    def __call__(self, batch: Batch) -> StressedBatch:
        g = self.generator
        stressor = self.stressors[int(torch.randint(len(self.stressors), (1,), generator=g))]
        severity = float(torch.rand(1, generator=g)) * MAX_SEVERITY[stressor]
        if stressor == "noise":
            return StressedBatch(self.noise(batch, severity), None, stressor, severity)
        if stressor == "missing":
            return StressedBatch(batch, draw_presence(len(batch.labels), severity, g).to(batch.labels.device),
                                 stressor, severity)
        return StressedBatch(self.conflict(batch, severity), None, stressor, severity)

    def noise(self, batch: Batch, rho: float) -> Batch:
        g, lengths = self.generator, batch.lengths
        real = (torch.arange(batch.text.shape[1], device=lengths.device)[None, :] < lengths[:, None])[..., None]
        noisy = {}
        for name in ("audio", "vision"):
            x = getattr(batch, name)
            z = torch.randn(x.shape, generator=g).to(x.device)  # (B, L, F)
            x = x + real * (rho * self.sigma[name] * z)  # padding stays zero
            noisy[name] = drop_positions(x, lengths, rho, g)
        return batch._replace(text=drop_positions(batch.text, lengths, rho, g), **noisy)

    def conflict(self, batch: Batch, c: float) -> Batch:
        g = self.generator
        B = len(batch.labels)
        receivers = torch.rand(B, generator=g) < c
        choices = SWAP_CHOICES[torch.randint(len(SWAP_CHOICES), (B,), generator=g)]  # (B, 3)
        labels, lengths = batch.labels.cpu(), batch.lengths.cpu()
        audio, vision = batch.audio.clone(), batch.vision.clone()
        for i in torch.nonzero(receivers).flatten().tolist():
            donor = pick_donor(labels, lengths, i, g)
            if donor is None:
                continue
            for column, source, target in ((1, batch.audio, audio), (2, batch.vision, vision)):
                if choices[i, column]:
                    target[i] = stretch_rows(source[donor], int(lengths[donor]), int(lengths[i]), source[i])
        return batch._replace(audio=audio, vision=vision)


def zero_absent_batch(batch: Batch, presence: torch.Tensor) -> Batch:
    """Zero the features of absent modalities (the ``zeros`` way a kind receives absence; rider.stress.zero_absent)."""
    keep = presence.to(batch.text.dtype)  # (B, 3)
    return batch._replace(text=batch.text * keep[:, 0, None, None], audio=batch.audio * keep[:, 1, None, None],
                          vision=batch.vision * keep[:, 2, None, None])
