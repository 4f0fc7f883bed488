"""One fixed, seeded corruption plan per dataset, shared by every model (paper App. C.2: "the same corrupted inputs").

``build_plan`` draws every stressor x severity once from the cache's test split and writes ``stress_plan.h5``;
``apply_plan`` / ``iter_severities`` turn the plan and the clean test arrays into the corrupted inputs, the same
bytes for every model and every run.

Plan layout (SCHEMA_VERSION 1); N test samples, L padded length, K_s severities of stressor s:

    /                       attrs: schema_version, seed, cache_sha256, cache_file (name only), dataset (the
                                   cache's), grids (JSON), n_samples, max_len, numpy_version, rider_version,
                                   provenance (JSON)
    /ids                    str (N,)        test ids in cache order; applying checks them
    /lengths                int32 (N,)      real words per sample; applying checks them
    /labels                 float32 (N,)    the labels the conflict donors were drawn from
    /noise                  attrs: severities float64 (K,), noise_generator, noise_sha256_audio/_vision
      sigma_audio           float32 (Fa,)   train-set std per feature (copied from the cache's /stats)
      sigma_vision          float32 (Fv,)
      noise_seed            uint64 (N, 2)   per-sample seed of z, columns audio, vision (see noise.py)
      /noise/{k}            attrs: severity; k = 0..K-1 in grid order
        text_mask           bool (N, L)     token positions zeroed
        audio_mask          bool (N, L)     timesteps zeroed (after the Gaussian noise)
        vision_mask         bool (N, L)
    /missing                attrs: severities
      /missing/{k}/presence bool (N, 3)     T, A, V; never all False
    /conflict               attrs: severities, n_fallback_donors
      /conflict/{k}/donor   int32 (N,)      donor test index, -1 where the sample is not swapped
      /conflict/{k}/swapped bool (N, 3)     T, A, V: which modalities come from the donor (T always False)

A plan may hold a subset of the three stressors (the ``grids`` it was built with).

Provenance: a plan is drawn from one cache's test split and its train-set statistics, so it is valid only with
that cache: ``read_plan(plan, cache=...)`` (or ``check_plan_cache``) refuses any other, naming both files, and
``build_plan(..., dataset=...)`` refuses a cache made for another dataset.

Random streams: ``SeedSequence(seed, spawn_key=...)`` with one fixed key per stressor and draw, so changing one
stressor's grid never changes another's plan, and (with the common random numbers described in noise.py,
missing.py and conflict.py) adding a severity to a grid never changes the plan at the others.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, NamedTuple

import h5py
import numpy as np

import rider
from rider.atomic import atomic_path
from rider.h5 import open_h5
from rider.provenance import check_built_from, check_dataset, file_record, sha256_file
from rider.stress import conflict, missing, noise
from rider.stress.inputs import (
    MODALITIES,
    NOISY_MODALITIES,
    check_test_arrays,
    load_feature_std,
    load_test_split,
)

SCHEMA_VERSION: Final[int] = 1
STRESSORS: Final[tuple[str, ...]] = ("noise", "missing", "conflict")
DEFAULT_GRIDS: Final[Mapping[str, tuple[float, ...]]] = MappingProxyType(
    {
        "noise": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),  # rho, App. C.2
        "missing": (0.0, 0.2, 0.4, 0.6, 0.8),  # m
        "conflict": (0.0, 0.25, 0.5, 0.75, 1.0),  # c
    }
)
_UPPER: Final = {"noise": (1.0, True), "missing": (1.0, False), "conflict": (1.0, True)}  # (bound, inclusive)
_STREAM: Final = {name: i for i, name in enumerate(STRESSORS)}  # first element of every spawn key
_SEVERITY_KEY_SCALE: Final[int] = 1_000_000  # severities are keyed (and must differ) at 1e-6 resolution
_MATCH_ATOL: Final[float] = 1e-9  # a requested severity matches a grid value within this


class StressedInputs(NamedTuple):
    """The corrupted test arrays (same keys as the input) and the presence mask (N, 3) bool, T, A, V."""

    arrays: dict[str, np.ndarray]
    presence: np.ndarray


@dataclass(frozen=True)
class StressPlan:
    """A plan read into memory (a few MB even for MOSEI). ``levels[s][k]`` holds the datasets of /s/k."""

    source: str
    grids: Mapping[str, tuple[float, ...]]
    seed: int
    cache_sha256: str
    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    max_len: int
    sigma: Mapping[str, np.ndarray]
    noise_seeds: np.ndarray | None
    noise_sha256: Mapping[str, str]
    levels: Mapping[str, tuple[Mapping[str, np.ndarray], ...]]
    dataset: str = ""  # the cache's dataset name ("" for plans written before it was recorded)
    cache_file: str = ""  # the cache's path when the plan was built

    def require(self, stressor: str) -> None:
        """Raise ValueError unless the plan holds ``stressor``."""
        if stressor not in self.grids:
            raise ValueError(f"{self.source}: no stressor {stressor!r} in this plan; it has {list(self.grids)}")

    def severity_index(self, stressor: str, severity: float) -> int:
        """Position of ``severity`` in the stressor's grid (matched within 1e-9)."""
        self.require(stressor)
        grid = np.asarray(self.grids[stressor])
        hit = np.flatnonzero(np.abs(grid - severity) <= _MATCH_ATOL)
        if hit.size == 0:
            raise ValueError(f"{self.source}: {stressor} severity {severity} is not in the plan's grid {list(grid)}")
        return int(hit[0])


