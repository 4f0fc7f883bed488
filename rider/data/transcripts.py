"""The ``transcripts`` source: a words sequence built from real segment transcripts and the genuine label file.

The genuine CMU-MOSI label file (``CMU_MOSI_Opinion_Labels.csd``) gives every segment's interval and sentiment;
a transcript table (``mosi_segments.csv``: video_id, csd_index, start, end, label, text, text_wordaligned) gives
its words. Word-level timestamps are not available, so each segment's words are spread evenly, in order, over
its real interval, and written as a words ``.csd`` in the SDK's layout. The label file itself is never copied
or rewritten: the align stage reads it from where it lies, through the same code as a downloaded one, and the
text-only dataset then runs through the same stages as any other (align, cache, train, evaluate).

Where segments of a video overlap (179 of MOSI's 2,199, by up to a second), the words go into the part of the
interval no other segment covers, so that alignment, which gives a segment every word inside its interval,
hands each segment its own words only. A segment that others cover entirely (11 in MOSI, two of them exact
duplicates) has no such part: its words spread over its whole interval, and alignment shares them with the
segments covering it, as it would real timestamped words. Both counts are logged.

Four MOSI segments have an empty ``text_wordaligned``; they take the words of their raw transcript (``text``,
lower-cased). One of them (2WGyTLYerpo, row 43) has a zero-length interval: the alignment leaves it out, as
the SDK does for any segment shorter than its ε, so MOSI's train fold holds 1,283 segments here, not 1,284.

CMU-MOSEI's label file is not available, only its content as a segment table: there the labels stage
(``rider.data.segment_labels``) first writes a labels ``.csd`` and a transcript table in this module's layout,
and this stage reads them exactly as MOSI's.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from rider.data.csd import ROLES, Entries, read_metadata, read_sequence, write_sequence
from rider.errors import DataError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Each dataset's genuine files in the shared folder. MOSI has its label file and a transcript table keyed by its
# rows (the transcribe stage reads both); MOSEI has a segment table holding its label file's rows and a table of
# transcripts (the labels stage writes the other two from them).
SHARED_FILES = {
    "mosi": {"labels": "CMU_MOSI_Opinion_Labels.csd", "segments": "mosi_segments.csv"},
    "mosei": {"segment_table": "mosei_segments.csv", "text_table": "mosei_text.csv"},
}
# The shared folder beside the repository (``<repo>/../shared/data/cmu-real``) holds the genuine files.
DEFAULT_FOLDER = Path("..") / "shared" / "data" / "cmu-real"
_COLUMNS = ("video_id", "csd_index", "start", "end", "label", "text", "text_wordaligned")
_TIME_TOLERANCE = 1e-3   # s: the table's times are the label file's, printed with 4 decimals
_LABEL_TOLERANCE = 1e-4


@dataclass(frozen=True)
class TranscriptsConfig:
    folder: str | None = None   # None: <repository>/../shared/data/cmu-real; relative: to the repository
    dataset: str = "mosi"       # which dataset's files of the folder (SHARED_FILES)


def default_folder(repository: str | os.PathLike) -> Path:
    return (Path(repository) / DEFAULT_FOLDER).resolve()


def source_files(config: TranscriptsConfig, repository: str | os.PathLike) -> dict[str, Path]:
    """The dataset's genuine files (SHARED_FILES) where they lie; relative folders are taken from the repository."""
    if config.dataset not in SHARED_FILES:
        raise ValueError(f"transcripts.dataset = {config.dataset!r}: expected one of {sorted(SHARED_FILES)}")
    if config.folder is None:
        folder = default_folder(repository)
    else:
        folder = Path(repository) / Path(config.folder).expanduser()  # an absolute folder stays as it is
    return {role: folder / name for role, name in SHARED_FILES[config.dataset].items()}


def labels_from_table(config: TranscriptsConfig) -> bool:
    """Whether the labels stage writes the dataset's label file from its segment table (MOSEI) first."""
    return "labels" not in SHARED_FILES[config.dataset]


def read_keyed_table(path: str | os.PathLike, columns: tuple[str, ...],
                     parse: Callable[[dict[str, str], int], T], what: str) -> dict[tuple[str, int], T]:
    """A CSV table keyed by (video_id, csd_index), each row through ``parse(row, line)``, in the file's order.

    A missing column, a value ``parse`` rejects (ValueError) or a key twice stops with the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or ())]
        if missing:
            raise DataError(f"{path}: lacks the column(s) {missing}")
        table, lines = {}, {}
        for line, row in enumerate(reader, start=2):
            try:
                key = (row["video_id"], int(row["csd_index"]))
                parsed = parse(row, line)
            except ValueError as err:
                raise DataError(f"{path}: line {line}: {err}") from None
            if key in table:
                raise DataError(f"{path}: line {line}: segment {key[0]}[{key[1]}] is also on line {lines[key]}")
            table[key], lines[key] = parsed, line
    return table


def read_transcripts(path: str | os.PathLike) -> dict[tuple[str, int], dict]:
    """The transcript table keyed by (video, row in the label file)."""
    return read_keyed_table(path, _COLUMNS, lambda row, line: {
        "start": float(row["start"]), "end": float(row["end"]), "label": float(row["label"]), "text": row["text"],
        "words": row["text_wordaligned"].split(), "line": line}, "transcript table")


def _exclusive_part(intervals: np.ndarray, k: int) -> tuple[float, float] | None:
    """The longest piece of interval k that no other interval covers; None if there is none."""
    pieces = [(float(intervals[k, 0]), float(intervals[k, 1]))]
    for j, (start, end) in enumerate(intervals.astype(np.float64)):
        if j == k:
            continue
        kept = []
        for a, b in pieces:
            if end <= a or start >= b:
                kept.append((a, b))
                continue
            if start > a:
                kept.append((a, start))
            if end < b:
                kept.append((end, b))
        pieces = kept
    pieces = [(a, b) for a, b in pieces if b > a]
    return max(pieces, key=lambda p: p[1] - p[0]) if pieces else None


def spread(words: list[str], start: float, end: float) -> np.ndarray:
    """(n, 2) intervals splitting [start, end] into n equal, consecutive pieces, in the words' order."""
    bounds = np.linspace(start, end, len(words) + 1)
    return np.stack([bounds[:-1], bounds[1:]], axis=1)


