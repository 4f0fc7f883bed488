"""The ``pickle`` source: the word-aligned CMU-MOSI / CMU-MOSEI pickles that MulT's and MMSA's repositories
circulate, read safely (rider.data.safe_pickle) into the training cache (rider.data.cache, its one writer).

Both hold a dict of splits ``train``, ``valid``, ``test``, each a dict of arrays, N samples of L rows:

    layout mult (MulT: mosi_data.pkl, mosei_senti_data.pkl)     layout mmsa (MMSA: aligned_50.pkl)
    text    (N, L, 300)  GloVe          -> text_glove            text (N, L, 768) BERT states -> text_bert
    audio   (N, L, Da)   COVAREP (MOSI 5, MOSEI 74)              audio, vision as MulT's
    vision  (N, L, Dv)   Facet (MOSI 20, MOSEI 35)               regression_labels (N,)        -> labels
    labels  (N, 1, 1)                   -> labels                id (N,) "<video>$_$<clip>"
    id      optional: (N,) or (N, k) byte or text strings        text_bert, raw_text, classification_labels,
                                                                 annotations: not read

(an MMSA cache stores text_glove with zero columns; ``train.text_feature: text_bert`` feeds the BERT states to
the models). ``layout`` left out is told from the train split's keys: ``labels`` is MulT's, ``regression_labels``
MMSA's. Widths follow the file (MOSI's 5-d audio and 20-d vision as they are); so do the model kinds, which take
their input widths from the cache.

What the two authors' loaders do, done here too: non-finite values (COVAREP's -inf; both loaders set them to 0)
are set to 0 and counted, and the stage stops past ``cache.max_nonfinite`` as for every source; so it does past
``cache.max_zero_rows`` (the text is measured by all-zero rows too: a pickle has no words to look up). Padding
rows are zero in every stream and may sit at either end of a sample (MulT's files pad at the front, MMSA's
feature tool at the end): a sample's real rows are those where any stream has a non-zero (or non-finite) value;
they must be contiguous and move to the front, our layout, their number becoming ``lengths``. A sample with
none keeps one zero row (as MMSA's length script does) and is counted. ``cache.sequence_length`` applies as for
every source (longer samples keep their first rows; a file with fewer rows is padded).

Ids become the cache's form ``<video>[<segment>]``: MMSA's ``<video>$_$<clip>`` and an id row of several
columns ``(video, segment, ...)`` are rewritten so, any other id string is kept as it is, and a file without ids
gets ``<split>[<i>]``. The file's sha256 goes into the cache's provenance with the layout.

Refused, in one line naming the file and the split, key or sample, writing nothing: an unaligned file (MMSA's
``unaligned_50.pkl``: ``audio_lengths`` / ``vision_lengths``; MulT's ``*_noalign.pkl``: streams of other lengths
than the text), a missing split or key, widths that differ between splits, a label outside [-3, 3], an empty split,
a sample whose real rows are not contiguous, a file that is not a whole pickle, or one that asks for code.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from rider.data.cache import CacheConfig, check_shares, write_cache
from rider.errors import DataError
from rider.data.folds import SPLITS
from rider.data.safe_pickle import load_pickle
from rider.provenance import provenance

log = logging.getLogger(__name__)

STREAMS = ("text", "audio", "vision")  # the pickle's keys, in both layouts
UNALIGNED_KEYS = ("audio_lengths", "vision_lengths")  # MMSA's unaligned file: each stream at its own frame rate
MMSA_ID_SEPARATOR = "$_$"  # MMSA's feature tool writes "<video>$_$<clip>"
_BLOCK = 2048  # samples per pass over a stream: bounds the temporaries on a MOSEI-sized split


@dataclass(frozen=True)
class Layout:
    author: str        # whose files
    text_feature: str  # the cache's name for the pickle's text
    labels: str        # the key holding the sentiment
    aligned_file: str  # what to use instead of an unaligned file


LAYOUTS = {
    "mult": Layout("MulT", "text_glove", "labels",
                   "MulT's aligned mosi_data.pkl or mosei_senti_data.pkl, not a _noalign one"),
    "mmsa": Layout("MMSA", "text_bert", "regression_labels", "MMSA's aligned_50.pkl, not unaligned_50.pkl"),
}


@dataclass(frozen=True)
class PickleConfig:
    path: str | None = None    # the workflow's input; the stage is handed the file itself
    layout: str | None = None  # mult | mmsa | None: told from the keys

    def __post_init__(self):
        if self.layout is not None and self.layout not in LAYOUTS:
            raise ValueError(f"pickle.layout = {self.layout!r}, expected one of {sorted(LAYOUTS)} or null")


@dataclass
class _Split:
    """One split read from the pickle and checked: its streams still as the file holds them."""

    streams: dict[str, np.ndarray]  # text / audio / vision (N, L, D), the file's arrays
    labels: np.ndarray              # (N,) float32
    ids: np.ndarray                 # (N,) str, the cache's form


def build_pickle_cache(pickle_path: str | os.PathLike, out_path: str | os.PathLike, layout: str | None = None,
                       config: CacheConfig = CacheConfig(), dataset: str = "",
                       provenance_config: Mapping | None = None) -> dict:
    """The pickle stage: read ``pickle_path`` (module docstring), write the cache ``out_path``; return the counts
    it also writes into the file's attributes."""
    path = Path(pickle_path)
    data = load_pickle(path)
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: holds a {type(data).__name__}, expected a dict of splits {list(SPLITS)}")
    missing = [split for split in SPLITS if split not in data]
    if missing:
        raise DataError(f"{path}: no split '{missing[0]}'; the file has {sorted(map(str, data))}, expected "
                        f"{', '.join(SPLITS)}")
    for split in SPLITS:
        if not isinstance(data[split], Mapping):
            raise DataError(f"{path}: split '{split}' holds a {type(data[split]).__name__}, expected a dict of arrays")
        unaligned = [key for key in UNALIGNED_KEYS if key in data[split]]
        if unaligned:
            raise DataError(f"{path}: an unaligned file: split '{split}' has '{unaligned[0]}' (each stream at its "
                            f"own frame rate, not aligned to the words); use the word-aligned file, "
                            f"{LAYOUTS['mmsa'].aligned_file}")
    layout = layout or _detect_layout(data["train"], path)
    splits = {split: _read_split(data[split], split, layout, path) for split in SPLITS}
    _check_widths(splits, path)
    del data  # from here each stream is held by its split alone, and let go once cleaned (memory: MOSEI's are GBs)

    length = config.sequence_length
    features: dict[str, dict[str, np.ndarray]] = {split: {} for split in SPLITS}
    lengths, counts_of = {}, {"nonfinite": dict.fromkeys(STREAMS, 0), "zero_rows": dict.fromkeys(STREAMS, 0)}
    real_rows, without_rows, moved, truncated = 0, 0, 0, 0
    for split, content in splits.items():
        rows, row_any = {}, {}
        for stream in STREAMS:
            values, nonzero, nonfinite = _clean(content.streams.pop(stream))  # the file's array is let go
            rows[stream], row_any[stream] = values, nonzero
            counts_of["nonfinite"][stream] += nonfinite
        real = row_any["text"] | row_any["audio"] | row_any["vision"]  # (N, L)
        count, first = _real_block(real, content.ids, split, path)
        for stream, values in rows.items():
            counts_of["zero_rows"][stream] += int((real & ~values.any(axis=2)).sum())
            features[split][stream] = _to_length(_move_to_front(values, first, count), length)
        real_rows += int(count.sum())
        without_rows += int((count == 0).sum())
        moved += int(((first > 0) & (count > 0)).sum())
        truncated += int((count > length).sum())
        lengths[split] = np.minimum(np.maximum(count, 1), length)
        if (count == 0).any():
            log.warning("%s: split '%s': %d sample(s) have no non-zero row (e.g. %s); each keeps one zero row", path,
                        split, int((count == 0).sum()), content.ids[count == 0][:3].tolist())
    widths = {stream: features["train"][stream].shape[2] for stream in STREAMS}
    names = {"text": LAYOUTS[layout].text_feature, "audio": "audio", "vision": "vision"}
    shares = {"unknown_words": {}, "zero_rows": {}, "nonfinite": {}}
    for stream in STREAMS:
        if widths[stream]:
            shares["zero_rows"][names[stream]] = counts_of["zero_rows"][stream] / max(real_rows, 1)
            shares["nonfinite"][names[stream]] = counts_of["nonfinite"][stream] / max(real_rows * widths[stream], 1)
    for stream, count in counts_of["nonfinite"].items():
        if count:
            log.warning("%s: replaced %d non-finite value(s) in %s by 0", path, count, stream)
    check_shares(shares, config, path, counted="the samples' real rows")

    widths_in_cache = {"text_glove": 0, **{names[stream]: widths[stream] for stream in STREAMS}}
    counts = {"segments": {split: int(len(splits[split].labels)) for split in SPLITS}, "truncated": truncated,
              "nonfinite": {names[s]: n for s, n in counts_of["nonfinite"].items()}, "shares": shares,
              "layout": layout, "moved_to_front": moved, "without_rows": without_rows}

    def fields() -> Iterator[tuple[str, str, np.ndarray]]:
        for split in SPLITS:
            for stream in STREAMS:
                yield split, names[stream], features[split].pop(stream)
            if "text_glove" not in names.values():  # MMSA: no GloVe text, stored with zero columns
                yield split, "text_glove", np.zeros((len(lengths[split]), length, 0), np.float32)
            yield split, "lengths", lengths[split]
            yield split, "labels", splits[split].labels
            yield split, "ids", splits[split].ids

    record = provenance({"pickle": path}, dict(provenance_config or {}), dataset=dataset, source="pickle",
                        layout=layout)
    write_cache(out_path, fields(), widths_in_cache, dataset=dataset, sequence_length=length, counts=counts,
                provenance_record=record)
    log.info("cache %s from %s (layout %s): %s", out_path, path, layout, json.dumps(counts))
    return counts


