"""Word-level alignment with the CMU Multimodal SDK, written as one ragged HDF5 file.

The SDK recipe (as CMU's own tutorials run it): align every stream to the words with a mean over the frames
inside each word, impute zeros for a word no frame covers, then add the labels and align to the labelled
segments, which groups the word rows per segment. Before the SDK sees anything, each input is validated (the SDK
would silently drop a video missing from one stream) and non-finite values (real COVAREP holds -inf/NaN) are
replaced by 0 and counted.

Output layout (``ALIGNED_SCHEMA_VERSION``)::

    /segments/key      (S,)   str    SDK segment key "<video>[<i>]", i = the segment's row in the label file
    /segments/video    (S,)   str
    /segments/interval (S, 2) float64 seconds
    /segments/label    (S,)   float32
    /segments/offset   (S+1,) int64  word rows of segment k are offset[k]:offset[k+1]
    /words/word        (W,)   str
    /words/interval    (W, 2) float64
    /audio             (W, 74) float32   mean of the frames inside each word
    /vision            (W, 35) float32
    attrs: schema_version, aligner, nonfinite (JSON counts per stream), provenance (JSON)
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from rider.atomic import atomic_path
from rider.data.csd import ROLES, DataError, Entries, check_same_videos, read_metadata, read_sequence
from rider.provenance import provenance

log = logging.getLogger(__name__)

ALIGNED_SCHEMA_VERSION = 1
STREAMS = ("audio", "vision")
_KEY = re.compile(r"^(?P<video>.+)\[(?P<index>\d+)\]$")


def _mean_or_passthrough(intervals: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The collapse function: mean over the rows inside a word; words themselves (strings) pass through."""
    if features.dtype.kind in "SUO":
        return features
    return features.mean(axis=0)


def load_raw(paths: Mapping[str, str | os.PathLike]) -> dict[str, tuple[Path, Entries]]:
    """Read and validate words, audio, vision and labels; every labelled video must be in every stream."""
    missing = sorted(set(ROLES) - set(paths))
    if missing:
        raise ValueError(f"raw sequences lack the role(s) {missing}")
    sequences = {role: (Path(paths[role]), read_sequence(paths[role], ROLES[role])) for role in ROLES}
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
    for role in ("words", *STREAMS):
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
        match = _KEY.match(key)
        if match is None:
            raise DataError(f"aligned segment key '{key}' is not of the form <video>[<i>]")
        return match["video"], int(match["index"])

    return sorted(keys, key=order)


def write_aligned(aligned: dict[str, Entries], out_path: str | os.PathLike, attrs: Mapping[str, str]) -> int:
    """Flatten the SDK's per-segment dictionaries into the ragged layout; return the number of segments."""
    keys = _segment_order(aligned["labels"].keys())
    for stream in ("words", *STREAMS):
        absent = [key for key in keys if key not in aligned[stream]]
        if absent:
            raise DataError(f"{len(absent)} labelled segment(s) have no {stream} after alignment, e.g. {absent[:3]}")
    rows = np.array([len(aligned["words"][key]["features"]) for key in keys])
    for stream in STREAMS:
        other = np.array([len(aligned[stream][key]["features"]) for key in keys])
        if not np.array_equal(rows, other):
            bad = keys[int(np.argmax(rows != other))]
            raise DataError(f"segment {bad}: {stream} has {other[keys.index(bad)]} rows after alignment, words have "
                            f"{rows[keys.index(bad)]}")
    offset = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    words = np.concatenate([aligned["words"][key]["features"][:, 0] for key in keys])
    words = np.array([w.decode() if isinstance(w, bytes) else str(w) for w in words], dtype=object)
    string = h5py.string_dtype()
    with atomic_path(out_path, suffix=".h5") as tmp, h5py.File(tmp, "w") as handle:
        segments = handle.create_group("segments")
        segments.create_dataset("key", data=np.array(keys, dtype=object), dtype=string)
        segments.create_dataset("video", data=np.array([_KEY.match(k)["video"] for k in keys], dtype=object), dtype=string)
        segments.create_dataset("interval", data=np.concatenate([aligned["labels"][k]["intervals"] for k in keys]))
        segments.create_dataset("label", data=np.concatenate([aligned["labels"][k]["features"][:, 0] for k in keys]).astype(np.float32))
        segments.create_dataset("offset", data=offset)
        group = handle.create_group("words")
        group.create_dataset("word", data=words, dtype=string)
        group.create_dataset("interval", data=np.concatenate([aligned["words"][k]["intervals"] for k in keys]))
        for stream in STREAMS:
            data = np.concatenate([aligned[stream][k]["features"] for k in keys]).astype(np.float32)
            handle.create_dataset(stream, data=data, compression="gzip", compression_opts=1)
        handle.attrs["schema_version"] = ALIGNED_SCHEMA_VERSION
        for name, value in attrs.items():
            handle.attrs[name] = value
    return len(keys)


def align(raw_paths: Mapping[str, str | os.PathLike], out_path: str | os.PathLike, config: Mapping | None = None) -> dict:
    """The align stage: validate, clean, align with the SDK, write ``out_path``; return a summary for the log."""
    sequences = load_raw(raw_paths)
    nonfinite = {stream: clean_nonfinite(sequences[stream][1]) for stream in STREAMS}
    for stream, count in nonfinite.items():
        log.info("%s: replaced %d non-finite value(s) (-inf/NaN) by 0", sequences[stream][0], count)
    aligned = align_with_sdk(sequences)
    attrs = {
        "aligner": "sdk",
        "nonfinite": json.dumps(nonfinite),
        "provenance": provenance({role: path for role, (path, _) in sequences.items()}, dict(config or {})),
    }
    n_segments = write_aligned(aligned, out_path, attrs)
    log.info("aligned %d segments to %s", n_segments, out_path)
    return {"segments": n_segments, "nonfinite": nonfinite}