# --- build ---------------------------------------------------------------------------------------------------------


def build_plan(
    cache_path: str | os.PathLike,
    out_path: str | os.PathLike,
    grids: Mapping[str, Sequence[float]] | None = None,
    seed: int = 0,
    dataset: str | None = None,
) -> Path:
    """Draw every stressor x severity for the cache's test split and write the plan atomically.

    Args:
        cache_path: the dataset's cache HDF5 (``/test/...`` and ``/stats/{audio,vision}_std``).
        out_path: where ``stress_plan.h5`` goes; written to a temporary file beside it and renamed, so a failure
            leaves no file (and an existing plan untouched).
        grids: stressor -> strictly increasing severities (default ``DEFAULT_GRIDS``); the plan holds exactly the
            stressors named. Noise and conflict severities lie in [0, 1], missingness in [0, 1).
        seed: a non-negative int; the same cache, grids and seed give the same plan.
        dataset: the dataset the plan is for; a cache that records another one is refused (a swapped cache).

    Returns:
        ``out_path`` as a Path.

    Raises:
        FileNotFoundError / ValueError: a missing, unreadable or inconsistent cache (the message names the file) or
            a bad grid or seed. Nothing is written then.
    """
    grids = _check_grids(DEFAULT_GRIDS if grids is None else grids)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    cache_path = Path(cache_path)
    test = load_test_split(cache_path)  # validates the cache before anything is drawn or written
    cache_dataset = _cache_dataset(cache_path)
    check_dataset(cache_path, "cache file", cache_dataset, dataset, "--dataset")
    sigma = load_feature_std(cache_path) if "noise" in grids else {}
    for modality, std in sigma.items():
        if std.shape[0] != test[modality].shape[2]:
            raise ValueError(
                f"{cache_path}: /stats/{modality}_std has {std.shape[0]} features, /test/{modality} has "
                f"{test[modality].shape[2]}"
            )
    cache_sha256 = sha256_file(cache_path)
    n, max_len = check_test_arrays(test, where=str(cache_path))
    lengths = test["lengths"].astype(np.int32)
    labels = test["labels"].astype(np.float32)

    datasets: dict[str, np.ndarray] = {"ids": test["ids"], "lengths": lengths, "labels": labels}
    attrs: dict[str, dict[str, object]] = {
        "/": {
            "schema_version": SCHEMA_VERSION,
            "seed": seed,
            "cache_sha256": cache_sha256,
            "cache_file": cache_path.name,
            "dataset": cache_dataset,
            "grids": json.dumps({s: list(g) for s, g in grids.items()}),
            "n_samples": n,
            "max_len": max_len,
            "numpy_version": np.__version__,
            "rider_version": rider.__version__,
            "provenance": json.dumps(  # the shape rider.provenance.provenance() gives, without hashing twice
                {
                    "rider_version": rider.__version__,
                    "inputs": {"cache": file_record(cache_path, cache_sha256, dataset=cache_dataset)},
                    "config": {"grids": {s: list(g) for s, g in grids.items()}, "seed": seed},
                    "dataset": cache_dataset,
                },
                sort_keys=True,
            ),
        }
    }
    for stressor, grid in grids.items():
        attrs[stressor] = {"severities": np.asarray(grid, dtype=np.float64)}
        for k, severity in enumerate(grid):
            attrs[f"{stressor}/{k}"] = {"severity": severity}
    if "noise" in grids:
        _draw_noise(seed, grids["noise"], test, sigma, datasets, attrs)
    if "missing" in grids:
        _draw_missing(seed, grids["missing"], n, datasets)
    if "conflict" in grids:
        _draw_conflict(seed, grids["conflict"], labels, lengths, datasets, attrs)

    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as f:
            _write_plan(f, datasets, attrs)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    return out_path