def _detect_layout(train: Mapping, path: Path) -> str:
    found = [name for name, layout in LAYOUTS.items() if layout.labels in train]
    if len(found) != 1:
        raise DataError(f"{path}: cannot tell the layout: split 'train' has {'both' if found else 'neither'} "
                        f"'labels' (MulT) {'and' if found else 'nor'} 'regression_labels' (MMSA); it has "
                        f"{sorted(map(str, train))}; set pickle.layout")
    return found[0]


def _read_split(content: Mapping, split: str, layout: str, path: Path) -> _Split:
    """The split's arrays as the file holds them, checked for everything but their values."""
    required = (*STREAMS, LAYOUTS[layout].labels)
    missing = [key for key in required if key not in content]
    if missing:
        other = [name for name, other in LAYOUTS.items() if name != layout and other.labels in content]
        hint = f"; is it {LAYOUTS[other[0]].author}'s (pickle.layout: {other[0]})?" if other else ""
        raise DataError(f"{path}: split '{split}' has no key '{missing[0]}' (layout {layout} needs "
                        f"{list(required)}; the split has {sorted(map(str, content))}){hint}")
    where = f"{path}: split '{split}'"
    labels = np.asarray(content[LAYOUTS[layout].labels])
    key = LAYOUTS[layout].labels
    if labels.dtype.kind not in "fiub" or labels.ndim == 0 or labels.size != labels.shape[0]:
        raise DataError(f"{where}, key '{key}' has shape {labels.shape} ({labels.dtype}), expected one number per "
                        "sample: (N,), (N, 1) or (N, 1, 1)")
    labels = labels.reshape(-1).astype(np.float32)
    n = len(labels)
    if n == 0:
        raise DataError(f"{where} is empty (0 samples)")
    streams = {}
    for stream in STREAMS:
        values = content[stream]
        if not isinstance(values, np.ndarray):
            values = np.asarray(values)
        if values.ndim != 3 or values.dtype.kind not in "fiu":
            raise DataError(f"{where}, key '{stream}' has shape {values.shape} ({values.dtype}), expected numbers "
                            "of shape (samples, rows, features)")
        if values.shape[0] != n:
            raise DataError(f"{where}, key '{stream}' has {values.shape[0]} samples, '{key}' {n}")
        streams[stream] = values
    rows = {stream: values.shape[1] for stream, values in streams.items()}
    for stream in ("audio", "vision"):
        if rows[stream] != rows["text"]:
            raise DataError(f"{where}: '{stream}' has {rows[stream]} rows per sample, 'text' {rows['text']}: an "
                            f"unaligned file (streams not aligned to the words); use the word-aligned file, "
                            f"{LAYOUTS[layout].aligned_file}")
    ids = segment_ids(content.get("id"), n, split, path)
    bad = ~np.isfinite(labels) | (labels < -3) | (labels > 3)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{where}, key '{key}': sample {ids[i]} is {labels[i]:g}, outside [-3, 3]")
    return _Split(streams, labels, ids)


