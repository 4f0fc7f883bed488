"""The test split a stress plan is built for and applied to: reading it from the cache and checking its shape.

Test arrays are a plain ``dict[str, np.ndarray]`` with the cache's names:

    text_glove (N, L, Dt)  [text_bert (N, L, Db) optional]  audio (N, L, Da)  vision (N, L, Dv)
    lengths (N,) int: real words per sample; rows >= lengths[i] are padding and no stressor touches them
    labels (N,) float and ids (N,) str: passed through unchanged
    words (N, L) str, optional (a model that reads words, rider.data.cache.read_words): the text stressors mark a
        word whose features they zero as ``MASKED_WORD``

Letters: N samples, L words (padded length), M = 3 modalities in the fixed order T, A, V.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import h5py
import numpy as np

from rider.h5 import open_h5

MODALITIES: Final[tuple[str, ...]] = ("text", "audio", "vision")  # column order of every presence mask (N, 3)
FEATURE_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "text": ("text_glove", "text_bert"),  # both are word-aligned: one token mask serves both
    "audio": ("audio",),
    "vision": ("vision",),
}
REQUIRED_KEYS: Final[tuple[str, ...]] = ("text_glove", "audio", "vision", "lengths")
DEFAULT_FEATURES: Final[tuple[str, ...]] = ("text_glove", "audio", "vision")
NOISY_MODALITIES: Final[tuple[str, ...]] = ("audio", "vision")  # the ones that get Gaussian noise scaled by sigma_f


def load_test_split(
    cache_path: str | os.PathLike, features: Sequence[str] = DEFAULT_FEATURES
) -> dict[str, np.ndarray]:
    """Read ``/test`` of a cache file: the named feature arrays plus ``lengths``, ``labels`` and ``ids``.

    Raises:
        FileNotFoundError: no file at ``cache_path``.
        ValueError: the file is not readable HDF5 (corrupt, truncated), a dataset is missing, or the arrays are
            inconsistent (shapes, lengths out of range, non-finite values); the message names the file.
    """
    path = Path(cache_path)
    unknown = sorted(set(features) - {k for keys in FEATURE_KEYS.values() for k in keys})
    if unknown:
        raise ValueError(f"unknown feature name(s) {unknown}; known: {[k for v in FEATURE_KEYS.values() for k in v]}")
    with _open_cache(path) as f:
        try:
            arrays = {key: _read(f, path, f"test/{key}") for key in (*features, "lengths", "labels")}
            arrays["ids"] = _read_strings(f, path, "test/ids")
        except OSError as err:  # a damaged chunk surfaces only when its data is read
            raise ValueError(f"{path}: cannot read the test split ({err})") from err
    check_test_arrays(arrays, where=str(path), require_finite=True)
    return arrays


def load_feature_std(cache_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Train-set std per feature of audio and vision (``/stats/{audio,vision}_std``), as float32.

    Raises:
        ValueError: missing, not 1-D, negative or non-finite; the message names the file.
    """
    path = Path(cache_path)
    out = {}
    with _open_cache(path) as f:
        for modality in NOISY_MODALITIES:
            name = f"stats/{modality}_std"
            try:
                std = np.asarray(_read(f, path, name), dtype=np.float32)
            except OSError as err:
                raise ValueError(f"{path}: cannot read /{name} ({err})") from err
            if std.ndim != 1:
                raise ValueError(f"{path}: /{name} has shape {std.shape}, expected (features,)")
            if not np.all(np.isfinite(std)) or np.any(std < 0):
                raise ValueError(f"{path}: /{name} holds negative or non-finite values")
            out[modality] = std
    return out


def check_test_arrays(arrays: Mapping[str, np.ndarray], where: str, require_finite: bool = False) -> tuple[int, int]:
    """Check the keys and shapes of a test-array dict; return (N, L).

    ``where`` names the source in error messages. With ``require_finite`` the feature arrays and labels must hold
    no NaN/inf (checked when reading a cache; skipped when applying a plan to arrays the caller already checked).
    """
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{where}: test arrays lack {missing}")
    lengths = np.asarray(arrays["lengths"])
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"{where}: lengths must be a 1-D integer array, got {lengths.dtype} {lengths.shape}")
    n = lengths.shape[0]
    max_len = None
    for key in (k for keys in FEATURE_KEYS.values() for k in keys):
        if key not in arrays:
            continue
        x = arrays[key]
        if x.ndim != 3 or x.shape[0] != n:
            raise ValueError(f"{where}: {key} has shape {x.shape}, expected ({n}, L, features)")
        if max_len is None:
            max_len = x.shape[1]
        elif x.shape[1] != max_len:
            raise ValueError(f"{where}: {key} has {x.shape[1]} positions, text_glove has {max_len}")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{where}: {key} has dtype {x.dtype}, expected a float type")
        if require_finite and not np.all(np.isfinite(x)):
            raise ValueError(f"{where}: {key} holds NaN or inf")
    assert max_len is not None  # text_glove is required
    if n and (lengths.min() < 0 or lengths.max() > max_len):
        raise ValueError(f"{where}: lengths must lie in [0, {max_len}], got [{lengths.min()}, {lengths.max()}]")
    if "words" in arrays and np.shape(arrays["words"]) != (n, max_len):
        raise ValueError(f"{where}: words has shape {np.shape(arrays['words'])}, expected ({n}, {max_len})")
    for key in ("labels", "ids"):
        if key in arrays and np.shape(arrays[key]) != (n,):
            raise ValueError(f"{where}: {key} has shape {np.shape(arrays[key])}, expected ({n},)")
    if require_finite and "labels" in arrays and not np.all(np.isfinite(arrays["labels"])):
        raise ValueError(f"{where}: labels hold NaN or inf")
    return n, max_len


def _open_cache(path: Path):
    return open_h5(path, "cache file")


def _read(f: h5py.File, path: Path, name: str) -> np.ndarray:
    if name not in f:
        raise ValueError(f"{path}: missing dataset /{name}")
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise ValueError(f"{path}: /{name} is not a dataset")
    return obj[()]


def _read_strings(f: h5py.File, path: Path, name: str) -> np.ndarray:
    if name not in f:
        raise ValueError(f"{path}: missing dataset /{name}")
    ds = f[name]
    if ds.dtype.kind not in "OS":
        raise ValueError(f"{path}: /{name} has dtype {ds.dtype}, expected strings")
    return np.asarray(ds.asstr()[()], dtype=object)
