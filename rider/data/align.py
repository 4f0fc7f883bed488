"""Word-level alignment of audio and vision to the words, written as one ragged HDF5 file.

Two aligners produce the same file (``datasets.<name>.aligner``):
- ``fast`` (the default, ``rider.data.fast_align``): the SDK's alignment rules re-implemented with numpy,
  reading one video at a time and writing as it goes, so memory stays bounded;
- ``sdk``: the CMU Multimodal SDK itself, the reference the fast one is tested against (slow; it holds every
  stream of every video in memory).

The SDK recipe (as CMU's own tutorials run it): align every stream to the words with a mean over the frames
inside each word, impute zeros for a word no frame covers, then add the labels and align to the labelled
segments, which groups the word rows per segment. Before alignment each input is validated (the SDK would
silently drop a video missing from one stream) and non-finite values (real COVAREP holds -inf/NaN) are
replaced by 0 and counted.

A dataset aligns the streams it has: words and labels always, audio and vision when given (a text-only dataset,
``modalities: [text]``, passes neither and its file holds no /audio or /vision), and the SDK's word-vector
sequence (``glove_vectors``, one GloVe vector per word) when the dataset takes its GloVe features from it.

The file's layout and its writer: ``rider.data.aligned``.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from rider.atomic import atomic_path
from rider.data.aligned import SEGMENT_KEY, AlignedWriter, missing_rows_error, row_count_error, streams_of
from rider.data.csd import ROLES, Entries, check_same_videos, read_metadata, read_sequence
from rider.errors import DataError
from rider.provenance import provenance

log = logging.getLogger(__name__)

REQUIRED_ROLES = ("words", "labels")
ALIGNERS = ("fast", "sdk")
DEFAULT_ALIGNER = "fast"


def _mean_or_passthrough(intervals: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The collapse function: mean over the rows inside a word; words themselves (strings) pass through."""
    if features.dtype.kind in "SUO":
        return features
    return features.mean(axis=0)


def load_raw(paths: Mapping[str, str | os.PathLike]) -> dict[str, tuple[Path, Entries]]:
    """Read and validate words, labels and the streams given; every labelled video must be in every stream."""
    missing = sorted(set(REQUIRED_ROLES) - set(paths))
    if missing:
        raise ValueError(f"raw sequences lack the role(s) {missing}")
    roles = [role for role in ROLES if role in paths]
    sequences = {role: (Path(paths[role]), read_sequence(paths[role], ROLES[role])) for role in roles}
    check_same_videos(sequences, reference="labels")
    return sequences


def clean_nonfinite(entries: Entries) -> int:
    """Replace -inf/+inf/NaN features by 0 in place; return how many values were replaced."""
    count = 0
    for entry in entries.values():
        bad = ~np.isfinite(entry["features"])
        if bad.any():
            entry["features"] = np.where(bad, 0.0, entry["features"]).astype(entry["features"].dtype)
            count += int(bad.sum())
    return count


def _sdk_sequence(name: str, entries: Entries, metadata: dict[str, str]):
    from mmsdk import mmdatasdk

    sequence = mmdatasdk.computational_sequence(name)
    sequence.setData(entries, name)
    sequence.setMetadata({**metadata, "root name": name}, name)
    return sequence


def align_with_sdk(sequences: dict[str, tuple[Path, Entries]]) -> dict[str, Entries]:
    """Run the SDK's alignment; return ``{stream: {segment key: {intervals, features}}}``."""
    from mmsdk import mmdatasdk

    metadata = {role: read_metadata(path) for role, (path, _) in sequences.items()}
    dataset = mmdatasdk.mmdataset({"words": str(sequences["words"][0])})
    # Replace what the SDK read from disk by the validated, cleaned arrays.
    for role in ("words", *streams_of(sequences)):
        dataset.computational_sequences[role] = _sdk_sequence(role, sequences[role][1], metadata[role])
    dataset.align("words", collapse_functions=[_mean_or_passthrough])
    _impute_zeros(dataset, reference="words")
    # Labels only after the word-level alignment: aligning with them earlier fails inside the SDK.
    dataset.computational_sequences["labels"] = _sdk_sequence("labels", sequences["labels"][1], metadata["labels"])
    dataset.align("labels")
    return {name: dataset[name].data for name in dataset.keys()}


def _impute_zeros(dataset, reference: str) -> None:
    """A word that no frame covers gets a zero row, so every stream keeps one row per word.

    The SDK's own ``impute`` does this but fails under Python 3 (it indexes ``dict_keys``).
    """
    words = dataset[reference].data
    for name in dataset.keys():
        if name == reference:
            continue
        data = dataset[name].data
        dim = next(iter(data.values()))["features"].shape[1]
        missing = [key for key in words if key not in data]
        for key in missing:
            data[key] = {"intervals": words[key]["intervals"], "features": np.zeros((1, dim), dtype=np.float32)}
        if missing:
            log.info("%s: %d word(s) covered by no frame got a zero row", name, len(missing))


