"""Noise (rho): within-modality corruption that keeps every modality present (paper App. C.2, DESIGN §5).

- text: ``round(rho * length)`` of a sample's real tokens, chosen at random, get their feature vector zeroed (the
  embedding-level mask of App. C.2; with ``text_bert`` as well, the same positions are zeroed there; with
  ``words``, the same words become ``MASKED_WORD``, which a model reading words gives its own mask token).
- audio, vision: add N(0, (rho * sigma_f)^2) to every real position, sigma_f the train-set std of feature f; then
  zero ``round(rho * length)`` real timesteps, chosen independently per modality.

``round`` is numpy's (half to even, computed in float64): rho = .1 on 5 words zeroes round(0.5) = 0 of them.

Common random numbers across severities: every sample draws, once, a random order of its real positions per
modality and one standard-normal tensor z per noisy modality. Severity rho zeroes the first ``round(rho * length)``
positions of that order and adds ``rho * sigma_f * z``. So what is zeroed at rho = .1 is also zeroed at .2, and two
severities differ by the severity alone, not by a fresh draw.

z comes from a per-sample seed, ``np.random.default_rng(seed).standard_normal((L, F), dtype=float32)``: the plan
stores the N seeds (not 4 bytes x N x L x F of noise: 100 MB for MOSEI) together with the sha256 of the z they
produced, so a numpy whose generator drew differently is caught instead of silently changing the corruption.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from rider.data.cache import MASKED_WORD
from rider.stress.inputs import FEATURE_KEYS, NOISY_MODALITIES


def position_ranks(rng: np.random.Generator, lengths: np.ndarray, max_len: int) -> np.ndarray:
    """(N, L) int32: each real position's place in a random order of the sample's real positions (0..length-1).

    Padding positions get ``max_len``, so no threshold below it ever selects them.
    """
    n = lengths.shape[0]
    real = np.arange(max_len)[None, :] < lengths[:, None]  # (N, L)
    keys = rng.random((n, max_len))  # (N, L) in [0, 1)
    keys[~real] = 2.0  # padding sorts last
    order = np.argsort(keys, axis=1, kind="stable")  # (N, L)
    ranks = np.empty((n, max_len), dtype=np.int32)
    np.put_along_axis(ranks, order, np.arange(max_len, dtype=np.int32)[None, :].repeat(n, axis=0), axis=1)
    ranks[~real] = max_len
    return ranks


def n_zeroed(lengths: np.ndarray, rho: float) -> np.ndarray:
    """(N,) int: how many real positions severity rho zeroes per sample, round(rho * length)."""
    return np.round(rho * lengths.astype(np.float64)).astype(np.int64)


def zero_mask(ranks: np.ndarray, lengths: np.ndarray, rho: float) -> np.ndarray:
    """(N, L) bool: the positions severity rho zeroes, the first round(rho * length) of each sample's order."""
    return ranks < n_zeroed(lengths, rho)[:, None]


def draw_noise_seeds(rng: np.random.Generator, n: int) -> np.ndarray:
    """(N, 2) uint64: one seed per sample for each noisy modality (columns in NOISY_MODALITIES order)."""
    return rng.integers(0, 2**64, size=(n, len(NOISY_MODALITIES)), dtype=np.uint64)


def standard_normal(seeds: np.ndarray, max_len: int, n_features: int) -> np.ndarray:
    """(N, L, F) float32: sample i's z from ``default_rng(seeds[i]).standard_normal((L, F), dtype=float32)``."""
    z = np.empty((seeds.shape[0], max_len, n_features), dtype=np.float32)
    for i, seed in enumerate(seeds):
        z[i] = np.random.default_rng(int(seed)).standard_normal((max_len, n_features), dtype=np.float32)
    return z


def digest(z: np.ndarray) -> str:
    """sha256 of an array's C-order bytes (dtype and shape are checked separately)."""
    return hashlib.sha256(np.ascontiguousarray(z).tobytes()).hexdigest()


def apply_noise(
    arrays: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    z: Mapping[str, np.ndarray],
    sigma: Mapping[str, np.ndarray],
    rho: float,
) -> dict[str, np.ndarray]:
    """Noise at severity rho. Returns a new dict; corrupted arrays are new, the others are the input objects.

    Args:
        arrays: test arrays (see ``rider.stress.inputs``), never modified.
        masks: modality -> (N, L) bool, positions to zero (only real positions are ever set).
        z: noisy modality -> (N, L, F) float32 standard-normal draws.
        sigma: noisy modality -> (F,) float32 train-set std per feature.
        rho: the severity; at 0 the Gaussian step is skipped, so rho = 0 with empty masks returns the inputs.

    The noise is computed in float32 as ``float32(rho) * sigma_f`` times z, added to real positions only.
    """
    out = dict(arrays)
    lengths = np.asarray(arrays["lengths"])
    for modality in ("text", *NOISY_MODALITIES):
        mask = masks[modality]  # (N, L)
        for key in FEATURE_KEYS[modality]:
            if key not in arrays:
                continue
            x = arrays[key]  # (N, L, F)
            noisy = modality in NOISY_MODALITIES and rho > 0
            if not noisy and not mask.any():
                continue
            y = x.copy()
            if noisy:
                real = np.arange(x.shape[1])[None, :] < lengths[:, None]  # (N, L)
                scale = np.float32(rho) * np.asarray(sigma[modality], dtype=np.float32)  # (F,)
                y[real] = x[real] + z[modality][real] * scale  # (n_real, F)
            y[mask] = 0
            out[key] = y
    if "words" in arrays and masks["text"].any():
        words = np.array(arrays["words"], dtype=object)  # (N, L) a copy
        words[masks["text"]] = MASKED_WORD
        out["words"] = words
    return out