def _cache_dataset(cache_path: Path) -> str:
    with open_h5(cache_path, "cache file") as f:
        return str(f.attrs.get("dataset", ""))


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _severity_key(severity: float) -> int:
    return int(round(severity * _SEVERITY_KEY_SCALE))


def _draw_noise(seed, grid, test, sigma, datasets, attrs) -> None:
    s = _STREAM["noise"]
    lengths = test["lengths"]
    max_len = test["text_glove"].shape[1]
    ranks = {m: noise.position_ranks(_rng(seed, s, j), lengths, max_len) for j, m in enumerate(MODALITIES)}
    seeds = noise.draw_noise_seeds(_rng(seed, s, len(MODALITIES)), lengths.shape[0])  # (N, 2)
    datasets["noise/noise_seed"] = seeds
    for j, modality in enumerate(NOISY_MODALITIES):
        datasets[f"noise/sigma_{modality}"] = sigma[modality]
        z = noise.standard_normal(seeds[:, j], max_len, sigma[modality].shape[0])
        attrs["noise"][f"noise_sha256_{modality}"] = noise.digest(z)
    attrs["noise"]["noise_generator"] = (
        "z[i] = numpy.random.default_rng(noise_seed[i, j]).standard_normal((max_len, F), dtype=float32); "
        "x + float32(rho) * sigma_f * z on real positions"
    )
    for k, rho in enumerate(grid):
        for modality in MODALITIES:
            datasets[f"noise/{k}/{modality}_mask"] = noise.zero_mask(ranks[modality], lengths, rho)


def _draw_missing(seed, grid, n, datasets) -> None:
    s = _STREAM["missing"]
    base_u = _rng(seed, s, 0).random((n, len(MODALITIES)))  # (N, 3)
    for k, m in enumerate(grid):
        redraw = _rng(seed, s, 1, _severity_key(m))
        datasets[f"missing/{k}/presence"] = missing.draw_presence(base_u, m, redraw)


def _draw_conflict(seed, grid, labels, lengths, datasets, attrs) -> None:
    s = _STREAM["conflict"]
    n = labels.shape[0]
    u = _rng(seed, s, 0).random(n)  # (N,) swapped at severity c where u < c
    choice = _rng(seed, s, 1).integers(0, len(conflict.SWAP_CHOICES), size=n)  # (N,) audio / vision / both
    donor, fallback = conflict.draw_donors(_rng(seed, s, 2), labels, lengths)
    attrs["conflict"]["n_fallback_donors"] = int(fallback.sum())
    for k, c in enumerate(grid):
        donor_at, swapped = conflict.swaps_at(u, choice, donor, c)
        datasets[f"conflict/{k}/donor"] = donor_at
        datasets[f"conflict/{k}/swapped"] = swapped


def _write_plan(f: h5py.File, datasets: Mapping[str, np.ndarray], attrs: Mapping[str, Mapping[str, object]]) -> None:
    for name, value in datasets.items():
        if value.dtype == object:
            f.create_dataset(name, data=value.astype(str).tolist(), dtype=h5py.string_dtype())
        else:
            f.create_dataset(name, data=value)
    for group, values in attrs.items():
        target = f.require_group(group) if group != "/" else f
        for key, value in values.items():
            target.attrs[key] = value


