"""The fast aligner gives the SDK aligner's file: same segments, word rows and keys, features within 1e-5,
on the tiny synthetic set and on hand-made files holding the SDK's quirks."""

import json

import h5py
import numpy as np
import pytest

from rider.cli import main
from rider.config import validate_config
from rider.data.align import align
from rider.data.csd import write_sequence
from rider.errors import DataError
from rider.data.fast_align import EPSILON, intersect
from rider.data.synthetic import RAW_FILES

from conftest import REPO

TOLERANCE = 1e-5
METADATA = {key: "test" for key in ("computational sequence description", "computational sequence version",
                                    "alignment compatible", "dataset name", "dataset version", "creator",
                                    "contact", "featureset bib citation", "dataset bib citation")}


def read_aligned(path):
    with h5py.File(path) as handle:
        arrays = {}
        handle.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return arrays, dict(handle.attrs)


def assert_same_alignment(sdk_path, fast_path, all_videos_labelled=True):
    (sdk, sdk_attrs), (fast, fast_attrs) = read_aligned(sdk_path), read_aligned(fast_path)
    assert sorted(sdk) == sorted(fast)
    for name in ("segments/key", "segments/video", "segments/offset", "words/word"):
        np.testing.assert_array_equal(sdk[name], fast[name], err_msg=name)
    for name in ("segments/interval", "segments/label", "words/interval"):
        assert sdk[name].dtype == fast[name].dtype, name
        np.testing.assert_array_equal(sdk[name], fast[name], err_msg=name)
    for name in ("audio", "vision"):
        assert sdk[name].shape == fast[name].shape, name
        assert np.abs(sdk[name] - fast[name]).max(initial=0.0) <= TOLERANCE, name
    assert (sdk_attrs["aligner"], fast_attrs["aligner"]) == ("sdk", "fast")
    if all_videos_labelled:  # the fast aligner reads, and so counts in, labelled videos only
        assert json.loads(sdk_attrs["nonfinite"]) == json.loads(fast_attrs["nonfinite"])
    return fast, json.loads(fast_attrs["nonfinite"])


def align_both(raw, folder, all_videos_labelled=True):
    for aligner in ("sdk", "fast"):
        align(raw, folder / f"{aligner}.h5", aligner=aligner)
    return assert_same_alignment(folder / "sdk.h5", folder / "fast.h5", all_videos_labelled)


def test_tiny_dataset(tiny_dataset, tmp_path):
    fast, nonfinite = align_both({role: tiny_dataset[role] for role in RAW_FILES}, tmp_path)
    assert len(fast["segments/key"]) == 88 and nonfinite["audio"] > 0


def frames(start, end, hz, dim, rng):
    times = np.arange(start, end, 1.0 / hz)
    return np.stack([times, times + 1.0 / hz], axis=1), rng.normal(size=(len(times), dim)).astype(np.float32)


