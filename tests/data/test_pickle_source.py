"""The pickle source: MulT's and MMSA's aligned pickles, written here from the synthetic data as the real files are
laid out, give the cache the direct stages give; a pickle that carries code runs none of it; bad files stop with
one line naming the file and the split or key, writing nothing."""

import json
import os
import pickle
import re
import struct
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from snakemake.utils import update_config

from rider.checkpoint import load_checkpoint
from rider.cli import main
from rider.config import ConfigError, validate_config
from rider.data.cache import CacheConfig, read_words, validate_cache
from rider.errors import DataError
from rider.data.folds import SPLITS
from rider.data.pickle_source import build_pickle_cache, segment_ids
from rider.data.safe_pickle import load_pickle
from rider.data.split import load_split
from rider.metrics import regression_metrics
from rider.provenance import sha256_file
from rider.train.trainer import RunSpec, predict, run_config, train

from conftest import REPO
from snakemake_runs import snakemake, succeeded

PREVIOUS = b"an earlier, finished output"
MULT = {"source": "pickle", "pickle": {"layout": "mult"}}
MMSA = {"source": "pickle", "pickle": {"layout": "mmsa"}}


# --- pickles laid out as the real files are -------------------------------------------------------------------


class Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for MulT's files under protocol 2: every string a byte string
    (BINSTRING, no ``_codecs.encode``), numpy 1.x's module names, ``__builtin__``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_string(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    def save_global(self, obj, name=None):
        name = name or obj.__qualname__
        module = pickle.whichmodule(obj, name).replace("numpy._core", "numpy.core").replace("builtins", "__builtin__")
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_string
    dispatch[str] = save_string
    dispatch[types.FunctionType] = save_global


def read_cache(path):
    """Every array of a cache (words and latents aside: a pickle holds neither), the statistics, the widths."""
    with h5py.File(path) as handle:
        arrays = {split: {name: handle[split][name][()] for name in handle[split]
                          if name not in ("words", "latents", "ids")} for split in SPLITS}
        for split in SPLITS:
            arrays[split]["ids"] = handle[split]["ids"].asstr()[()]
        arrays["stats"] = {name: handle["stats"][name][()] for name in handle["stats"]}
        arrays["features"] = json.loads(handle.attrs["features"])
        arrays["provenance"] = json.loads(handle.attrs["provenance"])
    return arrays


def front_padded(values, lengths):
    """Each sample's real rows moved to the end: the padding at the front, as in MulT's files."""
    out = np.zeros_like(values)
    for i, n in enumerate(lengths):
        if n:
            out[i, -n:] = values[i, :n]
    return out


def with_minus_inf(audio, lengths, every=7):
    """-inf in place of some of the real rows' exact zeros (COVAREP's; both loaders set them to 0)."""
    audio = audio.copy()
    real = np.arange(audio.shape[1])[None, :] < lengths[:, None]
    zeros = np.argwhere((audio == 0) & real[..., None])
    chosen = zeros[::every]
    audio[tuple(chosen.T)] = -np.inf
    return audio, len(chosen)


def split_ids(ids):
    """The direct cache's "<video>[<i>]" as (video, i)."""
    pairs = [key[:-1].rsplit("[", 1) for key in ids]
    return [video for video, _ in pairs], [index for _, index in pairs]


@pytest.fixture(scope="module")
def direct(tiny_dataset):
    arrays = read_cache(tiny_dataset["cache"])
    for split in SPLITS:  # every real row holds something: the precondition of telling rows from padding
        lengths = arrays[split]["lengths"]
        real = np.arange(arrays[split]["text_glove"].shape[1])[None, :] < lengths[:, None]
        held = sum(arrays[split][name].any(axis=2) for name in ("text_glove", "audio", "vision")).astype(bool)
        assert np.array_equal(held, real), split
    return arrays