def transcript_words(labels: Entries, table: dict[tuple[str, int], dict], where: str = "") -> tuple[Entries, dict]:
    """The words sequence: per video, every segment's words spread over its interval; returns (entries, counts)."""
    counts = {"segments": 0, "words": 0, "raw_text": 0, "overlapping": 0, "covered": 0, "zero_length": 0}
    unused = set(table)
    words_out: Entries = {}
    for video in sorted(labels):
        intervals = labels[video]["intervals"]
        rows = []
        for k in range(len(intervals)):
            key = (video, k)
            if key not in table:
                raise DataError(f"{where}: no transcript for segment {video}[{k}] of the label file")
            unused.discard(key)
            row = table[key]
            start, end = (float(x) for x in intervals[k])
            if abs(row["start"] - start) > _TIME_TOLERANCE or abs(row["end"] - end) > _TIME_TOLERANCE:
                raise DataError(f"{where}: line {row['line']}: segment {video}[{k}] spans [{row['start']}, "
                                f"{row['end']}], the label file [{start}, {end}]")
            label = float(labels[video]["features"][k, 0])
            if abs(row["label"] - label) > _LABEL_TOLERANCE:
                raise DataError(f"{where}: line {row['line']}: segment {video}[{k}] has label {row['label']}, "
                                f"the label file {label}")
            words = row["words"]
            if not words:  # an empty word-aligned transcript: the raw one, lower-cased
                words = row["text"].lower().split()
                counts["raw_text"] += 1
            if not words:
                raise DataError(f"{where}: line {row['line']}: segment {video}[{k}] has no words at all")
            if end - start <= 0:
                counts["zero_length"] += 1
                part = (start, end)
            else:
                part = _exclusive_part(intervals, k)
                if part is None:
                    counts["covered"] += 1
                    part = (start, end)
                elif part != (start, end):
                    counts["overlapping"] += 1
            rows.append((spread(words, *part), words))
            counts["segments"] += 1
            counts["words"] += len(words)
        times = np.concatenate([t for t, _ in rows])
        tokens = [w for _, ws in rows for w in ws]
        order = np.argsort(times[:, 0], kind="stable")
        words_out[video] = {"intervals": times[order],
                            "features": np.array([[tokens[i].encode("utf-8")] for i in order])}
    if unused:
        example = sorted(unused)[0]
        log.warning("%s: %d transcript row(s) match no segment of the label file, e.g. %s[%d]", where, len(unused),
                    *example)
    return words_out, counts


METADATA = {
    "computational sequence description": "words of each segment's transcript, spread evenly over its labelled "
                                          "interval (no word-level timestamps)",
    "computational sequence version": "1.0",
    "alignment compatible": "true",
    "creator": "rider transcripts source",
    "contact": "see README",
    "featureset bib citation": "none (transcripts spread over the segment intervals)",
}
# The words are of the label file's dataset: these keys are copied from its metadata.
DATASET_KEYS = ("dataset name", "dataset version", "dataset bib citation")


def write_transcript_words(labels_path: str | os.PathLike, segments_path: str | os.PathLike,
                           out_path: str | os.PathLike) -> dict:
    """The transcribe stage: read the label .csd (genuine, or the labels stage's) as the align stage does, and the
    transcript table; write words.csd."""
    labels = read_sequence(labels_path, ROLES["labels"])
    entries, counts = transcript_words(labels, read_transcripts(segments_path), where=str(segments_path))
    dataset = read_metadata(labels_path)
    missing = [key for key in DATASET_KEYS if key not in dataset]
    if missing:
        raise DataError(f"{labels_path}: metadata lacks {missing}, which the words sequence copies")
    write_sequence(out_path, "words", entries, {**METADATA, **{key: dataset[key] for key in DATASET_KEYS}})
    log.info("%s: %d segments of %d videos, %d words; %d from the raw transcript (no word-aligned text); "
             "%d spread over the part no other segment covers, %d over a whole interval that others cover; "
             "%d with a zero-length interval (left out by the alignment)", out_path, counts["segments"],
             len(entries), counts["words"], counts["raw_text"], counts["overlapping"], counts["covered"],
             counts["zero_length"])
    return counts
