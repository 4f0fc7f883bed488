"""Bad input stops a stage with a message naming the file and the field, and destroys nothing."""

import json
import shutil

import h5py
import numpy as np
import pytest

from rider.cli import main
from rider.data.csd import ROLES, read_metadata, read_sequence, write_sequence
from rider.data.synthetic import RAW_FILES

PREVIOUS = b"an earlier, finished output"


@pytest.fixture
def raw(tiny_dataset, tmp_path):
    """A private copy of the tiny raw files, free to be damaged."""
    folder = tmp_path / "raw"
    folder.mkdir()
    for role in RAW_FILES:
        shutil.copy(tiny_dataset[role], folder / RAW_FILES[role])
    return {role: folder / RAW_FILES[role] for role in RAW_FILES}


def rewrite(path, role, change):
    entries = read_sequence(path, ROLES[role]) if role != "broken" else None
    change(entries)
    write_sequence(path, role, entries, read_metadata(path))


def run_align(raw, out):
    args = ["align", "--spec", "{}", "--out", str(out)]
    for role, path in raw.items():
        args += [f"--{role}", str(path)]
    return main(args)


def assert_failed_cleanly(capsys, code, out, *fragments):
    assert code == 2
    message = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert out.read_bytes() == PREVIOUS  # the earlier output is untouched
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left


@pytest.fixture
def out(tmp_path):
    path = tmp_path / "out" / "aligned.h5"
    path.parent.mkdir()
    path.write_bytes(PREVIOUS)
    return path