def quirky_raw(folder, *, segment_without_words=False, audio_gap_at_boundary=False):
    """Two labelled videos and one unlabelled, built to hit every rule of rider.data.fast_align."""
    rng = np.random.default_rng(0)
    words = {
        "quirk_01": [
            (0.5, 0.8, "first"), (0.9, 1.3, "second"),
            (1.3, 1.3, "zerolength"),           # |end - start| < ε: no row anywhere
            (1.4, 1.4005, "tooshort"),          # also < ε
            (2.0005, 2.3, "touching"),          # touches segment 0's end within ε, clipped to nothing: in no segment
            (3.1, 3.4, "noaudio"),              # in the audio gap below: a zero audio row, real vision
            (4.8, 5.4, "straddling"),           # spans the boundary of segments 1 and 2: in both
            (7.0, 7.3, "later"), (6.5, 6.9, "earlier"),  # out of time order in the file: sorted by start
            (6.2, 6.0, "reversed"),             # end before start: collapsed to [6.0, 6.2]; no frame meets it
            (6.0, 6.4, "tie"),                  # same start as "reversed", but covered: its audio row sorts first
        ],
        "quirk_02": [(0.2, 0.6, "plain"), (0.6, 1.1, "words"), (1.2, 1.9, "here")],
        "quirk_03": [(0.1, 0.5, "unlabelled")],
    }
    labels = {
        "quirk_01": [(0.4, 2.0, 1.0), (2.5, 5.0, -0.4), (5.0, 8.0, 2.2), (8.5, 8.5, 0.0)],  # the last: zero length
        "quirk_02": [(0.0, 2.0, -2.6)],
    }
    if segment_without_words:
        labels["quirk_02"].append((3.0, 3.5, 0.6))
    if audio_gap_at_boundary:  # "straddling" would end inside segment 2 for the words, not for its audio
        words["quirk_01"][6] = (4.0, 5.0015, "straddling")
    audio, vision = {}, {}
    for video in words:
        a_int, a_feat = frames(0.0, 10.0, 100.0, 74, rng)
        keep = ~((a_int[:, 0] >= 3.0) & (a_int[:, 1] <= 3.6))   # no audio frame over "noaudio"
        if audio_gap_at_boundary:
            keep &= ~((a_int[:, 0] >= 5.0) & (a_int[:, 1] <= 6.0))
        a_int, a_feat = a_int[keep], a_feat[keep]
        a_feat[[5, 40, 41], [0, 3, 70]] = [np.nan, -np.inf, np.inf]  # cleaned to 0 and counted, as COVAREP's
        v_int, v_feat = frames(0.0, 10.0, 30.0, 35, rng)
        shuffle = rng.permutation(len(v_int))                     # rows not in time order: the SDK sorts them
        v_int, v_feat = v_int[shuffle], v_feat[shuffle]
        v_feat[7, 2] = np.nan
        audio[video] = {"intervals": a_int, "features": a_feat}
        vision[video] = {"intervals": v_int, "features": v_feat}
    sequences = {
        "words": {v: {"intervals": np.array([w[:2] for w in ws], dtype=np.float64),
                      "features": np.array([[w[2].encode()] for w in ws])} for v, ws in words.items()},
        "audio": audio,
        "vision": vision,
        # float32 label intervals, as in the genuine CMU label file
        "labels": {v: {"intervals": np.array([s[:2] for s in ss], dtype=np.float32),
                       "features": np.array([[s[2]] for s in ss], dtype=np.float32)} for v, ss in labels.items()},
    }
    raw = {}
    for role, entries in sequences.items():
        raw[role] = folder / RAW_FILES[role]
        write_sequence(raw[role], role, entries, METADATA)
    return raw


def test_quirks(tmp_path):
    fast, nonfinite = align_both(quirky_raw(tmp_path), tmp_path, all_videos_labelled=False)
    assert nonfinite == {"audio": 6, "vision": 2}  # three and one in each of the two labelled videos
    keys = fast["segments/key"].astype(str).tolist()
    assert keys == ["quirk_01[0]", "quirk_01[1]", "quirk_01[2]", "quirk_02[0]"]  # zero-length segment dropped
    offset = fast["segments/offset"]
    words = fast["words/word"].astype(str)
    rows = {key: words[offset[k]:offset[k + 1]].tolist() for k, key in enumerate(keys)}
    assert rows["quirk_01[0]"] == ["first", "second"]
    assert rows["quirk_01[1]"] == ["noaudio", "straddling"]
    assert rows["quirk_01[2]"] == ["straddling", "reversed", "tie", "earlier", "later"]
    straddling = np.flatnonzero(words == "straddling")
    np.testing.assert_allclose(fast["words/interval"][straddling], [[4.8, 5.0], [5.0, 5.4]])  # clipped per segment
    np.testing.assert_array_equal(fast["audio"][straddling[0]], fast["audio"][straddling[1]])
    noaudio = np.flatnonzero(words == "noaudio")[0]
    assert not fast["audio"][noaudio].any() and fast["vision"][noaudio].any()
    np.testing.assert_allclose(fast["words/interval"][words == "reversed"], [[6.0, 6.2]])
    # The SDK's stable sort puts covered rows before imputed ones of the same start, so the audio rows of
    # "reversed" (imputed, zero) and "tie" (covered) come out swapped against the words: reproduced, not fixed.
    assert fast["audio"][words == "reversed"].any() and not fast["audio"][words == "tie"].any()
    assert np.isfinite(fast["audio"]).all() and np.isfinite(fast["vision"]).all()


