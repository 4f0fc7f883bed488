"""The `cmu` source against a real HTTP server on 127.0.0.1 that serves .csd files at the SDK's URL paths,
with scripted faults: 503s, a stalled body, a truncated body, a server that ignores ranges, one that is down,
and a file whose md5 does not match."""

import hashlib
import http.server
import json
import re
import shutil
import socket
import threading
import time
from urllib.parse import urlsplit

import h5py
import numpy as np
import pytest
import yaml

from rider.cli import main
from rider.data.csd import ROLES, write_sequence
from rider.data.download import (
    DownloadConfig, DownloadError, content_md5, download, fetch, metadata_md5, sdk_urls, stamp_md5,
)
from rider.data.synthetic import RAW_FILES

from conftest import REPO, SHARED_REAL

STALL_S = 5.0       # the longest a stalled response holds its thread (released at teardown)
FAST = {"retries": 3, "backoff_s": 0.01, "timeout_s": 2.0}


def sdk_paths(dataset="mosi"):
    """The URL paths the SDK itself lists, read from mmsdk rather than from our code."""
    from mmsdk.mmdatasdk.dataset.standard_datasets import CMU_MOSEI, CMU_MOSI

    module = {"mosi": CMU_MOSI, "mosei": CMU_MOSEI}[dataset]
    facet = {"mosi": "FACET 4.1", "mosei": "FACET 4.2"}[dataset]
    labels = {"mosi": "Opinion Segment Labels", "mosei": "Sentiment Labels"}[dataset]
    urls = {"words": module.raw["words"], "audio": module.highlevel["COVAREP"],
            "vision": module.highlevel[facet], "labels": module.labels[labels]}
    return {role: urlsplit(url).path for role, url in urls.items()}


class Mirror:
    """Files by URL path, and per path a script of faults for successive requests (then normal answers)."""

    def __init__(self, files):
        self.files = files
        self.faults = {}
        self.honour_range = True
        self.truncate_at = 1000
        self.requests = []                  # (path, Range header or None)
        self.release = threading.Event()    # set at teardown: stalled handlers return

    def count(self, path):
        return sum(1 for p, _ in self.requests if p == path)


class Handler(http.server.BaseHTTPRequestHandler):
    mirror: Mirror  # set per server

    def log_message(self, *args):
        pass

    def do_GET(self):
        mirror = self.mirror
        path = urlsplit(self.path).path
        ranged = self.headers.get("Range")
        mirror.requests.append((path, ranged))
        if path not in mirror.files:
            self.send_error(404)
            return
        script = mirror.faults.get(path, [])
        fault = script.pop(0) if script else None
        if fault == "503":
            self.send_error(503, "Service Unavailable")
            return
        body = mirror.files[path]
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", ranged or "")
        if match and mirror.honour_range:
            start = int(match[1])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if fault == "truncate":  # promise everything, send a little, hang up
            self.wfile.write(payload[: mirror.truncate_at])
            return
        if fault == "stall":     # send half, then go silent
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            mirror.release.wait(STALL_S)
            return
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def served_files(tiny_dataset, tmp_path_factory):
    """The tiny raw files, each with its content md5 stamped into its metadata, keyed by the SDK's URL paths."""
    folder = tmp_path_factory.mktemp("mirror")
    files = {}
    for role, path in sdk_paths().items():
        copy = folder / RAW_FILES[role]
        shutil.copy(tiny_dataset[role], copy)
        stamp_md5(copy)
        files[path] = copy.read_bytes()
    return files