def test_truncated_csd(raw, out, capsys):
    data = raw["vision"].read_bytes()
    raw["vision"].write_bytes(data[: len(data) // 2])
    assert_failed_cleanly(capsys, run_align(raw, out), out, str(raw["vision"]), "truncated or corrupt")


def test_wrong_feature_width(raw, out, capsys):
    # Any width is an audio recipe's (COVAREP 74, OpenSMILE ...): the file's first video sets it, the others follow.
    video = list(read_sequence(raw["audio"], ROLES["audio"]))[1]

    def narrow(entries):
        entries[video]["features"] = entries[video]["features"][:, :73]

    rewrite(raw["audio"], "audio", narrow)
    assert_failed_cleanly(capsys, run_align(raw, out), out, str(raw["audio"]), f"video '{video}'",
                          "'features' has 73 features, expected 74")


def test_video_missing_from_one_modality(raw, out, capsys):
    video = sorted(read_sequence(raw["vision"], ROLES["vision"]))[1]
    rewrite(raw["vision"], "vision", lambda entries: entries.pop(video))
    assert_failed_cleanly(capsys, run_align(raw, out), out, str(raw["vision"]), "missing from vision", video)


@pytest.mark.parametrize("value", [3.5, -4.0, np.nan])
def test_label_outside_range(raw, out, capsys, value):
    video = next(iter(read_sequence(raw["labels"], ROLES["labels"])))

    def corrupt(entries):
        entries[video]["features"][1, 0] = value

    rewrite(raw["labels"], "labels", corrupt)
    expected = "outside [-3.0, 3.0]" if np.isfinite(value) else "NaN/inf not allowed in labels"
    assert_failed_cleanly(capsys, run_align(raw, out), out, str(raw["labels"]), f"video '{video}'", "row 1", expected)


def test_nonfinite_streams_are_cleaned_and_counted(raw, tmp_path):
    vision = read_sequence(raw["vision"], ROLES["vision"])
    video = next(iter(vision))

    def poison(entries):
        entries[video]["features"][:3, 0] = [np.nan, -np.inf, np.inf]

    rewrite(raw["vision"], "vision", poison)
    aligned = tmp_path / "aligned.h5"
    assert run_align(raw, aligned) == 0
    with h5py.File(aligned) as handle:
        assert json.loads(handle.attrs["nonfinite"])["vision"] == 3
        assert np.isfinite(handle["vision"][:]).all()


def test_truncated_aligned_file_in_cache_stage(tiny_dataset, out, capsys):
    broken = out.parent / "broken.h5"
    data = tiny_dataset["aligned"].read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    code = main(["cache", "--spec", "{}", "--aligned", str(broken), "--glove", str(tiny_dataset["glove"]),
                 "--out", str(out)])
    broken.unlink()
    assert_failed_cleanly(capsys, code, out, str(broken), "truncated or corrupt")


def test_glove_file_with_wrong_width(tiny_dataset, out, capsys, tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("hello 0.1 0.2 0.3\n")
    code = main(["cache", "--spec", "{}", "--aligned", str(tiny_dataset["aligned"]), "--glove", str(glove),
                 "--out", str(out)])
    assert_failed_cleanly(capsys, code, out, str(glove), "line 1 has 3 values, expected 300")


def test_unknown_config_key_stops_the_cli(tmp_path, capsys):
    spec = json.dumps({"source": "synthetic", "synthetic": {"seeed": 3}})
    assert main(["generate", "--spec", spec, "--out-dir", str(tmp_path / "raw")]) == 2
    assert "unknown key(s) ['seeed']" in capsys.readouterr().err
    assert not (tmp_path / "raw").exists()


# --- features that must not silently vanish (the cache stage) --------------------------------------------------------


def run_cache(aligned, glove, out, spec="{}"):
    return main(["cache", "--spec", spec, "--aligned", str(aligned), "--glove", str(glove), "--out", str(out)])


def test_glove_file_wider_than_configured(tiny_dataset, out, capsys):
    # A 300-d file read as 50-d split every line into a 'word' of 251 fields and 50 numbers: every word was
    # unknown, the text features all zero, and the run ended with exit 0.
    code = run_cache(tiny_dataset["aligned"], tiny_dataset["glove"], out, spec='{"cache": {"glove_dim": 50}}')
    assert_failed_cleanly(capsys, code, out, str(tiny_dataset["glove"]), "line 1 has 300 values, expected 50",
                          "cache.glove_dim")


def test_glove_file_of_another_vocabulary(tiny_dataset, out, capsys, tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("".join(f"other{line}" for line in tiny_dataset["glove"].read_text().splitlines(True)))
    code = run_cache(tiny_dataset["aligned"], glove, out)
    assert_failed_cleanly(capsys, code, out, str(glove), "100.0% of the words have no vector",
                          "cache.max_unknown_words = 0.2")


def damaged_aligned(tiny_dataset, tmp_path, stream, value, rows=slice(None, None, 2)):
    """A copy of the aligned file whose ``stream`` holds ``value`` in some word ``rows`` (every other one)."""
    aligned = tmp_path / "aligned.h5"
    shutil.copy(tiny_dataset["aligned"], aligned)
    with h5py.File(aligned, "r+") as handle:
        data = handle[stream][:]
        data[rows] = value
        handle[stream][:] = data
    return aligned


def test_stream_of_zeros(tiny_dataset, out, capsys, tmp_path):
    aligned = damaged_aligned(tiny_dataset, tmp_path, "vision", 0.0, rows=slice(None))
    code = run_cache(aligned, tiny_dataset["glove"], out)
    assert_failed_cleanly(capsys, code, out, str(aligned), "100.0% of the words have an all-zero vision vector",
                          "cache.max_zero_rows = 0.5")


def test_stream_of_nonfinite_values(tiny_dataset, out, capsys, tmp_path):
    # A quarter of the words: over max_nonfinite, and (once set to 0) with the generator's occluded words still
    # under max_zero_rows, so the non-finite check is the one that speaks.
    aligned = damaged_aligned(tiny_dataset, tmp_path, "audio", np.nan, rows=slice(None, None, 4))
    code = run_cache(aligned, tiny_dataset["glove"], out)
    assert_failed_cleanly(capsys, code, out, str(aligned), "audio values (frames and words) are NaN or inf",
                          "cache.max_nonfinite = 0.1")


def test_the_cache_records_the_shares_it_checked(tiny_dataset, tmp_path, caplog):
    caplog.set_level("INFO", logger="rider.data.cache")
    assert run_cache(tiny_dataset["aligned"], tiny_dataset["glove"], tmp_path / "cache.h5") == 0
    with h5py.File(tmp_path / "cache.h5") as handle:
        shares = json.loads(handle.attrs["counts"])["shares"]
    assert shares["unknown_words"] == {"text_glove": 0.0}
    assert set(shares["zero_rows"]) == {"audio", "vision"} and set(shares["nonfinite"]) == {"text_glove", "audio",
                                                                                            "vision"}
    assert 0 < shares["nonfinite"]["audio"] < 0.01  # the synthetic COVAREP's -inf/NaN, counted by the aligner
    assert "shares of the real words" in caplog.text