@pytest.fixture(scope="module")
def pickles(direct, tiny_dataset, tmp_path_factory):
    """MulT's layout (Python 2, protocol 2, front padding, -inf, labels (N, 1, 1), ids (N, 2) of bytes) and MMSA's
    (protocol 5, padding at the end, -inf, ids "<video>$_$<clip>"), from the tiny synthetic cache."""
    folder = tmp_path_factory.mktemp("pickles")
    mult, mmsa, minus_inf = {}, {}, 0
    for split in SPLITS:
        arrays, lengths = direct[split], direct[split]["lengths"]
        audio, count = with_minus_inf(arrays["audio"], lengths)
        minus_inf += count
        videos, clips = split_ids(arrays["ids"])
        mult[split] = {
            "text": front_padded(arrays["text_glove"], lengths),
            "audio": front_padded(audio, lengths),
            "vision": front_padded(arrays["vision"], lengths),
            "labels": arrays["labels"].reshape(-1, 1, 1),
            "id": np.array([[v.encode(), c.encode()] for v, c in zip(videos, clips)]),
        }
        words = read_words(tiny_dataset["cache"], split)
        n, length = len(lengths), arrays["text_glove"].shape[1]
        mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
        mmsa[split] = {
            "raw_text": np.array([" ".join(w for w in row if w) for row in words], dtype=object),
            "audio": audio.astype(np.float64),
            "vision": arrays["vision"],
            "text": arrays["text_glove"],
            "text_bert": np.stack([mask * 101, mask, np.zeros_like(mask)], axis=1),
            "id": np.array([f"{v}$_${c}" for v, c in zip(videos, clips)], dtype=object),
            "regression_labels": arrays["labels"].astype(np.float64),
            "classification_labels": np.sign(arrays["labels"]).astype(np.float64) + 1,
            "annotations": ["Positive" if y > 0 else "Negative" for y in arrays["labels"]],
        }
        assert n == len(mmsa[split]["id"])
    assert minus_inf > 0
    paths = {"mult": folder / "mosi_data.pkl", "mmsa": folder / "aligned_50.pkl"}
    with open(paths["mult"], "wb") as handle:
        Python2Pickler(handle, protocol=2).dump(mult)
    paths["mmsa"].write_bytes(pickle.dumps(mmsa, protocol=5))
    return paths


@pytest.fixture(scope="module")
def caches(pickles, tmp_path_factory):
    """The cache of each pickle: MulT's through the command line, MMSA's (layout told from its keys) by the
    library."""
    folder = tmp_path_factory.mktemp("pickle-caches")
    paths = {"mult": folder / "mult.h5", "mmsa": folder / "mmsa.h5"}
    assert main(["pickle", "--spec", json.dumps(MULT), "--pickle", str(pickles["mult"]), "--name", "test",
                 "--out", str(paths["mult"])]) == 0
    build_pickle_cache(pickles["mmsa"], paths["mmsa"], dataset="test")
    return paths


# --- the same cache, the same model ----------------------------------------------------------------------------


def assert_same_arrays(got, expected):
    for split in SPLITS:
        assert sorted(got[split]) == sorted(expected[split]), split
        for name, values in expected[split].items():
            np.testing.assert_array_equal(got[split][name], values, err_msg=f"{split}/{name}")
    assert sorted(got["stats"]) == sorted(expected["stats"])
    for name, values in expected["stats"].items():
        np.testing.assert_array_equal(got["stats"][name], values, err_msg=name)
    assert got["features"] == expected["features"]


def test_mult_pickle_gives_the_direct_cache(caches, pickles, direct):
    """Python 2 strings (latin-1), numpy 1.x names, front padding, -inf: the cache of the direct stages."""
    assert b"numpy.core.multiarray" in pickles["mult"].read_bytes()
    with pytest.raises(UnicodeDecodeError):  # why the reader needs latin-1
        pickle.loads(pickles["mult"].read_bytes())
    assert validate_cache(caches["mult"]) == {split: len(direct[split]["labels"]) for split in SPLITS}
    got = read_cache(caches["mult"])
    assert_same_arrays(got, direct)
    assert got["provenance"]["inputs"]["pickle"]["sha256"] == sha256_file(pickles["mult"])
    assert got["provenance"]["layout"] == "mult" and got["provenance"]["source"] == "pickle"
    with h5py.File(caches["mult"]) as handle:
        counts = json.loads(handle.attrs["counts"])
    assert counts["nonfinite"]["audio"] > 0 and counts["moved_to_front"] > 0


def test_mmsa_pickle_gives_the_direct_cache_with_bert_text(caches, direct):
    """The layout told from the keys; MMSA's text becomes text_bert, text_glove has zero columns."""
    expected = {split: {**{k: v for k, v in direct[split].items() if k != "text_glove"},
                        "text_bert": direct[split]["text_glove"],
                        "text_glove": np.zeros((*direct[split]["text_glove"].shape[:2], 0), np.float32)}
                for split in SPLITS}
    expected["stats"] = {**{k.replace("text_glove", "text_bert"): v for k, v in direct["stats"].items()},
                         "text_glove_mean": np.zeros(0, np.float32), "text_glove_std": np.zeros(0, np.float32)}
    expected["features"] = {**direct["features"], "text_glove": 0, "text_bert": direct["features"]["text_glove"]}
    got = read_cache(caches["mmsa"])
    assert_same_arrays(got, expected)
    assert got["provenance"]["layout"] == "mmsa"
    with pytest.raises(DataError, match="built from a pickle, which holds the features of each word but not the words"):
        read_words(caches["mmsa"], "test")