@pytest.fixture
def mirror(served_files):
    """A threading HTTP server on a free port of 127.0.0.1, stopped (and its stalled handlers released) after."""
    state = Mirror(dict(served_files))
    handler = type("MirrorHandler", (Handler,), {"mirror": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def config(mirror_or_url, **overrides):
    base = mirror_or_url if isinstance(mirror_or_url, str) else mirror_or_url.base_url
    return DownloadConfig(**{"dataset": "mosi", "base_url": base, **FAST, **overrides})


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_urls_are_the_sdks_paths_on_the_mirror():
    urls = sdk_urls(config("http://mirror.example:8080/"))
    assert {role: urlsplit(url).path for role, url in urls.items()} == sdk_paths()
    assert all(url.startswith("http://mirror.example:8080/CMU-MOSI/") for url in urls.values())
    assert sdk_paths()["words"] == "/CMU-MOSI/language/CMU_MOSI_TimestampedWords.csd"
    mosei = sdk_urls(DownloadConfig(dataset="mosei"))
    assert {role: urlsplit(url).path for role, url in mosei.items()} == sdk_paths("mosei")


def test_good_server_through_the_cli(mirror, tmp_path):
    spec = {"source": "cmu", "cmu": {"dataset": "mosi", "base_url": mirror.base_url, **FAST}}
    assert main(["download", "--spec", json.dumps(spec), "--out-dir", str(tmp_path)]) == 0
    for role, path in sdk_paths().items():
        assert (tmp_path / RAW_FILES[role]).read_bytes() == mirror.files[path], role
        assert mirror.count(path) == 1
    assert leftovers(tmp_path) == []
    # a second run finds the files and asks for nothing
    assert main(["download", "--spec", json.dumps(spec), "--out-dir", str(tmp_path)]) == 0
    assert len(mirror.requests) == 4


def test_503s_are_retried(mirror, tmp_path):
    audio = sdk_paths()["audio"]
    mirror.faults[audio] = ["503", "503"]
    paths = download(config(mirror), tmp_path, RAW_FILES)
    assert paths["audio"].read_bytes() == mirror.files[audio]
    assert mirror.count(audio) == 3


def test_503s_beyond_the_retries_name_the_url(mirror, tmp_path):
    audio = sdk_paths()["audio"]
    mirror.faults[audio] = ["503"] * 5
    with pytest.raises(DownloadError, match=re.escape(mirror.base_url + audio) + ".*after 3 attempt.*503"):
        download(config(mirror), tmp_path, RAW_FILES)
    assert mirror.count(audio) == 3
    assert not (tmp_path / RAW_FILES["audio"]).exists()
    assert leftovers(tmp_path) == []


def test_stalled_body_times_out_and_resumes(mirror, tmp_path):
    audio = sdk_paths()["audio"]
    size = len(mirror.files[audio])
    mirror.faults[audio] = ["stall"]
    started = time.monotonic()
    fetch(mirror.base_url + audio, tmp_path / "audio.csd", "audio", config(mirror, timeout_s=0.3))
    assert time.monotonic() - started < STALL_S  # the client gave up on the stall, it did not wait it out
    assert (tmp_path / "audio.csd").read_bytes() == mirror.files[audio]
    assert [r for p, r in mirror.requests if p == audio] == [None, f"bytes={size // 2}-"]  # every byte kept


def test_truncated_body_is_resumed(mirror, tmp_path):
    audio = sdk_paths()["audio"]
    mirror.faults[audio] = ["truncate"]
    fetch(mirror.base_url + audio, tmp_path / "audio.csd", "audio", config(mirror))
    assert (tmp_path / "audio.csd").read_bytes() == mirror.files[audio]
    assert [r for p, r in mirror.requests if p == audio] == [None, f"bytes={mirror.truncate_at}-"]
    assert leftovers(tmp_path) == []


def test_truncated_body_restarts_when_the_server_ignores_ranges(mirror, tmp_path):
    audio = sdk_paths()["audio"]
    mirror.honour_range = False
    mirror.faults[audio] = ["truncate"]
    fetch(mirror.base_url + audio, tmp_path / "audio.csd", "audio", config(mirror))
    assert (tmp_path / "audio.csd").read_bytes() == mirror.files[audio]  # the 200 answer replaced the partial
    assert [r for p, r in mirror.requests if p == audio] == [None, f"bytes={mirror.truncate_at}-"]


def test_truncation_every_time_leaves_nothing_behind(mirror, tmp_path):
    audio = sdk_paths()["audio"]
    mirror.faults[audio] = ["truncate"] * 5
    mirror.truncate_at = 10  # each attempt adds 10 bytes: never complete within 3 attempts
    url = mirror.base_url + audio
    with pytest.raises(DownloadError, match=re.escape(url) + ".*after 3 attempt"):
        fetch(url, tmp_path / "audio.csd", "audio", config(mirror))
    assert [r for p, r in mirror.requests if p == audio] == [None, "bytes=10-", "bytes=20-"]
    assert list(tmp_path.iterdir()) == []


def test_stale_partial_that_does_not_validate_is_fetched_again(mirror, tmp_path):
    labels = sdk_paths()["labels"]
    (tmp_path / ".labels.csd.part").write_bytes(b"left by a killed run of another file" * 10)
    fetch(mirror.base_url + labels, tmp_path / "labels.csd", "labels", config(mirror))
    assert (tmp_path / "labels.csd").read_bytes() == mirror.files[labels]
    assert [r is not None for p, r in mirror.requests if p == labels] == [True, False]  # resumed, then restarted
    assert leftovers(tmp_path) == []


def test_server_down_names_the_url(tmp_path, capsys):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    words_url = base + sdk_paths()["words"]
    started = time.monotonic()
    with pytest.raises(DownloadError, match=re.escape(words_url) + ".*after 3 attempt"):
        download(config(base), tmp_path, RAW_FILES)
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []
    spec = {"source": "cmu", "cmu": {"base_url": base, **FAST}}
    assert main(["download", "--spec", json.dumps(spec), "--out-dir", str(tmp_path)]) == 2
    assert words_url in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_md5_mismatch_names_the_url_and_keeps_nothing(mirror, tmp_path, tiny_dataset):
    labels = sdk_paths()["labels"]
    wrong = tmp_path / "wrong.csd"
    shutil.copy(tiny_dataset["labels"], wrong)
    with h5py.File(wrong, "r+") as handle:
        metadata = handle["labels/metadata"]
        del metadata["md5"]
        metadata.create_dataset("md5", (1,), dtype=h5py.string_dtype())[0] = "0" * 32
    mirror.files[labels] = wrong.read_bytes()
    out = tmp_path / "out"
    url = mirror.base_url + labels
    with pytest.raises(DownloadError, match=re.escape(url) + ": md5 of the data is [0-9a-f]{32}, its metadata says 0{32}"):
        fetch(url, out / "labels.csd", "labels", config(mirror))
    assert mirror.count(labels) == 1  # a fresh download with a wrong md5 is not fetched again
    assert list(out.iterdir()) == []


def test_content_md5_is_the_documented_digest(tmp_path):
    intervals = np.array([[0.0, 1.5], [1.5, 2.0]])
    features = np.array([[0.5], [-1.0]], dtype=np.float32)
    metadata = {key: "x" for key in ("computational sequence description", "computational sequence version",
                                     "alignment compatible", "dataset name", "dataset version", "creator",
                                     "contact", "featureset bib citation", "dataset bib citation")}
    path = tmp_path / "labels.csd"
    write_sequence(path, "labels", {"vid_b": {"intervals": intervals, "features": features},
                                    "vid_a": {"intervals": intervals[:1], "features": features[:1]}}, metadata)
    expected = hashlib.md5()
    for video, rows in (("vid_a", 1), ("vid_b", 2)):  # sorted by id
        expected.update(video.encode() + b"\0")
        expected.update(f"<f8({rows}, 2)".encode() + b"\0" + intervals[:rows].tobytes())
        expected.update(f"<f4({rows}, 1)".encode() + b"\0" + features[:rows].tobytes())
    assert content_md5(path, ROLES["labels"]) == expected.hexdigest()
    assert metadata_md5(path) is None  # the SDK writes the string "None"
    assert stamp_md5(path) == expected.hexdigest()
    assert metadata_md5(path) == expected.hexdigest()


def test_genuine_cmu_file_declares_no_md5():
    real = SHARED_REAL / "CMU_MOSI_Opinion_Labels.csd"
    if not real.exists():
        pytest.skip(f"{real} is not on this machine")
    assert metadata_md5(real) is None  # stored as JSON null
    content_md5(real, ROLES["labels"])  # and it reads as a valid labels sequence


def test_recipes_are_the_sdks_own_and_the_schemas():
    """Every audio / vision recipe a dataset may name is a key of the SDK's high-level table, fetched from its URL
    path; the schema offers exactly these and refuses another dataset's."""
    from mmsdk.mmdatasdk.dataset.standard_datasets import CMU_MOSEI, CMU_MOSI

    from rider.config import ConfigError, validate_config
    from rider.data.download import RECIPES

    for dataset, module in (("mosi", CMU_MOSI), ("mosei", CMU_MOSEI)):
        for role, recipes in RECIPES[dataset].items():
            for recipe in recipes:
                url = sdk_urls(DownloadConfig(dataset=dataset, **{role: recipe}), roles=[role])[role]
                assert urlsplit(url).path == urlsplit(module.highlevel[recipe]).path
        facet = {"mosi": "FACET 4.1", "mosei": "FACET 4.2"}[dataset]
        assert sdk_urls(DownloadConfig(dataset=dataset)) == sdk_urls(
            DownloadConfig(dataset=dataset, audio="COVAREP", vision=facet))
    with pytest.raises(ValueError, match=r"cmu.vision = 'FACET 4.1': not one of the SDK's mosei vision recipes"):
        sdk_urls(DownloadConfig(dataset="mosei", vision="FACET 4.1"))
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    offered = schema["$defs"]["cmu"]["properties"]
    for role in ("audio", "vision"):
        assert set(offered[role]["enum"]) - {None} == {r for d in RECIPES.values() for r in d[role]}
    with pytest.raises(ConfigError, match=r"'datasets.m.cmu.vision' = \"FACET 4.1\""):
        validate_config({"datasets": {"m": {"source": "cmu", "folds": "mosei",
                                            "cmu": {"dataset": "mosei", "vision": "FACET 4.1"}}}}, schema)
    validate_config({"datasets": {"m": {"source": "cmu", "cmu": {"audio": "OpenSmile-emobase2010"}}}}, schema)


def test_another_recipe_is_fetched_and_its_width_flows_into_the_cache(mirror, tiny_dataset, tmp_path):
    """OpenSMILE audio (here 16-d) instead of COVAREP: downloaded from its own URL, aligned and cached at its
    width, which the models then read from the cache."""
    from rider.data.align import align
    from rider.data.cache import build_cache, cache_features
    from rider.data.csd import read_metadata, read_sequence
    from rider.data.folds import standard_folds

    narrow = tmp_path / "opensmile.csd"
    entries = read_sequence(tiny_dataset["audio"], ROLES["audio"])
    for entry in entries.values():
        entry["features"] = entry["features"][:, :16]
    write_sequence(narrow, "audio", entries, read_metadata(tiny_dataset["audio"]))
    opensmile = urlsplit(sdk_urls(DownloadConfig(audio="OpenSMILE"), roles=["audio"])["audio"]).path
    mirror.files[opensmile] = narrow.read_bytes()
    raw = tmp_path / "raw"
    spec = {"source": "cmu", "cmu": {"dataset": "mosi", "base_url": mirror.base_url, "audio": "OpenSMILE", **FAST}}
    assert main(["download", "--spec", json.dumps(spec), "--out-dir", str(raw)]) == 0
    assert mirror.count(opensmile) == 1 and mirror.count(sdk_paths()["audio"]) == 0
    paths = {role: raw / RAW_FILES[role] for role in ("words", "audio", "vision", "labels")}
    align(paths, tmp_path / "aligned.h5")
    build_cache(tmp_path / "aligned.h5", tiny_dataset["glove"], standard_folds("mosi"), tmp_path / "cache.h5")
    assert cache_features(tmp_path / "cache.h5")["audio"] == 16
