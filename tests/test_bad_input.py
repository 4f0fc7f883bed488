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
    video = next(iter(read_sequence(raw["audio"], ROLES["audio"])))

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