def failures_of_both_aligners(raw, tmp_path) -> list[str]:
    """The DataError message of the SDK aligner and of the fast one, each leaving no output behind."""
    messages = []
    for aligner in ("sdk", "fast"):
        with pytest.raises(DataError) as caught:
            align(raw, tmp_path / f"{aligner}.h5", aligner=aligner)
        messages.append(str(caught.value))
        assert not (tmp_path / f"{aligner}.h5").exists()
    return messages


def test_a_segment_without_words_fails_alike(tmp_path):
    messages = failures_of_both_aligners(quirky_raw(tmp_path, segment_without_words=True), tmp_path)
    assert messages[0] == messages[1] == "1 labelled segment(s) have no words after alignment, e.g. ['quirk_02[1]']"


def test_a_stream_with_fewer_rows_than_words_fails_alike(tmp_path):
    messages = failures_of_both_aligners(quirky_raw(tmp_path, audio_gap_at_boundary=True), tmp_path)
    assert messages[0] == messages[1]
    assert messages[0].startswith("segment quirk_01[2]: audio has ")


def test_intersect_by_hand():
    """One word [1, 2] against rows that touch it within ε, overlap it, or miss it."""
    rows = np.array([[0.5, 1.0],       # touches at 1.0: clipped to [1, 1], length 0 -> dropped
                     [0.9995, 1.5],    # -> [1.0, 1.5]
                     [1.5, 2.0005],    # -> [1.5, 2.0]
                     [2.0, 2.5],       # touches at 2.0 -> dropped
                     [2.0009, 3.0],    # starts within ε after the end: meets, clipped [2.0009, 2.0] -> dropped
                     [2.0011, 3.0]])   # starts beyond ε: does not meet
    ref_index, row_index, clipped = intersect(np.array([[1.0, 2.0]]), rows)
    assert ref_index.tolist() == [0, 0] and row_index.tolist() == [1, 2]
    np.testing.assert_array_equal(clipped, [[1.0, 1.5], [1.5, 2.0]])
    assert EPSILON == 1e-3


def test_aligner_is_chosen_by_config_and_recorded(tiny_dataset, tmp_path):
    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert validate_config({"datasets": {"d": {"source": "synthetic"}}}, schema)["datasets"]["d"]["aligner"] == "fast"
    args = ["align"] + [f"--{role}={tiny_dataset[role]}" for role in RAW_FILES]
    assert main([*args, "--spec", json.dumps({"source": "synthetic", "aligner": "sdk"}), "--out", str(tmp_path / "a.h5")]) == 0
    assert main([*args, "--spec", json.dumps({"aligner": "sdk"}), "--aligner", "fast", "--out", str(tmp_path / "b.h5")]) == 0
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert (a.attrs["aligner"], b.attrs["aligner"]) == ("sdk", "fast")
        assert json.loads(a.attrs["provenance"])["config"]["aligner"] == "sdk"


def test_batches_do_not_change_the_result(tiny_dataset, tmp_path, monkeypatch):
    """Videos aligned one per batch (the smallest budget) give the file that batches of many videos give."""
    from rider.data import fast_align

    raw = {role: tiny_dataset[role] for role in RAW_FILES}
    align(raw, tmp_path / "batched.h5", aligner="fast")
    monkeypatch.setattr(fast_align, "_BATCH_BYTES", 1)
    monkeypatch.setattr(fast_align, "_BLOCK_ROWS", 7)  # and run sums over many small blocks
    align(raw, tmp_path / "single.h5", aligner="fast")
    (batched, _), (single, _) = read_aligned(tmp_path / "batched.h5"), read_aligned(tmp_path / "single.h5")
    for name in batched:
        np.testing.assert_array_equal(batched[name], single[name], err_msg=name)
