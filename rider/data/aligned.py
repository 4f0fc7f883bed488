"""The aligned file: every stream averaged over each word's interval, words grouped per labelled segment, in one
ragged HDF5 layout that both aligners (``rider.data.align``: the SDK's; ``rider.data.fast_align``: ours) write
through ``AlignedWriter`` and the cache stage reads.

Output layout (``ALIGNED_SCHEMA_VERSION``)::

    /segments/key      (S,)   str    SDK segment key "<video>[<i>]", i = the segment's row in the label file
    /segments/video    (S,)   str
    /segments/interval (S, 2) float64 seconds
    /segments/label    (S,)   float32
    /segments/offset   (S+1,) int64  word rows of segment k are offset[k]:offset[k+1]
    /words/word        (W,)   str
    /words/interval    (W, 2) float64 the word's interval clipped to its segment
    /audio             (W, Da) float32   mean of the frames inside each word (when the dataset has audio); Da is
                                         the audio file's width: 74 for the paper's COVAREP
    /vision            (W, Dv) float32   (when the dataset has vision); 35 for the paper's Facet
    /glove_vectors     (W, 300) float32  the SDK's GloVe vector of each word (when given)
    attrs: schema_version, aligner, streams (JSON list of the streams above), nonfinite (JSON counts per stream),
           values (JSON: feature values read per stream, so that the cache stage can judge the non-finite share),
           provenance (JSON)
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import h5py
import numpy as np

from rider.errors import DataError

ALIGNED_SCHEMA_VERSION = 1
STREAMS = ("audio", "vision", "glove_vectors")  # the streams a dataset may have, aligned to its words in this order
SEGMENT_KEY = re.compile(r"^(?P<video>.+)\[(?P<index>\d+)\]$")


def streams_of(paths: Mapping[str, object]) -> tuple[str, ...]:
    """The streams among ``paths`` (or any mapping keyed by role), in ``STREAMS`` order."""
    return tuple(stream for stream in STREAMS if stream in paths)


# The two ways an alignment can come out unusable; both aligners raise exactly these messages.
def missing_rows_error(stream: str, absent: Sequence[str]) -> DataError:
    return DataError(f"{len(absent)} labelled segment(s) have no {stream} after alignment, e.g. {list(absent[:3])}")


def row_count_error(key: str, stream: str, rows: int, word_rows: int) -> DataError:
    return DataError(f"segment {key}: {stream} has {rows} rows after alignment, words have {word_rows}")


class AlignedWriter:
    """Appends segments to the ragged layout in an open HDF5 file, buffering ``flush_rows`` word rows at a time.

    Both aligners write through it: the SDK path in one call, the fast path one batch of videos at a time.
    """

    def __init__(self, handle: h5py.File, flush_rows: int = 1 << 14, *, streams: Mapping[str, int]):
        """``streams``: the width of each stream the file holds (audio, vision: their recipe's)."""
        string = h5py.string_dtype()
        layout = {  # name: (row shape, dtype)
            "segments/key": ((), string),
            "segments/video": ((), string),
            "segments/interval": ((2,), np.float64),
            "segments/label": ((), np.float32),
            "words/word": ((), string),
            "words/interval": ((2,), np.float64),
            **{stream: ((width,), np.float32) for stream, width in streams.items()},
        }
        self._handle = handle
        self._datasets = {}
        # Not compressed: gzip saved 7% on the synthetic features at about 30 MB/s, the slowest step of the fast
        # aligner; this file is an intermediate and the cache stage compresses its own arrays.
        for name, (shape, dtype) in layout.items():
            chunk = 1 << 12 if name.startswith("segments/") else 1 << 13
            self._datasets[name] = handle.create_dataset(
                name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=(chunk, *shape))
        self._buffer: dict[str, list] = {name: [] for name in layout}
        self._buffered_rows = 0
        self._flush_rows = flush_rows
        self._offset = [0]
        self.segments = 0

    def append(self, keys: Sequence[str], intervals: np.ndarray, labels: np.ndarray, rows: np.ndarray,
               words: np.ndarray, word_intervals: np.ndarray, streams: Mapping[str, np.ndarray]) -> None:
        """Add segments ``keys`` (in output order); segment k owns the next ``rows[k]`` word rows."""
        rows = np.asarray(rows, dtype=np.int64)
        total = int(rows.sum())
        for name, block in (("words/word", words), ("words/interval", word_intervals), *streams.items()):
            if len(block) != total:
                raise ValueError(f"{name}: {len(block)} rows for segments holding {total} words")
        words = np.array([w.decode() if isinstance(w, bytes) else str(w) for w in words], dtype=object)
        videos = np.array([SEGMENT_KEY.match(k)["video"] for k in keys], dtype=object)
        parts = {
            "segments/key": np.array(keys, dtype=object), "segments/video": videos,
            "segments/interval": intervals, "segments/label": labels,
            "words/word": words, "words/interval": word_intervals, **streams,
        }
        for name, block in parts.items():
            self._buffer[name].append(block)
        self._offset.extend((self._offset[-1] + np.cumsum(rows)).tolist())
        self.segments += len(keys)
        self._buffered_rows += total
        if self._buffered_rows >= self._flush_rows:
            self.flush()

    def flush(self) -> None:
        for name, blocks in self._buffer.items():
            if not blocks:
                continue
            dataset = self._datasets[name]
            data = np.concatenate(blocks)
            start = dataset.shape[0]
            dataset.resize(start + len(data), axis=0)
            dataset[start:] = data.astype(dataset.dtype) if data.dtype.kind != "O" else data
            blocks.clear()
        self._buffered_rows = 0

    def close(self, attrs: Mapping[str, str]) -> int:
        """Write what is buffered, the offsets and the attributes; return the number of segments."""
        self.flush()
        self._handle["segments"].create_dataset("offset", data=np.asarray(self._offset, dtype=np.int64))
        self._handle.attrs["schema_version"] = ALIGNED_SCHEMA_VERSION
        for name, value in attrs.items():
            self._handle.attrs[name] = value
        return self.segments
