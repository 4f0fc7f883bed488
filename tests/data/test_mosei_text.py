"""CMU-MOSEI's text: the labels .csd written from the segment table and read back through the project's .csd
reader, the segments left out (outside the standard set, without a transcript), the transcripts spread over the
written intervals, and the workflow's stages from the tables to an evaluation.

The first tests run on small hand-made tables; those on the genuine files (../shared/data/cmu-real) are skipped,
with the reason, where the folder is absent (a user's machine)."""

import csv
import json
import logging

import h5py
import numpy as np
import pytest

from rider.cli import main
from rider.data.align import align
from rider.data.csd import ROLES, read_metadata, read_sequence
from rider.errors import DataError
from rider.data.fast_align import CsdReader
from rider.data.folds import SPLITS, split_of, standard_folds
from rider.data.segment_labels import read_segment_table, write_segment_labels
from rider.data.transcripts import SHARED_FILES, TranscriptsConfig, read_transcripts, source_files, \
    write_transcript_words

from conftest import REPO, SHARED_REAL

SEGMENT_HEADER = ["video_id", "csd_index", "start", "end", "sentiment", "happy", "std_split", "mmsa_key"]
TEXT_HEADER = ["mmsa_key", "video_id", "csd_index", "std_split", "sentiment", "text", "text_map_method"]
# Three videos, one per fold, and one outside the standard set. Rows are listed out of order, and video "tr" has
# its row 2 earlier in time than its row 0, as in the real label file: the written rows must keep the file's order.
SEGMENTS = [
    ("tr", 2, 1.0, 3.0, -1.5, "train"),
    ("tr", 0, 5.0, 9.0, 2.0, "train"),
    ("tr", 1, 9.5, 12.0, 0.0, "train"),   # no transcript
    ("va", 0, 0.0, 4.0, 0.6667, "valid"),
    ("te", 0, 2.0, 6.0, -3.0, "test"),
    ("te", 1, 5.5, 8.0, 1.0, "test"),     # overlaps row 0 by half a second
    ("xx", 0, 0.0, 2.0, 1.0, ""),         # outside the standard set (its video is in no fold)
]
TEXTS = {("tr", 2): "That was bad.", ("tr", 0): "I liked it a lot", ("va", 0): "not good",
         ("te", 0): "the movie was unbelievable", ("te", 1): "very good plot", ("xx", 0): "left out anyway"}
FOLDS = {"train": ["tr"], "valid": ["va"], "test": ["te"]}