@pytest.mark.slow
def test_models_trained_on_either_pickle_score_as_on_the_direct_cache(caches, tiny_dataset, tmp_path):
    run = {"model": {"d_model": 16, "expert_layers": 1, "expert_heads": 2, "expert_ff": 32, "encoder_heads": 2},
           "train": {"epochs": 2, "lr": 3e-3, "compile": "off"}}

    def test_metrics(cache, text_feature, name):
        spec = RunSpec.from_dict({**run, "train": {**run["train"], "text_feature": text_feature}})
        train(spec, cache, tmp_path / name, seed=1, threads=1)
        model, _, _ = load_checkpoint(tmp_path / name)
        test = load_split(cache, "test", torch.device("cpu"), text_feature)
        return regression_metrics(predict(model, test, 512), test.labels.numpy())

    direct = test_metrics(tiny_dataset["cache"], "text_glove", "direct")
    assert test_metrics(caches["mult"], "text_glove", "mult") == direct
    assert test_metrics(caches["mmsa"], "text_bert", "mmsa") == direct


@pytest.mark.slow
def test_snakemake_builds_the_cache_from_a_pickle(pickles, direct, tmp_path):
    config = {"run": {"datasets": ["pick"]},
              "datasets": {"pick": {"source": "pickle", "pickle": {"path": str(pickles["mult"]), "layout": "mult"}}}}
    succeeded(snakemake(tmp_path, "resources/cache/pick.h5", config=config))
    got = read_cache(tmp_path / "resources/cache/pick.h5")
    assert_same_arrays(got, direct)
    assert got["provenance"]["config"]["pickle"]["layout"] == "mult"
    assert (tmp_path / "logs/pick/pickle.log").stat().st_size > 0
    assert not (tmp_path / "resources/aligned").exists()  # no stage of the .csd path ran


# --- padding, lengths, ids --------------------------------------------------------------------------------------


def small_split(rng, n, length=8, widths=(6, 4, 3), blocks=None):
    """Random streams whose sample i holds rows blocks[i] = (start, stop), zero elsewhere."""
    blocks = blocks or [(length - 3 - i % 4, length) for i in range(n)]
    streams = {}
    for stream, width in zip(("text", "audio", "vision"), widths):
        values = np.zeros((n, length, width), np.float32)
        for i, (start, stop) in enumerate(blocks):
            values[i, start:stop] = rng.normal(size=(stop - start, width)) + 0.5
        streams[stream] = values
    labels = rng.uniform(-3, 3, size=(n, 1, 1)).astype(np.float32)
    return {**streams, "labels": labels, "id": np.array([f"v{i % 3}$_${i}" for i in range(n)], dtype=object)}


def small_pickle(path, **splits):
    rng = np.random.default_rng(0)
    data = {split: small_split(rng, n) for split, n in (("train", 6), ("valid", 3), ("test", 4))}
    data.update(splits)
    path.write_bytes(pickle.dumps(data, protocol=4))
    return data


@pytest.mark.parametrize("sequence_length", [8, 5, 11])
def test_padding_at_either_end_moves_to_the_front(tmp_path, sequence_length):
    rng = np.random.default_rng(1)
    blocks = [(0, 8), (3, 8), (0, 4), (2, 6), (1, 2)]  # full, front, end, both ends, one row
    data = small_pickle(tmp_path / "p.pkl", test=small_split(rng, 5, blocks=blocks))
    counts = build_pickle_cache(tmp_path / "p.pkl", tmp_path / "c.h5",
                                config=CacheConfig(sequence_length=sequence_length))
    got = read_cache(tmp_path / "c.h5")["test"]
    assert got["text_glove"].shape == (5, sequence_length, 6)
    np.testing.assert_array_equal(got["lengths"], [min(stop - start, sequence_length) for start, stop in blocks])
    for i, (start, stop) in enumerate(blocks):
        n = min(stop - start, sequence_length)
        for stream, name in (("text", "text_glove"), ("audio", "audio"), ("vision", "vision")):
            np.testing.assert_array_equal(got[name][i, :n], data["test"][stream][i, start: start + n])
            assert not got[name][i, n:].any()
    assert got["ids"].tolist() == [f"v{i % 3}[{i}]" for i in range(5)]
    real = {split: data[split]["text"].any(axis=2).sum(axis=1) for split in SPLITS}
    assert counts["truncated"] == sum(int((n > sequence_length).sum()) for n in real.values())
    assert counts["moved_to_front"] == sum(int((data[s]["text"][:, 0] == 0).all(axis=1).sum()) for s in SPLITS)