def _check_widths(splits: Mapping[str, _Split], path: Path) -> None:
    for stream in STREAMS:
        width = splits["train"].streams[stream].shape[2]
        for split, content in splits.items():
            if content.streams[stream].shape[2] != width:
                raise DataError(f"{path}: '{stream}' has {content.streams[stream].shape[2]} features in split "
                                f"'{split}' but {width} in 'train': the splits must come from one feature set")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def segment_ids(raw: Any, n: int, split: str, path: Path) -> np.ndarray:
    """The cache's ids (module docstring) from a split's ``id`` as the file stores it, or None."""
    if raw is None:
        return np.array([f"{split}[{i}]" for i in range(n)], dtype=object)
    ids = np.asarray(raw, dtype=object)
    if ids.ndim == 2 and ids.shape[1] == 1:
        ids = ids[:, 0]
    if ids.ndim not in (1, 2) or len(ids) != n:
        raise DataError(f"{path}: split '{split}', key 'id' has shape {ids.shape}, expected one id (or row) for each "
                        f"of the {n} samples")
    if ids.ndim == 2:
        return np.array([f"{_text(row[0])}[{','.join(_text(v) for v in row[1:])}]" for row in ids], dtype=object)
    texts = [_text(value) for value in ids]
    return np.array([f"{t.rpartition(MMSA_ID_SEPARATOR)[0]}[{t.rpartition(MMSA_ID_SEPARATOR)[2]}]"
                     if MMSA_ID_SEPARATOR in t else t for t in texts], dtype=object)