def write_tables(folder, segments=SEGMENTS, texts=TEXTS, text_labels=None):
    """The two tables in the layout of mosei_segments.csv and mosei_text.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    label_of = {(video, row): label for video, row, _, _, label, _ in segments}
    with open(folder / "segments.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SEGMENT_HEADER)
        for video, row, start, end, label, split in segments:
            writer.writerow([video, row, start, end, label, 0.0, split, f"{video}_{row + 10}" if split else ""])
    with open(folder / "text.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TEXT_HEADER)
        for (video, row), text in texts.items():
            label = (text_labels or {}).get((video, row), label_of[(video, row)])
            writer.writerow([f"{video}_{row + 10}", video, row, "", label, text, "order_equal"])
    return folder / "segments.csv", folder / "text.csv"


@pytest.fixture
def written(tmp_path, caplog):
    segment_table, text_table = write_tables(tmp_path / "tables")
    out = {"labels": tmp_path / "labels.csd", "transcripts": tmp_path / "transcripts.csv"}
    with caplog.at_level(logging.INFO, logger="rider.data.segment_labels"):
        counts = write_segment_labels(segment_table, text_table, FOLDS, out["labels"], out["transcripts"])
    return out, counts, caplog.text


def test_the_labels_read_back_through_the_csd_reader(written):
    out, _, _ = written
    labels = read_sequence(out["labels"], ROLES["labels"])
    assert sorted(labels) == ["te", "tr", "va"]  # grouped by video; "xx" is outside the standard set
    # Video "tr": rows 0 and 2 of the table, in the label file's order (row 0 first, though it is later in time).
    np.testing.assert_allclose(labels["tr"]["intervals"], [[5.0, 9.0], [1.0, 3.0]])
    np.testing.assert_allclose(labels["tr"]["features"], [[2.0], [-1.5]])
    np.testing.assert_allclose(labels["te"]["intervals"], [[2.0, 6.0], [5.5, 8.0]])
    np.testing.assert_allclose(labels["te"]["features"], [[-3.0], [1.0]])
    np.testing.assert_allclose(labels["va"]["features"], [[0.6667]], rtol=1e-6)
    assert read_metadata(out["labels"])["dataset name"] == "CMU-MOSEI"
    with CsdReader(out["labels"], ROLES["labels"]) as reader:  # the align stage's reader agrees
        np.testing.assert_array_equal(reader.read("tr")["intervals"], labels["tr"]["intervals"])


def test_segments_left_out_are_counted_and_logged(written):
    out, counts, log = written
    assert counts["rows"] == len(SEGMENTS) and counts["outside_standard"] == 1
    assert counts["no_transcript"] == {"train": 1}
    assert counts["kept"] == {"train": 2, "valid": 1, "test": 2}
    assert "1 standard segment(s) have no transcript" in log and "train 1, valid 0, test 0" in log
    assert "1 outside the standard segment set" in log
    # The transcript table is keyed by the written rows and traces each back to the table's row and key.
    table = read_transcripts(out["transcripts"])
    assert sorted(table) == [("te", 0), ("te", 1), ("tr", 0), ("tr", 1), ("va", 0)]
    assert table[("tr", 1)]["words"] == "That was bad.".split() and table[("tr", 1)]["start"] == 1.0
    with open(out["transcripts"], newline="") as handle:
        rows = {(r["video_id"], r["csd_index"]): r for r in csv.DictReader(handle)}
    assert rows[("tr", "1")]["source_csd_index"] == "2" and rows[("tr", "1")]["segment_key"] == "tr_12"
    assert rows[("te", "1")]["split"] == "test"


def test_the_transcribe_stage_spreads_the_words_over_the_written_intervals(written, tmp_path):
    out, _, _ = written
    counts = write_transcript_words(out["labels"], out["transcripts"], tmp_path / "words.csd")
    assert counts["segments"] == 5 and counts["words"] == sum(len(TEXTS[k].split()) for k in TEXTS if k[0] != "xx")
    assert counts["overlapping"] == 2  # te rows 0 and 1 each keep the part the other does not cover
    words = read_sequence(tmp_path / "words.csd", ROLES["words"])
    tokens = [w[0].decode() for w in words["tr"]["features"]]
    assert tokens == "That was bad. I liked it a lot".split()  # in time order: row 2 of the table comes first
    assert words["tr"]["intervals"].min() == 1.0 and words["tr"]["intervals"].max() == 9.0
    assert read_metadata(tmp_path / "words.csd")["dataset name"] == "CMU-MOSEI"  # the label file's dataset
    aligned = tmp_path / "aligned.h5"
    summary = align({"words": tmp_path / "words.csd", "labels": out["labels"]}, aligned,
                    config={"modalities": ["text"]})
    assert summary["segments"] == 5
    with h5py.File(aligned) as handle:
        keys = handle["segments/key"].asstr()[:].tolist()
        offset = handle["segments/offset"][:]
        segment_words = handle["words/word"].asstr()[:]
    te1 = keys.index("te[1]")
    assert segment_words[offset[te1]:offset[te1 + 1]].tolist() == ["very", "good", "plot"]  # its own words only


def test_a_split_that_disagrees_with_the_folds_stops_the_stage(tmp_path):
    segment_table, text_table = write_tables(tmp_path)
    with pytest.raises(DataError, match=r"segments\.csv: line 5: segment va\[0\] is in the standard valid split, "
                                        r"but its video is in the test fold"):
        write_segment_labels(segment_table, text_table, {**FOLDS, "valid": [], "test": ["te", "va"]},
                             tmp_path / "l.csd", tmp_path / "t.csv")


def test_a_transcript_with_another_label_stops_the_stage(tmp_path):
    segment_table, text_table = write_tables(tmp_path, text_labels={("te", 1): -1.0})
    with pytest.raises(DataError, match=r"line 6 gives segment te\[1\] sentiment -1\.0, the segment table 1\.0"):
        write_segment_labels(segment_table, text_table, FOLDS, tmp_path / "l.csd", tmp_path / "t.csv")
    assert not (tmp_path / "l.csd").exists()


def test_bad_tables_are_named_with_the_field(tmp_path):
    segment_table, _ = write_tables(tmp_path)
    rows = segment_table.read_text().splitlines()
    segment_table.write_text("\n".join([rows[0].replace("std_split", "split"), *rows[1:]]))
    with pytest.raises(DataError, match=r"segments\.csv: lacks the column\(s\) \['std_split'\]"):
        read_segment_table(segment_table)
    write_tables(tmp_path, segments=[("tr", 0, 1.0, 2.0, 3.5, "train")], texts={})
    with pytest.raises(DataError, match=r"line 2: segment tr\[0\] has label 3\.5"):
        read_segment_table(segment_table)
    write_tables(tmp_path, segments=[("tr", 0, 1.0, 2.0, 1.0, "dev")], texts={})
    with pytest.raises(DataError, match="field 'std_split' is 'dev'"):
        read_segment_table(segment_table)
    write_tables(tmp_path, segments=[("tr", 0, 1.0, 2.0, 1.0, "train"), ("tr", 0, 3.0, 4.0, 1.0, "train")], texts={})
    with pytest.raises(DataError, match=r"segments\.csv: line 3: segment tr\[0\] is also on line 2"):
        read_segment_table(segment_table)


def test_the_labels_command_stops_with_one_line(tmp_path, capsys):
    segment_table, text_table = write_tables(tmp_path)
    text_table.write_text(text_table.read_text().replace("sentiment", "score", 1))
    code = main(["labels", "--segment-table", str(segment_table), "--text-table", str(text_table), "--folds", "mosei",
                 "--labels-out", str(tmp_path / "l.csd"), "--transcripts-out", str(tmp_path / "t.csv")])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (f"rider labels: error: {text_table}: lacks the column(s) "
                                                        "['sentiment']")


def test_the_mosei_files_are_found_in_the_shared_folder():
    files = source_files(TranscriptsConfig(dataset="mosei"), REPO)
    assert files == {"segment_table": SHARED_REAL.resolve() / "mosei_segments.csv",
                     "text_table": SHARED_REAL.resolve() / "mosei_text.csv"}


# --- the genuine files ------------------------------------------------------------------------------------------

SEGMENT_TABLE = SHARED_REAL / SHARED_FILES["mosei"]["segment_table"]
TEXT_TABLE = SHARED_REAL / SHARED_FILES["mosei"]["text_table"]
real = pytest.mark.skipif(
    not SEGMENT_TABLE.is_file() or not TEXT_TABLE.is_file(),
    reason=f"the genuine CMU-MOSEI tables are not in {SHARED_REAL} (only CI and the team's machines have them)",
)
# The standard CMU-MOSEI set (the field's aligned 50-word setting) and how many of it have a transcript (README of
# the shared folder: 22,774 of the 22,856; the reference ridge: 4,650 test segments).
STANDARD = {"train": 16326, "valid": 1871, "test": 4659}
WITH_TRANSCRIPT, TEST_WITH_TRANSCRIPT = 22774, 4650


def independent_counts(folder=SHARED_REAL):
    """Standard segments per split, and those with a non-empty transcript, read with the csv module alone."""
    with open(folder / SHARED_FILES["mosei"]["segment_table"], newline="") as handle:
        standard = [(r["video_id"], r["csd_index"], r["std_split"]) for r in csv.DictReader(handle) if r["std_split"]]
    with open(folder / SHARED_FILES["mosei"]["text_table"], newline="") as handle:
        texts = {(r["video_id"], r["csd_index"]) for r in csv.DictReader(handle) if r["text"].strip()}
    total = {split: sum(s == split for *_, s in standard) for split in SPLITS}
    transcribed = {split: sum(s == split and (v, i) in texts for v, i, s in standard) for split in SPLITS}
    return total, transcribed


@real
def test_the_sdk_folds_split_the_standard_set_into_its_published_sizes():
    """The cache applies the SDK's standard folds; on the standard segments they give 16,326 / 1,871 / 4,659, the
    table's own split column agrees, and the shared folds file is the SDK's less one train video."""
    owner = split_of(standard_folds("mosei"))
    standard = [s for s in read_segment_table(SEGMENT_TABLE) if s.split]
    assert {split: sum(owner.get(s.video) == split for s in standard) for split in SPLITS} == STANDARD
    assert all(owner[s.video] == s.split for s in standard)
    shared = json.loads((SHARED_REAL / "mosei_standard_folds.json").read_text())
    sdk = standard_folds("mosei")
    differ = {split: sorted(set(sdk[split]) ^ set(shared[split])) for split in SPLITS}
    assert differ == {"train": ["-NFrJFQijFE"], "valid": [], "test": []}  # 4 standard train segments


@real
def test_the_full_mosei_counts_from_the_tables_to_the_aligned_segments(tmp_path):
    total, transcribed = independent_counts()
    assert total == STANDARD
    assert sum(transcribed.values()) == WITH_TRANSCRIPT and transcribed["test"] == TEST_WITH_TRANSCRIPT
    paths = {name: tmp_path / name for name in ("labels.csd", "transcripts.csv", "words.csd", "aligned.h5")}
    counts = write_segment_labels(SEGMENT_TABLE, TEXT_TABLE, standard_folds("mosei"), paths["labels.csd"],
                                  paths["transcripts.csv"])
    assert counts["kept"] == transcribed
    assert {s: counts["kept"][s] + counts["no_transcript"].get(s, 0) for s in SPLITS} == STANDARD
    assert counts["rows"] - counts["outside_standard"] == sum(STANDARD.values())
    words = write_transcript_words(paths["labels.csd"], paths["transcripts.csv"], paths["words.csd"])
    assert words["segments"] == WITH_TRANSCRIPT and words["zero_length"] == 0
    summary = align({"words": paths["words.csd"], "labels": paths["labels.csd"]}, paths["aligned.h5"],
                    config={"modalities": ["text"]})
    assert summary["segments"] == WITH_TRANSCRIPT  # every written segment keeps its words through the alignment
    with h5py.File(paths["aligned.h5"]) as handle:
        videos = handle["segments/video"].asstr()[:]
    owner = split_of(standard_folds("mosei"))
    assert {split: int(sum(owner[v] == split for v in videos)) for split in SPLITS} == transcribed


@real
@pytest.mark.slow
def test_the_workflow_runs_a_subset_from_the_tables_to_an_evaluation(tmp_path):
    """`snakemake` on a few videos per fold (a subset of the genuine tables, a tiny BERT, one epoch): the labels,
    transcribe, align, cache, plan, train and evaluate stages, as `configs/mosei-text.yaml` chains them."""
    pytest.importorskip("transformers", reason="BERT text features need transformers (rider[text])")
    from snakemake_runs import snakemake
    from tiny_bert import build_tiny_bert

    folds = standard_folds("mosei")
    chosen = {video for split in SPLITS for video in sorted(folds[split])[:3]}
    subset = tmp_path / "subset"
    subset.mkdir()
    for name in ("segment_table", "text_table"):
        lines = (SHARED_REAL / SHARED_FILES["mosei"][name]).read_text(encoding="utf-8").splitlines(keepends=True)
        rows = list(csv.DictReader(lines))
        keep = [line for line, row in zip(lines[1:], rows) if row["video_id"] in chosen]
        (subset / SHARED_FILES["mosei"][name]).write_text(lines[0] + "".join(keep), encoding="utf-8")
    _, transcribed = independent_counts(subset)
    config = {
        "run": {"datasets": ["mosei_text"], "models": ["text_only"], "seeds": [0]},
        "datasets": {"mosei_text": {
            "source": "transcripts", "folds": "mosei", "modalities": ["text"],
            "transcripts": {"folder": str(subset), "dataset": "mosei"},
            "text_encoder": {"model": str(build_tiny_bert(tmp_path / "bert"))},
            "model": {"d_model": 16, "encoder_heads": 2, "expert_ff": 32},
            "train": {"text_feature": "text_bert", "epochs": 1}}},
        "models": {"text_only": {"kind": "text_only"}},
    }
    result = snakemake(tmp_path, "results/mosei_text/text_only/seed0/eval.json", config=config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with h5py.File(tmp_path / "resources/cache/mosei_text.h5") as handle:
        sizes = {split: handle[f"{split}/labels"].shape[0] for split in SPLITS}
    assert sizes == transcribed and all(sizes.values())
    for stage in ("labels", "transcribe", "align", "cache", "plan"):
        assert (tmp_path / f"logs/mosei_text/{stage}.benchmark.tsv").is_file(), stage
    evaluation = json.loads((tmp_path / "results/mosei_text/text_only/seed0/eval.json").read_text())
    assert np.isfinite(evaluation["clean"]["mae"]) and list(evaluation["stress"]) == ["noise"]