@pytest.mark.parametrize("raw, expected", [
    (np.array(["a$_$1", "b$_$22"], dtype=object), ["a[1]", "b[22]"]),
    (np.array([b"x[3]", b"y[4]"]), ["x[3]", "y[4]"]),
    (np.array([["a"], ["b"]]), ["a", "b"]),
    (np.array([[b"vid", b"2"], [b"vid", b"3"]]), ["vid[2]", "vid[3]"]),
    (np.array([["vid", "1.5", "4.0"], ["w", "0", "2"]], dtype=object), ["vid[1.5,4.0]", "w[0,2]"]),
    (None, ["test[0]", "test[1]"]),
])
def test_ids_of_every_shape_become_one_string(raw, expected):
    assert segment_ids(raw, 2, "test", Path("f.pkl")).tolist() == expected


# --- safe by construction ---------------------------------------------------------------------------------------


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_a_command_leaves_no_trace(tmp_path, capsys):
    marker = tmp_path / "ran"
    data = {split: {"text": RunsACommand(marker)} for split in SPLITS}
    evil = tmp_path / "mosi_data.pkl"
    evil.write_bytes(pickle.dumps(data, protocol=2))
    out = tmp_path / "cache.h5"
    assert main(["pickle", "--spec", json.dumps(MULT), "--pickle", str(evil), "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and str(evil) in message and f"the global {os.system.__module__}.system" in message
    assert not marker.exists() and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mosi_data.pkl"]
    pickle.loads(evil.read_bytes())  # the control: a bare pickle.load runs it
    assert marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("__builtin__", "getattr"), ("subprocess", "Popen"),
                                          ("numpy", "load"), ("_codecs", "decode"), ("copy_reg", "_reconstructor")])
def test_any_other_global_is_refused_before_it_is_called(tmp_path, module, name):
    path = tmp_path / "f.pkl"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R.")  # module.name() under protocol 2
    with pytest.raises(DataError, match=f"{path}: refused: the pickle asks for the global {module}.{name}"):
        load_pickle(path)


def test_codecs_encode_is_admitted_for_latin1_only(tmp_path):
    path = tmp_path / "f.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R.")
    with pytest.raises(DataError, match="not a readable pickle.*not latin-1"):
        load_pickle(path)


# --- errors, as the user sees them -------------------------------------------------------------------------------


def run_cli(capsys, tmp_path, data, spec=MULT, raw=None):
    """The stage on ``data`` (pickled here, or the bytes ``raw``): exit status 2, one line on stderr, the earlier
    output untouched and no temporary file; returns the line."""
    path = tmp_path / "in.pkl"
    path.write_bytes(raw if raw is not None else pickle.dumps(data, protocol=4))
    out = tmp_path / "out" / "cache.h5"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(PREVIOUS)
    code = main(["pickle", "--spec", json.dumps(spec), "--pickle", str(path), "--out", str(out)])
    message = capsys.readouterr().err
    assert code == 2, message
    assert message.startswith("rider pickle: error: ") and message.count("\n") == 1, message
    assert str(path) in message
    assert out.read_bytes() == PREVIOUS
    assert [p.name for p in out.parent.iterdir()] == ["cache.h5"]
    return message


def small_data():
    rng = np.random.default_rng(2)
    return {split: small_split(rng, n) for split, n in (("train", 6), ("valid", 3), ("test", 4))}


def as_mmsa(data):
    for split in SPLITS:
        data[split]["regression_labels"] = data[split].pop("labels").reshape(-1)


def unaligned_mmsa(data):
    as_mmsa(data)
    for split in SPLITS:
        data[split]["audio_lengths"] = [8] * len(data[split]["regression_labels"])


def noalign_mult(data):
    data["train"]["audio"] = np.ones((6, 20, 4), np.float32)


def nonfinite(data):
    data["valid"]["audio"][data["valid"]["audio"] != 0] = -np.inf


def gap(data):
    data["test"]["vision"][2, :] = 0
    data["test"]["text"][2, :] = 0
    data["test"]["audio"][2, :] = 0
    data["test"]["text"][2, [1, 2, 5]] = 1.0