def _segment_order(keys) -> list[str]:
    def order(key: str):
        match = SEGMENT_KEY.match(key)
        if match is None:
            raise DataError(f"aligned segment key '{key}' is not of the form <video>[<i>]")
        return match["video"], int(match["index"])

    return sorted(keys, key=order)


def write_aligned(aligned: dict[str, Entries], out_path: str | os.PathLike, attrs: Mapping[str, str]) -> int:
    """Flatten the SDK's per-segment dictionaries into the ragged layout; return the number of segments."""
    keys = _segment_order(aligned["labels"].keys())
    streams = streams_of(aligned)
    for stream in ("words", *streams):
        absent = [key for key in keys if key not in aligned[stream]]
        if absent:
            raise missing_rows_error(stream, absent)
    rows = np.array([len(aligned["words"][key]["features"]) for key in keys], dtype=np.int64)
    for stream in streams:
        other = np.array([len(aligned[stream][key]["features"]) for key in keys])
        if not np.array_equal(rows, other):
            k = int(np.argmax(rows != other))
            raise row_count_error(keys[k], stream, int(other[k]), int(rows[k]))

    def stacked(stream: str, field: str) -> np.ndarray:
        return np.concatenate([aligned[stream][k][field] for k in keys])

    with atomic_path(out_path, suffix=".h5") as tmp, h5py.File(tmp, "w") as handle:
        widths = {stream: next(iter(aligned[stream].values()))["features"].shape[1] for stream in streams}
        writer = AlignedWriter(handle, streams=widths)
        writer.append(
            keys,
            intervals=stacked("labels", "intervals"),
            labels=stacked("labels", "features")[:, 0],
            rows=rows,
            words=stacked("words", "features")[:, 0],
            word_intervals=stacked("words", "intervals"),
            streams={stream: stacked(stream, "features") for stream in streams},
        )
        return writer.close(attrs)


def align(raw_paths: Mapping[str, str | os.PathLike], out_path: str | os.PathLike, config: Mapping | None = None,
          aligner: str | None = None) -> dict:
    """The align stage: validate, clean, align, write ``out_path``; return a summary for the log.

    ``aligner`` (else ``config["aligner"]``, else ``DEFAULT_ALIGNER``) is ``fast`` or ``sdk``. ``raw_paths``
    holds words, labels and the streams the dataset has; ``config["modalities"]``, when given, must agree.
    """
    config = dict(config or {})
    aligner = aligner or config.get("aligner") or DEFAULT_ALIGNER
    if aligner not in ALIGNERS:
        raise ValueError(f"aligner '{aligner}' is not one of {list(ALIGNERS)}")
    missing = sorted(set(REQUIRED_ROLES) - set(raw_paths))
    if missing:
        raise ValueError(f"raw sequences lack the role(s) {missing}")
    unknown = sorted(set(raw_paths) - set(ROLES))
    if unknown:
        raise ValueError(f"raw sequences of unknown role(s) {unknown}; known: {sorted(ROLES)}")
    streams = streams_of(raw_paths)
    modalities = {"text", *(stream for stream in streams if stream in ("audio", "vision"))}
    if "modalities" in config and modalities != set(config["modalities"]):
        raise ValueError(f"the dataset's modalities are {config['modalities']}, the raw sequences hold "
                         f"{sorted(modalities)}")
    inputs = {role: Path(raw_paths[role]) for role in ROLES if role in raw_paths}
    for role, path in inputs.items():
        if not path.is_file():
            raise DataError(f"{path}: no such computational sequence ({role})")

    # The provenance record hashes every input (sha256): a second thread does it while the alignment runs
    # (hashlib releases the GIL), for either aligner.
    with ThreadPoolExecutor(max_workers=1) as pool:
        record = pool.submit(provenance, inputs, config)

        def attrs(nonfinite: dict[str, int], values: dict[str, int]) -> dict[str, str]:
            return {"aligner": aligner, "streams": json.dumps(list(streams)), "nonfinite": json.dumps(nonfinite),
                    "values": json.dumps(values), "provenance": record.result()}

        if aligner == "fast":
            from rider.data.fast_align import align_fast

            n_segments, nonfinite = align_fast(inputs, out_path, attrs)
        else:
            sequences = load_raw(inputs)
            nonfinite = {stream: clean_nonfinite(sequences[stream][1]) for stream in streams}
            values = {stream: sum(int(entry["features"].size) for entry in sequences[stream][1].values())
                      for stream in streams}
            for stream, count in nonfinite.items():
                log.info("%s: replaced %d non-finite value(s) (-inf/NaN) by 0", sequences[stream][0], count)
            n_segments = write_aligned(align_with_sdk(sequences), out_path, attrs(nonfinite, values))
    log.info("aligned %d segments to %s (%s aligner)", n_segments, out_path, aligner)
    return {"segments": n_segments, "nonfinite": nonfinite, "aligner": aligner}