def _check_grids(grids: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, ...]]:
    if not isinstance(grids, Mapping) or not grids:
        raise ValueError(f"grids must be a non-empty mapping stressor -> severities, got {grids!r}")
    unknown = sorted(set(grids) - set(STRESSORS))
    if unknown:
        raise ValueError(f"unknown stressor(s) {unknown} in grids; known: {list(STRESSORS)}")
    out = {}
    for stressor in STRESSORS:  # canonical order, whatever the mapping's
        if stressor not in grids:
            continue
        try:
            grid = np.asarray(grids[stressor], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"grids[{stressor!r}] must be a list of numbers, got {grids[stressor]!r}") from err
        upper, inclusive = _UPPER[stressor]
        if grid.ndim != 1 or grid.size == 0:
            raise ValueError(f"grids[{stressor!r}] must be a non-empty list of numbers, got {grids[stressor]!r}")
        if not np.all(np.isfinite(grid)) or grid.min() < 0 or grid.max() > upper or (
            not inclusive and grid.max() == upper
        ):
            bound = "]" if inclusive else ")"
            raise ValueError(f"grids[{stressor!r}] = {grid.tolist()} must lie in [0, {upper}{bound}")
        keys = [_severity_key(s) for s in grid]
        if any(b <= a for a, b in zip(keys, keys[1:])):
            raise ValueError(f"grids[{stressor!r}] = {grid.tolist()} must increase strictly (by >= 1e-6)")
        out[stressor] = tuple(float(s) for s in grid)
    return out


# --- read and apply ------------------------------------------------------------------------------------------------


def read_plan(plan: str | os.PathLike | h5py.Group | StressPlan, cache: str | os.PathLike | None = None
              ) -> StressPlan:
    """Read a plan file (or an open h5py file/group) into memory, checking its schema version; with ``cache``,
    check that the plan was built from that cache file (``check_plan_cache``)."""
    if isinstance(plan, StressPlan):
        stress_plan = plan
    elif isinstance(plan, h5py.Group):
        stress_plan = _read_plan(plan, source=plan.file.filename)
    else:
        path = Path(plan)
        with open_h5(path, "stress plan") as f:
            stress_plan = _read_plan(f, source=str(path))
    if cache is not None:
        check_plan_cache(stress_plan, cache)
    return stress_plan


def check_plan_cache(plan: str | os.PathLike | h5py.Group | StressPlan, cache: str | os.PathLike,
                     sha256: str | None = None) -> None:
    """Raise ``ProvenanceError`` unless ``plan`` (a path or ``read_plan``'s result) was drawn from the cache file
    ``cache`` (the same content).

    A plan drawn from another cache may still fit it in shape (same test ids and lengths: the same dataset built
    with other settings) while its noise scales and conflict donors belong to the other data. ``sha256``: the
    cache's, when the caller has it already.
    """
    plan = read_plan(plan)
    check_built_from(plan.source, "stress plan", {"path": plan.cache_file or "another cache", "sha256":
                     plan.cache_sha256}, cache, "cache file", sha256=sha256)


def _read_plan(f: h5py.Group, source: str) -> StressPlan:
    if "grids" not in f.attrs or "cache_sha256" not in f.attrs:
        raise ValueError(f"{source}: not a stress plan (no attribute 'grids' or 'cache_sha256'); was it written by "
                         "`rider plan`?")
    version = f.attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{source}: stress plan schema version {version}, this code reads {SCHEMA_VERSION}")
    try:
        grids = {s: tuple(float(x) for x in g) for s, g in json.loads(f.attrs["grids"]).items()}
        levels = {}
        for stressor, grid in grids.items():
            levels[stressor] = tuple(
                MappingProxyType({name: ds[()] for name, ds in f[f"{stressor}/{k}"].items()}) for k in range(len(grid))
            )
        has_noise = "noise" in grids
        return StressPlan(
            source=source,
            grids=MappingProxyType(grids),
            seed=int(f.attrs["seed"]),
            cache_sha256=str(f.attrs["cache_sha256"]),
            ids=np.asarray(f["ids"].asstr()[()], dtype=object),
            lengths=f["lengths"][()],
            labels=f["labels"][()],
            max_len=int(f.attrs["max_len"]),
            sigma=MappingProxyType({m: f[f"noise/sigma_{m}"][()] for m in NOISY_MODALITIES} if has_noise else {}),
            noise_seeds=f["noise/noise_seed"][()] if has_noise else None,
            noise_sha256=MappingProxyType(
                {m: str(f["noise"].attrs[f"noise_sha256_{m}"]) for m in NOISY_MODALITIES} if has_noise else {}
            ),
            levels=MappingProxyType(levels),
            dataset=str(f.attrs.get("dataset", "")),
            cache_file=_recorded_cache_path(f),
        )
    except (KeyError, OSError) as err:
        raise ValueError(f"{source}: incomplete or damaged stress plan ({err})") from err