ERRORS = {  # name: (change to the data, spec, fragments of the message)
    "unaligned MMSA file": (unaligned_mmsa, MMSA, ["an unaligned file: split 'train' has 'audio_lengths'",
                                                   "use the word-aligned file, MMSA's aligned_50.pkl"]),
    "unaligned MulT file": (noalign_mult, MULT, ["split 'train': 'audio' has 20 rows per sample, 'text' 8",
                                                 "MulT's aligned mosi_data.pkl or mosei_senti_data.pkl"]),
    "missing split": (lambda d: d.pop("valid"), MULT, ["no split 'valid'; the file has ['test', 'train']"]),
    "missing key": (lambda d: d["test"].pop("vision"), MULT, ["split 'test' has no key 'vision'"]),
    "MMSA file read as MulT's": (as_mmsa, MULT, ["split 'train' has no key 'labels'",
                                                 "is it MMSA's (pickle.layout: mmsa)?"]),
    "widths differ": (lambda d: d["test"].__setitem__("audio", np.ones((4, 8, 5), np.float32)), MULT,
                      ["'audio' has 5 features in split 'test' but 4 in 'train'"]),
    "label outside [-3, 3]": (lambda d: d["valid"]["labels"].__setitem__((1, 0, 0), 3.5), MULT,
                              ["split 'valid', key 'labels': sample v1[1] is 3.5, outside [-3, 3]"]),
    "non-finite values": (nonfinite, MULT, ["of the audio values (the samples' real rows) are NaN or inf",
                                            "cache.max_nonfinite = 0.1", "No cache was written"]),
    "empty split": (lambda d: d.__setitem__("test", {k: v[:0] for k, v in d["test"].items()}), MULT,
                    ["split 'test' is empty (0 samples)"]),
    "real rows with a gap": (gap, MULT, ["split 'test', sample v2[2]: its real rows", "are 1-2, 5, not one block"]),
    "layout unknown": (lambda d: [d[s].pop("labels") for s in SPLITS], {"source": "pickle"},
                       ["cannot tell the layout: split 'train' has neither 'labels' (MulT) nor 'regression_labels'"]),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_file_is_one_line_naming_file_and_place(name, tmp_path, capsys):
    change, spec, fragments = ERRORS[name]
    data = small_data()
    change(data)
    message = run_cli(capsys, tmp_path, data, spec)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_truncated_pickle(tmp_path, capsys):
    whole = pickle.dumps(small_data(), protocol=4)
    message = run_cli(capsys, tmp_path, None, raw=whole[: len(whole) // 2])
    assert "not a readable pickle (truncated or corrupt?)" in message


def test_not_a_dict_of_splits(tmp_path, capsys):
    assert "holds a list, expected a dict of splits" in run_cli(capsys, tmp_path, [1, 2])


# --- configurations a user only points at their file --------------------------------------------------------------


@pytest.mark.parametrize("paper", [False, True], ids=["on config.yaml", "with configs/paper.yaml"])
@pytest.mark.parametrize("name", ["mult-mosi", "mult-mosei", "mmsa-mosi", "mmsa-mosei"])
def test_configs_point_at_a_pickle_and_compose_with_the_paper_protocol(name, paper):
    """Merged as Snakemake merges `--configfile configs/paper.yaml configs/<name>.yaml`: valid, one pickle dataset
    of the right layout and paper dataset, every variant's run spec reading the layout's text."""
    layout, folds = name.split("-")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for extra in (["paper"] if paper else []) + [name]:
        update_config(config, yaml.safe_load((REPO / f"configs/{extra}.yaml").read_text()))
    validate_config(config, REPO / "workflow/schemas/config.schema.yaml")
    [dataset] = config["run"]["datasets"]
    section = config["datasets"][dataset]
    assert (section["source"], section["pickle"]["layout"], section["folds"]) == ("pickle", layout, folds)
    for model in config["run"]["models"]:
        spec = RunSpec.from_dict(run_config(section, config["models"][model]))
        assert spec.train.text_feature == {"mult": "text_glove", "mmsa": "text_bert"}[layout], model
    if paper:  # the paper's sizes and seeds survive the merge
        assert config["run"]["seeds"] == [0, 1, 2, 3, 4]
        assert RunSpec.from_dict(run_config(section, {})).model.d_model == {"mosi": 128, "mosei": 512}[folds]


@pytest.mark.parametrize("change, fragment", [
    ({"pickle": {"layout": "mmsa"}}, "MMSA's pickles (pickle.layout: mmsa) hold BERT text"),
    ({"pickle": {"layout": "mult"}, "train": {"text_feature": "text_bert"}}, "MulT's pickles (pickle.layout: mult)"),
    ({"modalities": ["text"]}, "a pickle holds text, audio and vision"),
])
def test_config_that_cannot_read_the_pickle_stops_before_any_stage(change, fragment):
    config = {"datasets": {"p": {"source": "pickle", **change}}}
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        validate_config(config, REPO / "workflow/schemas/config.schema.yaml")
