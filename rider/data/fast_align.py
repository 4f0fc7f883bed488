"""Word-level alignment with numpy, streamed through the videos: the SDK's rules without the SDK's loops.

The CMU SDK (``mmsdk/mmdatasdk/dataset/dataset.py``: ``align``, ``__intersect_and_copy``, ``__collapse``,
``__get_relevant_entries``, ``__unify_dataset``) compares every word with every frame of its video in Python,
and holds every stream of every video in memory. This module applies the same rules to whole arrays: it reads
one video's arrays at a time from the .csd files with h5py, aligns videos in batches of at most
``_BATCH_BYTES`` of frames (a batch is searched as one array, videos kept apart), and appends each batch's
segments to the output, so memory stays bounded however large the dataset grows. The rules, each as the SDK
applies them:

1. ε = ``10e-4`` s (the SDK's ``epsilon``). A reference interval [r0, r1] shorter than ε (``|r0 - r1| < ε``) is
   skipped: such a word gets no row in any stream, such a segment is not in the output.
2. A row [f0, f1] of another sequence meets [r0, r1] when ``(r1 - f0) > -ε`` and ``(f1 - r0) > -ε`` (it may
   touch within ε); it is clipped to [max(f0, r0), min(f1, r1)] and kept only if ``|end - start| > ε``.
   Before matching, the other sequence's rows are sorted by start, stably.
3. First pass, reference = words: a word's audio (vision) row is the mean of the kept frames' features, with
   the interval [min, max] over all ends of their clipped intervals; the word's own row is its interval
   collapsed the same way ([min(w0, w1), max(w0, w1)]).
4. A word that no frame meets gets a zero row with the word's interval (our ``_impute_zeros``). The SDK appends
   these rows after the covered ones, so they sort after a covered row with the same start (rule 5).
5. Second pass, reference = label segments: the word rows of every stream (sorted by start, stably) are matched
   by rule 2 without collapsing, so a word's interval is clipped to its segment, a word straddling two segments
   appears in both, and the audio/vision rows keep their first-pass features.
6. A labelled video left with no word rows is dropped (the SDK's ``unify`` removes it).
A labelled segment with no word rows, or with a different number of audio/vision rows than word rows, stops
the stage with the same message as the SDK path (``rider.data.align``).

Comparisons and clipping run in the SDK's dtypes (real label intervals are float32 and stay so), so intervals
that touch within ε fall the same way. Means accumulate in float64 where the SDK's accumulate in float32: the
two differ by float32 rounding only. Where the SDK fails or differs by accident, the fast aligner does not copy
it: it reads only labelled videos (the SDK also validates, and may crash on, unlabelled ones), and a video id
that is a prefix of another cannot make it crash (the SDK's ``unify`` compares prefixes).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import h5py
import numpy as np
from tqdm import tqdm

from rider.atomic import atomic_path
from rider.data.aligned import AlignedWriter, missing_rows_error, row_count_error, streams_of
from rider.data.csd import ROLES, SequenceRole, _check_entry, check_same_videos
from rider.errors import DataError

log = logging.getLogger(__name__)

EPSILON = 10e-4         # the SDK's `epsilon`; a Python float, so float32 arrays compare in float32 as in the SDK
_MAX_PAIRS = 1 << 22    # candidate (reference, row) pairs evaluated at once: bounds memory for odd inputs
_BATCH_BYTES = 32 << 20  # stream features aligned at once: bounds memory, spreads numpy's per-call cost
_BLOCK_ROWS = 4096       # rows per np.add.reduceat call (see _sum_runs)


class CsdReader:
    """A .csd file opened with h5py, read one video at a time, each video checked as ``read_sequence`` checks it."""

    def __init__(self, path: str | os.PathLike, role: SequenceRole | None):
        self.path, self.role = Path(path), role  # role None: read without checks
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such computational sequence ({role.name if role else 'any role'})")
        try:
            self._handle = h5py.File(self.path, "r")
        except OSError as err:
            raise DataError(f"{self.path}: not a readable HDF5 computational sequence (truncated or corrupt?): {err}") from None
        try:
            self._data = self._handle[next(iter(self._handle.keys()))]["data"]  # the SDK's readCSD: first group
            self.videos = list(self._data.keys())
        except (StopIteration, KeyError, OSError) as err:
            self.close()
            raise DataError(f"{self.path}: not a computational sequence (no '<root>/data' group): {err!r}") from None
        if not self.videos:
            self.close()
            raise DataError(f"{self.path}: holds no videos")
        if role is not None:  # audio and vision: the width of the file's first video (SequenceRole.any_width)
            try:
                self.role = role.of_file(self._data[self.videos[0]]["features"].shape)
            except (KeyError, OSError) as err:
                self.close()
                raise DataError(f"{self.path}: video '{self.videos[0]}': 'features' cannot be read (truncated or "
                                f"corrupt?): {err}") from None

    def _read_array(self, video: str, field: str) -> np.ndarray:
        # h5py's low-level read: a fraction of the cost of looking up Group and Dataset objects per video.
        dataset = h5py.h5d.open(self._data.id, f"{video}/{field}".encode())
        if dataset.dtype.kind == "O":  # variable-length strings: let the high-level API convert them
            return h5py.Dataset(dataset)[()]
        array = np.empty(dataset.shape, dataset.dtype)
        if array.size:
            dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, array)
        return array

    def read(self, video: str) -> dict[str, np.ndarray]:
        try:
            entry = {"intervals": self._read_array(video, "intervals"), "features": self._read_array(video, "features")}
        except (OSError, KeyError, ValueError) as err:
            raise DataError(f"{self.path}: video '{video}': 'intervals' or 'features' cannot be read (truncated or "
                                f"corrupt?): "
                            f"{err}") from None
        if self.role is not None:
            _check_entry(self.path, self.role, video, entry)
        return entry

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "CsdReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def intersect(reference: np.ndarray, rows: np.ndarray, reference_video: np.ndarray | None = None,
              row_video: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rule 2 for every reference interval at once; returns ``(ref_index, row_index, clipped)`` of the kept pairs.

    ``rows`` (n, 2) must be sorted by (video, start). With ``*_video`` (integer ids, for a batch of videos) only
    rows and references of the same video are paired. Pairs come reference-major and in row order within a
    reference (the SDK's order). Only pairs near each other are tested: rows starting after the reference's end,
    or whose running maximum end lies before its start, cannot meet it. Those candidate bounds are searched in
    float64 on time + video * span (span wider than any time, so videos never mix) with a slack wider than ε
    plus any rounding; the test itself runs on the original values, in their own dtypes, as the SDK runs it.
    """
    m, n = len(reference), len(rows)
    dtype = np.result_type(reference, rows)
    if m == 0 or n == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp), np.empty((0, 2), dtype)
    ref, sub = np.asarray(reference, dtype=np.float64), np.asarray(rows, dtype=np.float64)
    span = 4.0 * max(-ref.min(), ref.max(), -sub.min(), sub.max()) + 1.0
    ref_shift = 0.0 if reference_video is None else reference_video * span
    row_shift = 0.0 if row_video is None else row_video * span
    starts = sub[:, 0] + row_shift
    reach = np.maximum.accumulate(sub[:, 1] + row_shift)
    slack = 2 * EPSILON + 1e-6 * np.abs(ref).max(axis=1)
    hi = np.searchsorted(starts, ref[:, 1] + ref_shift + slack, side="right")
    lo = np.minimum(np.searchsorted(reach, ref[:, 0] + ref_shift - slack, side="right"), hi)
    counts = hi - lo
    ends = np.cumsum(counts)
    parts = []
    first = 0
    while first < m:  # chunks of references holding at most _MAX_PAIRS candidates (at least one reference)
        done = ends[first - 1] if first else 0
        last = max(first + 1, int(np.searchsorted(ends, done + _MAX_PAIRS, side="right")))
        count = counts[first:last]
        ref_index = np.repeat(np.arange(first, last), count)
        row_index = np.arange(int(count.sum())) + np.repeat(lo[first:last] - (np.cumsum(count) - count), count)
        r, s = reference[ref_index], rows[row_index]
        # The SDK's test, written as it writes it: (row with start negated) - (reference reversed, end negated).
        meets = (((-s[:, 0]) - (-r[:, 1])) > (-EPSILON)) & ((s[:, 1] - r[:, 0]) > (-EPSILON))
        clipped = np.stack([np.maximum(s[:, 0], r[:, 0]), np.minimum(s[:, 1], r[:, 1])], axis=1)
        keep = meets & (np.abs(clipped[:, 0] - clipped[:, 1]) > EPSILON)
        parts.append((ref_index[keep], row_index[keep], clipped[keep]))
        first = last
    return tuple(np.concatenate(column) for column in zip(*parts))


