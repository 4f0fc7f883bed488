"""A label sequence written from a segment table: CMU-MOSEI's labels, the standard segments, their transcripts.

CMU-MOSEI's label file cannot be downloaded here, but its content is in the shared folder as tables:
``mosei_segments.csv`` holds every row of the label file (video, row ``csd_index``, segment start and end, the
sentiment) and marks the standard segment set (``std_split``: train/valid/test, empty outside it);
``mosei_text.csv`` holds a transcript per segment, keyed by (video, row). This stage writes what a download
would give the later stages:

- a labels ``.csd`` in the SDK's layout (per video ``intervals`` (n, 2) and ``features`` (n, 1) sentiment, rows
  in the label file's order), holding the standard segments that have a transcript, and
- a transcript table in the layout the transcribe stage reads (``rider.data.transcripts``: video_id, csd_index,
  start, end, label, text, text_wordaligned), keyed by the written file's rows, with the table's own row, segment
  key and split beside them.

The transcribe stage then reads the labels back through the same .csd reader as a downloaded file, checks every
transcript's times and label against them, and spreads its words over the interval, as for MOSI.

Segments are left out for two reasons, each counted per split and logged, never silently: outside the standard
set (rows of videos in no standard fold, and a few the standard set drops), and without a transcript. The split
column must agree with the SDK's standard folds that the cache stage applies (``rider.data.folds``), so the
splits the cache builds are the standard set's. A segment's id in later stages, ``<video>[<k>]``, is its row k
in the written labels file; the transcript table maps it back to the table's row and segment key.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from rider.atomic import atomic_path
from rider.data.csd import Entries, write_sequence
from rider.errors import DataError
from rider.data.folds import SPLITS, split_of
from rider.data.transcripts import read_keyed_table

log = logging.getLogger(__name__)

SEGMENT_COLUMNS = ("video_id", "csd_index", "start", "end", "sentiment", "std_split")
TEXT_COLUMNS = ("video_id", "csd_index", "sentiment", "text")
# Written for the transcribe stage (its required columns first), then what traces a row back to the tables.
TRANSCRIPT_COLUMNS = ("video_id", "csd_index", "start", "end", "label", "text", "text_wordaligned",
                      "source_csd_index", "segment_key", "split", "text_map_method")
_LABEL_TOLERANCE = 1e-4  # the two tables print the same sentiment with 6 decimals

METADATA = {
    "computational sequence description": "sentiment in [-3, 3] of the standard CMU-MOSEI segments that have a "
                                          "transcript, written from the segment table (the label file's rows)",
    "computational sequence version": "1.0",
    "alignment compatible": "true",
    "dataset name": "CMU-MOSEI",
    "dataset version": "1.0",
    "creator": "rider labels stage",
    "contact": "see README",
    "featureset bib citation": "none (the label file's sentiment column)",
    "dataset bib citation": "Zadeh et al., Multimodal language analysis in the wild: CMU-MOSEI dataset and "
                            "interpretable dynamic fusion graph, ACL 2018",
}


@dataclass(frozen=True)
class Segment:
    """One row of the label file, as the segment table gives it."""

    video: str
    row: int             # csd_index: the row in the original label file's video
    start: float
    end: float
    label: float
    split: str           # train | valid | test; "" outside the standard set
    key: str             # the table's segment key (mmsa_key), "" outside the standard set
    line: int            # line in the segment table, for messages


def _segment(row: dict[str, str], line: int) -> Segment:
    segment = Segment(row["video_id"], int(row["csd_index"]), float(row["start"]), float(row["end"]),
                      float(row["sentiment"]), row["std_split"], row.get("mmsa_key", ""), line)
    if segment.split not in ("", *SPLITS):
        raise ValueError(f"field 'std_split' is {segment.split!r}, expected one of {list(SPLITS)} or empty (outside "
                         "the standard set)")
    if not -3.0 <= segment.label <= 3.0 or not segment.start <= segment.end:
        raise ValueError(f"segment {segment.video}[{segment.row}] has label {segment.label} and interval "
                         f"[{segment.start}, {segment.end}]: expected a label in [-3, 3] and start <= end")
    return segment


def read_segment_table(path: str | os.PathLike) -> list[Segment]:
    """Every row of the segment table, in its order, checked: a known split, a label in [-3, 3], start <= end."""
    return list(read_keyed_table(path, SEGMENT_COLUMNS, _segment, "segment table").values())


def read_text_table(path: str | os.PathLike) -> dict[tuple[str, int], dict]:
    """The transcripts keyed by (video, row in the label file)."""
    return read_keyed_table(path, TEXT_COLUMNS, lambda row, line: {
        "label": float(row["sentiment"]), "text": row["text"].strip(), "method": row.get("text_map_method", ""),
        "line": line}, "transcript table")


def select_segments(segments: list[Segment], texts: Mapping[tuple[str, int], dict],
                    folds: Mapping[str, list[str]], where: str = "") -> tuple[list[tuple[Segment, dict]], dict]:
    """The standard segments that have a transcript, with it; and the counts of those left out, per split.

    Every standard segment's split must be its video's fold in ``folds`` (what the cache will apply), and a
    transcript's sentiment must be its segment's.
    """
    owner = split_of(folds)
    kept = []
    counts = {"rows": len(segments), "outside_standard": 0, "outside_standard_in_folds": 0,
              "no_transcript": Counter(), "kept": Counter(), "uncertain_text": 0}
    for segment in segments:
        if not segment.split:
            counts["outside_standard"] += 1
            counts["outside_standard_in_folds"] += segment.video in owner
            continue
        if owner.get(segment.video) != segment.split:
            raise DataError(f"{where}: line {segment.line}: segment {segment.video}[{segment.row}] is in the "
                            f"standard {segment.split} split, but its video is in the "
                            f"{owner.get(segment.video, 'no')} fold of the standard folds")
        text = texts.get((segment.video, segment.row))
        if text is None or not text["text"]:
            counts["no_transcript"][segment.split] += 1
            continue
        if abs(text["label"] - segment.label) > _LABEL_TOLERANCE:
            raise DataError(f"{where}: the transcript table's line {text['line']} gives segment "
                            f"{segment.video}[{segment.row}] sentiment {text['label']}, the segment table "
                            f"{segment.label} (line {segment.line})")
        counts["uncertain_text"] += text["method"] == "greedy"  # matched to its segment less certainly
        counts["kept"][segment.split] += 1
        kept.append((segment, text))
    return kept, {name: dict(value) if isinstance(value, Counter) else value for name, value in counts.items()}


def label_entries(kept: list[tuple[Segment, dict]]) -> tuple[Entries, list[dict]]:
    """The labels sequence (per video, rows in the label file's order) and its transcript table rows."""
    by_video: dict[str, list[tuple[Segment, dict]]] = {}
    for segment, text in sorted(kept, key=lambda pair: (pair[0].video, pair[0].row)):
        by_video.setdefault(segment.video, []).append((segment, text))
    entries: Entries = {}
    table = []
    for video, pairs in by_video.items():
        entries[video] = {
            "intervals": np.array([[s.start, s.end] for s, _ in pairs], dtype=np.float64),  # (n, 2)
            "features": np.array([[s.label] for s, _ in pairs], dtype=np.float32),  # (n, 1)
        }
        for k, (segment, text) in enumerate(pairs):
            table.append({"video_id": video, "csd_index": k, "start": repr(segment.start), "end": repr(segment.end),
                          "label": repr(segment.label), "text": text["text"], "text_wordaligned": text["text"],
                          "source_csd_index": segment.row, "segment_key": segment.key, "split": segment.split,
                          "text_map_method": text["method"]})
    return entries, table


def write_segment_labels(segment_table: str | os.PathLike, text_table: str | os.PathLike,
                         folds: Mapping[str, list[str]], labels_out: str | os.PathLike,
                         transcripts_out: str | os.PathLike) -> dict:
    """The labels stage: write the labels .csd and the transcript table the transcribe stage reads."""
    kept, counts = select_segments(read_segment_table(segment_table), read_text_table(text_table), folds,
                                   where=str(segment_table))
    if not kept:
        raise DataError(f"{segment_table}: no standard segment has a transcript in {text_table}")
    entries, table = label_entries(kept)
    write_sequence(labels_out, "labels", entries, METADATA)
    with atomic_path(transcripts_out, suffix=".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TRANSCRIPT_COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    missing = counts["no_transcript"]
    log.info("%s: %d rows; %d outside the standard segment set left out (%d of them in videos of the standard "
             "folds)", segment_table, counts["rows"], counts["outside_standard"], counts["outside_standard_in_folds"])
    if missing:
        log.warning("%s: %d standard segment(s) have no transcript in %s and are left out (%s)", segment_table,
                    sum(missing.values()), text_table,
                    ", ".join(f"{split} {missing.get(split, 0)}" for split in SPLITS))
    log.info("%s: %d segments of %d videos (%s); %d transcript(s) matched to their segment less certainly "
             "(text_map_method greedy)", labels_out, len(table), len(entries),
             ", ".join(f"{split} {counts['kept'].get(split, 0)}" for split in SPLITS), counts["uncertain_text"])
    return counts