def _recorded_cache_path(f: h5py.Group) -> str:
    try:
        return str(json.loads(f.attrs["provenance"])["inputs"]["cache"]["path"])
    except (KeyError, TypeError, ValueError):
        return str(f.attrs.get("cache_file", ""))


def apply_plan(
    plan: str | os.PathLike | h5py.Group | StressPlan,
    test_arrays: Mapping[str, np.ndarray],
    stressor: str,
    severity: float,
) -> StressedInputs:
    """The test inputs under one stressor at one severity, exactly as the plan fixes them.

    Args:
        plan: a plan path, an open h5py file, or a ``StressPlan`` from ``read_plan`` (cheapest when looping).
        test_arrays: the clean test split (``load_test_split``); never modified. Must match the plan's ids (when
            given), lengths and L.
        stressor: "noise", "missing" or "conflict".
        severity: a value of the plan's grid for that stressor (matched within 1e-9).

    Returns:
        ``StressedInputs(arrays, presence)``. Corrupted arrays are new; arrays the stressor leaves alone are the
        input objects themselves (severity 0 returns every input object, hence byte-identical, all present).
        Missingness changes no array: it only sets ``presence`` (see ``zero_absent`` for baselines).

    Raises:
        ValueError: unknown stressor or severity, or test arrays that do not match the plan.
        RuntimeError: this numpy draws different Gaussian noise from the plan's seeds than the one that built it.
    """
    stress_plan = read_plan(plan)
    _check_matches(stress_plan, test_arrays)
    k = stress_plan.severity_index(stressor, severity)
    return _apply(stress_plan, test_arrays, stressor, k, z_cache={})


def iter_severities(
    plan: str | os.PathLike | h5py.Group | StressPlan,
    test_arrays: Mapping[str, np.ndarray],
    stressors: Iterable[str] | None = None,
) -> Iterator[tuple[str, float, StressedInputs]]:
    """Yield ``(stressor, severity, StressedInputs)`` for every severity of every stressor in the plan.

    Reads the plan once, checks the arrays once and regenerates the Gaussian noise once; the caller reads the cache
    once (``load_test_split``) and passes the arrays. ``stressors`` restricts and orders the loop (default: the
    plan's, in STRESSORS order).
    """
    stress_plan = read_plan(plan)
    _check_matches(stress_plan, test_arrays)
    chosen = list(stress_plan.grids) if stressors is None else list(stressors)
    for stressor in chosen:
        stress_plan.require(stressor)
    z_cache: dict[str, np.ndarray] = {}
    for stressor in chosen:
        for k, severity in enumerate(stress_plan.grids[stressor]):
            yield stressor, severity, _apply(stress_plan, test_arrays, stressor, k, z_cache)