def _sort_rows(start: np.ndarray, video: np.ndarray, *ties: np.ndarray) -> np.ndarray | None:
    """The order the SDK sorts a video's rows in: by start, stably, then ``ties``; videos stay in order.

    None where the rows are in that order already (the usual case for frames), to spare a copy.
    """
    if not ties and bool(np.all((start[1:] >= start[:-1]) | (video[1:] != video[:-1]))):
        return None
    return np.lexsort((*reversed(ties), start, video))


def _first_of_runs(index: np.ndarray) -> np.ndarray:
    """Positions where a sorted index array changes value (the first pair of each reference)."""
    return np.flatnonzero(np.concatenate([[True], index[1:] != index[:-1]])) if len(index) else index


def _sum_runs(features: np.ndarray, first: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Float64 sums of the row runs ``features[first[k]:end[k]]`` (each at least one row), without copying rows.

    ``np.add.reduceat`` sums ``[bounds[i], bounds[i + 1])``, so with bounds first0, end0, first1, end1, ... the
    even outputs are the runs. It is run on blocks of about ``_BLOCK_ROWS`` rows: down a long array's rows it is
    several times slower (its column-wise walk leaves the cache).
    """
    n = len(features)
    sums = np.empty((len(first), features.shape[1]), np.float64)
    order = None if bool(np.all(first[1:] >= first[:-1])) else np.argsort(first, kind="stable")
    if order is not None:
        first, end = first[order], end[order]
    edges = (np.flatnonzero(np.diff(first // _BLOCK_ROWS)) + 1).tolist()
    for a, z in zip([0, *edges], [*edges, len(first)]):
        low, high = int(first[a]), int(end[a:z].max())
        block = features[low:min(high + 1, n)]  # one row past the last end keeps every bound inside the block
        bounds = np.stack([first[a:z] - low, end[a:z] - low], axis=1).ravel()
        tail = np.flatnonzero(bounds[1::2] == len(block))  # only where a run ends at the array's last row
        bounds[2 * tail + 1] = bounds[2 * tail]
        block_sums = np.add.reduceat(block, bounds, axis=0, dtype=np.float64)[::2]
        for k in tail:
            block_sums[k] = block[bounds[2 * k]:].sum(axis=0, dtype=np.float64)
        sums[a:z] = block_sums
    if order is not None:
        sums[order] = sums.copy()
    return sums


def _run_sums(features: list[np.ndarray], offsets: np.ndarray, row_index: np.ndarray, starts: np.ndarray,
              counts: np.ndarray) -> np.ndarray:
    """Per reference k, the float64 sum of the features of rows ``row_index[starts[k]:starts[k] + counts[k]]``.

    Rows are numbered across the batch; ``features`` holds each video's own array, video v owning rows
    ``offsets[v]:offsets[v + 1]``. A reference's rows all belong to one video.
    """
    first = row_index[starts]
    if not np.array_equal(row_index[starts + counts - 1] - first + 1, counts):  # rows not in one run: gather
        return _sum_runs(np.concatenate(features)[row_index], starts, starts + counts)
    sums = np.empty((len(starts), features[0].shape[1]), np.float64)
    video = np.searchsorted(offsets, first, side="right") - 1
    cuts = np.flatnonzero(np.diff(video)) + 1
    for a, z in zip([0, *cuts.tolist()], [*cuts.tolist(), len(first)]):  # references in video order
        shift = offsets[video[a]]
        sums[a:z] = _sum_runs(features[video[a]], first[a:z] - shift, first[a:z] + counts[a:z] - shift)
    return sums


def _stream_rows(words: np.ndarray, word_video: np.ndarray, word_rows: np.ndarray,
                 entries: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rules 3-4 for one stream: one (interval, features) row per word, sorted as the SDK's second pass sorts.

    ``entries`` are the stream's arrays, one per video. Returns the rows' intervals, features and the index of
    the word each row belongs to.
    """
    sizes = [len(entry["intervals"]) for entry in entries]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    frame_video = np.repeat(np.arange(len(entries)), sizes)
    frames = _stacked(entries, "intervals")
    features = [entry["features"] for entry in entries]
    order = _sort_rows(frames[:, 0], frame_video)
    if order is not None:  # frames out of time order (rare): sort them as the SDK does, in one array
        frames, frame_video = frames[order], frame_video[order]
        features, offsets = [np.concatenate(features)[order]], np.array([0, len(order)])
    word_index, frame_index, clipped = intersect(words, frames, word_video, frame_video)
    starts = _first_of_runs(word_index)
    covered = word_index[starts]
    counts = np.diff(np.append(starts, len(word_index)))
    imputed = np.setdiff1d(np.arange(len(words)), covered, assume_unique=True)
    intervals, means = [], []
    if len(covered):
        low = np.minimum.reduceat(clipped.min(axis=1), starts)
        high = np.maximum.reduceat(clipped.max(axis=1), starts)
        intervals.append(np.stack([low, high], axis=1))
        means.append((_run_sums(features, offsets, frame_index, starts, counts) / counts[:, None]).astype(np.float32))
    if len(imputed):
        intervals.append(word_rows[imputed])
        means.append(np.zeros((len(imputed), features[0].shape[1]), np.float32))
    intervals, means = np.concatenate(intervals), np.concatenate(means)
    word_of_row = np.concatenate([covered, imputed])
    # In the SDK's dictionary a video's covered words come first, then (after `_impute_zeros`) the imputed ones;
    # its stable sort by start keeps that order among rows with equal starts.
    order = _sort_rows(intervals[:, 0], word_video[word_of_row], np.arange(len(word_of_row)) >= len(covered),
                       word_of_row)
    return intervals[order], means[order], word_of_row[order]


@dataclass
class Alignment:
    """Aligned segments of one or more videos, in output order (S segments, W word rows)."""

    keys: list[str]                  # "<video>[<i>]", i = the segment's row in the label file
    intervals: np.ndarray            # (S, 2) the segments' label intervals
    labels: np.ndarray               # (S,)
    rows: dict[str, np.ndarray]      # words/audio/vision: (S,) rows per segment (equal unless the input is broken)
    words: np.ndarray                # (W,) tokens
    word_intervals: np.ndarray       # (W, 2) each word's interval clipped to its segment
    streams: dict[str, np.ndarray]   # audio (W, 74), vision (W, 35)
    dropped: list[str]               # labelled videos left with no word (rule 6)


def _stacked(entries: list[dict[str, np.ndarray]], field: str) -> np.ndarray:
    return np.concatenate([entry[field] for entry in entries]) if len(entries) > 1 else entries[0][field]


def align_videos(names: list[str], words: list[dict], streams: Mapping[str, list[dict]],
                 labels: list[dict]) -> Alignment:
    """Rules 1-6 for a batch of videos (cleaned arrays, one entry per video and role), all at once."""
    video_ids = np.arange(len(names))
    word_video = np.repeat(video_ids, [len(e["intervals"]) for e in words])
    w = _stacked(words, "intervals")
    kept = np.flatnonzero(~(np.abs(w[:, 0] - w[:, 1]) < EPSILON))  # rule 1, as the SDK tests it
    w, word_video, tokens = w[kept], word_video[kept], _stacked(words, "features")[kept, 0]
    word_rows = np.stack([w.min(axis=1), w.max(axis=1)], axis=1)  # the words' own rows: collapsed intervals
    has_words = np.bincount(word_video, minlength=len(names)) > 0

    segment_counts = [len(e["intervals"]) for e in labels]
    segment_video = np.repeat(video_ids, segment_counts)
    segment_row = np.arange(len(segment_video)) - np.repeat(np.cumsum(segment_counts) - segment_counts, segment_counts)
    segments = _stacked(labels, "intervals")
    kept = np.flatnonzero(~(np.abs(segments[:, 0] - segments[:, 1]) < EPSILON) & has_words[segment_video])
    segments, segment_video, segment_row = segments[kept], segment_video[kept], segment_row[kept]
    values = _stacked(labels, "features")[kept, 0]

    order = _sort_rows(word_rows[:, 0], word_video)
    if order is None:
        order = np.arange(len(word_rows))
    segment_of_word, row_of_word, word_intervals = intersect(segments, word_rows[order], segment_video,
                                                             word_video[order])
    rows = {"words": np.bincount(segment_of_word, minlength=len(segments))}
    aligned = {}
    for name, entries in streams.items():
        intervals, means, word_of_row = _stream_rows(w, word_video, word_rows, entries)
        segment_of_row, row, _ = intersect(segments, intervals, segment_video, word_video[word_of_row])
        rows[name] = np.bincount(segment_of_row, minlength=len(segments))
        aligned[name] = means[row]
    return Alignment(
        keys=[f"{names[v]}[{i}]" for v, i in zip(segment_video.tolist(), segment_row.tolist())],
        intervals=segments,
        labels=values,
        rows=rows,
        words=tokens[order][row_of_word],
        word_intervals=word_intervals,
        streams=aligned,
        dropped=[names[v] for v in np.flatnonzero(~has_words)],
    )


def align_video(video: str, words: dict, streams: Mapping[str, dict], labels: dict) -> Alignment:
    """Rules 1-6 for one video."""
    return align_videos([video], [words], {name: [entry] for name, entry in streams.items()}, [labels])


def _clean(entry: dict[str, np.ndarray]) -> int:
    """``clean_nonfinite`` for one video: -inf/+inf/NaN features become 0; return how many."""
    finite = np.isfinite(entry["features"])
    count = finite.size - int(np.count_nonzero(finite))
    if count:
        entry["features"][~finite] = 0  # the array was read for this call alone
    return count


class _Problems:
    """What would make the SDK path's ``write_aligned`` fail, gathered over all videos to raise the same error."""

    def __init__(self, streams: Sequence[str]):
        self.streams = tuple(streams)
        self.absent: dict[str, list[str]] = {name: [] for name in ("words", *self.streams)}
        self.mismatch: dict[str, tuple[str, int, int]] = {}

    def add(self, result: Alignment) -> bool:
        """Record the segments' problems; return True if they have none."""
        clean = True
        for name, counts in result.rows.items():
            empty = np.flatnonzero(counts == 0)
            self.absent[name] += [result.keys[k] for k in empty]
            clean &= len(empty) == 0
        for name in self.streams:
            bad = np.flatnonzero(result.rows[name] != result.rows["words"])
            if len(bad):
                clean = False
                k = int(bad[0])
                self.mismatch.setdefault(name, (result.keys[k], int(result.rows[name][k]), int(result.rows["words"][k])))
        return clean

    def raise_first(self) -> None:
        for name, keys in self.absent.items():
            if keys:
                raise missing_rows_error(name, keys)
        for name in self.streams:
            if name in self.mismatch:
                raise row_count_error(self.mismatch[name][0], name, *self.mismatch[name][1:])


class _Batch:
    """Videos read but not yet aligned: as many as fit ``_BATCH_BYTES`` of stream data, all with the same dtypes
    (concatenating other dtypes would change the arithmetic of rule 2)."""

    def __init__(self, streams: Sequence[str]):
        self.names, self.words, self.labels = [], [], []
        self.streams: dict[str, list] = {name: [] for name in streams}
        self.bytes, self.signature = 0, None

    def add(self, name: str, words: dict, streams: Mapping[str, dict], labels: dict) -> None:
        self.names.append(name)
        self.words.append(words)
        self.labels.append(labels)
        for stream, entry in streams.items():
            self.streams[stream].append(entry)
            self.bytes += entry["features"].nbytes

    def full(self) -> bool:
        return self.bytes >= _BATCH_BYTES


def _signature(words: dict, streams: Mapping[str, dict], labels: dict) -> tuple:
    """The dtypes a video's arithmetic runs in, and whether it must be aligned alone: when words and frames differ
    in dtype, the SDK compares a video whose words all lack frames in the words' dtype, any other in the wider."""
    w = words["intervals"].dtype
    alone = any(np.result_type(w, entry["intervals"]) != w for entry in streams.values())
    return (w, labels["intervals"].dtype, *(entry["intervals"].dtype for entry in streams.values()), alone)


def align_fast(paths: Mapping[str, str | os.PathLike], out_path: str | os.PathLike,
               attrs: Callable[[dict[str, int], dict[str, int]], Mapping[str, str]]) -> tuple[int, dict[str, int]]:
    """Align every labelled video and append it to ``out_path`` (written atomically).

    Videos are read one at a time and aligned in batches of bounded size (``_BATCH_BYTES``), in sorted order.
    ``attrs(nonfinite, values)`` gives the file's attributes once the non-finite counts (and the values read) are
    known. Returns the number of
    segments and the non-finite values replaced per stream (in the labelled videos, the only ones read).
    """
    with contextlib.ExitStack() as stack:
        streams_here = streams_of(paths)  # a text-only dataset has none
        readers = {role: stack.enter_context(CsdReader(paths[role], ROLES[role])) for role in ROLES if role in paths}
        check_same_videos({role: (r.path, dict.fromkeys(r.videos)) for role, r in readers.items()}, reference="labels")
        nonfinite, values = dict.fromkeys(streams_here, 0), dict.fromkeys(streams_here, 0)
        problems, dropped = _Problems(streams_here), []
        with atomic_path(out_path, suffix=".h5") as tmp, h5py.File(tmp, "w") as handle:
            writer = AlignedWriter(handle, streams={name: readers[name].role.feature_dim for name in streams_here})

            def flush(batch: _Batch) -> _Batch:
                if batch.names:
                    result = align_videos(batch.names, batch.words, batch.streams, batch.labels)
                    dropped.extend(result.dropped)
                    if problems.add(result):
                        writer.append(result.keys, result.intervals, result.labels, result.rows["words"],
                                      result.words, result.word_intervals, result.streams)
                return _Batch(streams_here)

            batch = _Batch(streams_here)
            for video in tqdm(sorted(readers["labels"].videos), desc="align", unit="video"):
                labels, words = readers["labels"].read(video), readers["words"].read(video)
                streams = {}
                for name in streams_here:
                    streams[name] = readers[name].read(video)
                    nonfinite[name] += _clean(streams[name])
                    values[name] += int(streams[name]["features"].size)
                signature = _signature(words, streams, labels)
                if batch.names and signature != batch.signature:
                    batch = flush(batch)
                batch.add(video, words, streams, labels)
                batch.signature = signature
                if batch.full() or signature[-1]:
                    batch = flush(batch)
            flush(batch)
            problems.raise_first()
            if dropped:
                log.warning("%d labelled video(s) have no word longer than %g s and are left out, as the SDK does: "
                            "%s", len(dropped), EPSILON, dropped[:5])
            for name, count in nonfinite.items():
                log.info("%s: replaced %d non-finite value(s) (-inf/NaN) by 0", readers[name].path, count)
            n_segments = writer.close(attrs(nonfinite, values))
    return n_segments, nonfinite