def _clean(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """A writable float32 array of the stream with NaN/inf set to 0, which rows held anything (any non-zero or
    non-finite value: (N, L) bool) and how many values were non-finite. A writable float32 array is cleaned in
    place, anything else copied once."""
    if values.dtype != np.float32 or not values.flags.writeable or not values.flags.c_contiguous:
        values = np.array(values, dtype=np.float32)
    nonzero = np.zeros(values.shape[:2], dtype=bool)
    nonfinite = 0
    for start in range(0, len(values), _BLOCK):
        block = values[start: start + _BLOCK]  # a view: cleaned in place
        nonzero[start: start + _BLOCK] = block.any(axis=2)  # NaN and inf count as content
        bad = ~np.isfinite(block)
        if bad.any():
            nonfinite += int(bad.sum())
            block[bad] = 0.0
    return values, nonzero, nonfinite


def _runs(rows: np.ndarray) -> str:
    """Row indices as ranges: [0 1 2 5 7 8] -> '0-2, 5, 7-8'."""
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts, ends = np.r_[rows[0], rows[breaks + 1]], np.r_[rows[breaks], rows[-1]]
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts, ends))


def _real_block(real: np.ndarray, ids: np.ndarray, split: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per sample the number of real rows and where they start; a sample whose real rows have a gap is refused."""
    count = real.sum(axis=1)
    first = np.argmax(real, axis=1)
    last = real.shape[1] - 1 - np.argmax(real[:, ::-1], axis=1)
    gap = (count > 0) & (last - first + 1 != count)
    if gap.any():
        i = int(np.argmax(gap))
        raise DataError(f"{path}: split '{split}', sample {ids[i]}: its real rows (any non-zero text, audio or vision "
                        f"value) are {_runs(np.flatnonzero(real[i]))}, not one block: padding must sit at the start "
                        "or the end of a sample")
    return count, np.where(count > 0, first, 0)


def _move_to_front(values: np.ndarray, first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Shift each sample's real rows to the front, in place (the rows around them are zero in every stream)."""
    length = values.shape[1]
    for shift in np.unique(first[first > 0]):
        samples = np.flatnonzero(first == shift)
        values[samples, : length - shift] = values[samples, shift:]
        values[samples, length - shift:] = 0.0
    return values


def _to_length(values: np.ndarray, length: int) -> np.ndarray:
    """The first ``length`` rows of each sample, zero-padded when the file has fewer."""
    if values.shape[1] >= length:
        return values[:, :length]
    padded = np.zeros((values.shape[0], length, values.shape[2]), dtype=np.float32)
    padded[:, : values.shape[1]] = values
    return padded