def corrupted_modalities(plan: str | os.PathLike | h5py.Group | StressPlan, stressor: str, severity: float
                         ) -> np.ndarray:
    """(N, 3) bool, T, A, V: which modality of which test sample the plan changes at this severity.

    - missing: the absent modalities (``~presence``);
    - conflict: the modalities taken from a donor (``swapped``; text never);
    - noise: text where at least one token is zeroed (``round(rho * length) > 0``: at rho = .1 a 4-word text is
      left alone); audio and vision wherever a timestep is zeroed or, at rho > 0, Gaussian noise is added, i.e.
      every sample with a real position. So at rho > 0 no audio or vision is left alone: the clean inputs
      (severity 0) are what a noised one is told apart from (rider.chain).
    Severity 0 of every stressor changes nothing: all False.
    """
    stress_plan = read_plan(plan)
    k = stress_plan.severity_index(stressor, severity)
    level = stress_plan.levels[stressor][k]
    if stressor == "missing":
        return ~np.asarray(level["presence"], dtype=bool)
    if stressor == "conflict":
        return np.asarray(level["swapped"], dtype=bool).copy()
    if stressor == "noise":
        masked = np.stack([np.asarray(level[f"{m}_mask"]).any(axis=1) for m in MODALITIES], axis=1)  # (N, 3)
        noised = (stress_plan.grids[stressor][k] > 0) & (stress_plan.lengths > 0)  # (N,): Gaussian noise added
        for j, modality in enumerate(MODALITIES):
            if modality in NOISY_MODALITIES:
                masked[:, j] |= noised
        return masked
    raise ValueError(f"unknown stressor {stressor!r}; known: {list(STRESSORS)}")


def _apply(
    plan: StressPlan, arrays: Mapping[str, np.ndarray], stressor: str, k: int, z_cache: dict[str, np.ndarray]
) -> StressedInputs:
    level = plan.levels[stressor][k]
    severity = plan.grids[stressor][k]
    n = plan.lengths.shape[0]
    all_present = np.ones((n, len(MODALITIES)), dtype=bool)
    if stressor == "noise":
        masks = {m: level[f"{m}_mask"] for m in MODALITIES}
        z = _standard_normal(plan, z_cache) if severity > 0 else {}
        return StressedInputs(noise.apply_noise(arrays, masks, z, plan.sigma, severity), all_present)
    if stressor == "missing":
        return StressedInputs(dict(arrays), np.array(level["presence"], dtype=bool))
    if stressor == "conflict":
        return StressedInputs(conflict.apply_conflict(arrays, level["donor"], level["swapped"]), all_present)
    raise ValueError(f"unknown stressor {stressor!r}; known: {list(STRESSORS)}")


def _standard_normal(plan: StressPlan, z_cache: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The plan's z per noisy modality, regenerated from its seeds and checked against the stored digest."""
    for j, modality in enumerate(NOISY_MODALITIES):
        if modality in z_cache:
            continue
        z = noise.standard_normal(plan.noise_seeds[:, j], plan.max_len, plan.sigma[modality].shape[0])
        if noise.digest(z) != plan.noise_sha256[modality]:
            raise RuntimeError(
                f"{plan.source}: the {modality} noise regenerated from the plan's seeds differs from the noise the "
                f"plan was built with (numpy {np.__version__} here); rebuild the plan or use the numpy that built it"
            )
        z_cache[modality] = z
    return z_cache


def _check_matches(plan: StressPlan, arrays: Mapping[str, np.ndarray]) -> None:
    n, max_len = check_test_arrays(arrays, where="test arrays")
    where = f"{plan.source}: test arrays do not match the plan:"
    if n != plan.lengths.shape[0]:
        raise ValueError(f"{where} {n} samples, the plan has {plan.lengths.shape[0]}")
    if max_len != plan.max_len:
        raise ValueError(f"{where} L = {max_len}, the plan has {plan.max_len}")
    if not np.array_equal(np.asarray(arrays["lengths"]), plan.lengths):
        first = int(np.argmax(np.asarray(arrays["lengths"]) != plan.lengths))
        raise ValueError(f"{where} lengths differ, first at sample {first}")
    if "ids" in arrays:
        given = [x.decode() if isinstance(x, bytes) else str(x) for x in arrays["ids"]]
        if given != list(plan.ids):
            first = next(i for i, (a, b) in enumerate(zip(given, plan.ids)) if a != b)
            raise ValueError(f"{where} ids differ, first at sample {first} ({given[first]!r} vs {plan.ids[first]!r})")
    for modality, std in plan.sigma.items():
        if arrays[modality].shape[2] != std.shape[0]:
            raise ValueError(f"{where} {modality} has {arrays[modality].shape[2]} features, the plan {std.shape[0]}")
