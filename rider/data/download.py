"""The ``cmu`` source: the standard CMU-MOSI / CMU-MOSEI .csd files, at the URLs the SDK ships. Audio and vision
are the paper's COVAREP and Facet, or another of the SDK's high-level recipes the dataset names (``RECIPES``).

The SDK's own downloader gives up on the first error and leaves partial files behind; the CMU server is often
down. Here each file is fetched into a partial file beside its destination (``.<name>.part``):

- a failed attempt (connection refused, HTTP error, read timeout, a body shorter than its Content-Length) is
  retried after a wait that starts at ``backoff_s`` and doubles, at most ``retries`` attempts in all;
- the partial file is kept between attempts and the next one asks for the rest (``Range: bytes=<size>-``): a
  206 answer is appended, a 200 answer (a server that ignores ranges) restarts the file, a 416 answer or a 206
  from the wrong byte deletes it and starts over. A partial file left by a killed run is resumed the same way;
- a complete file is checked before it is renamed into place: every video must read as a valid sequence of its
  role, and the md5 in its metadata, when there is one, must match (``content_md5``). A file that fails the
  check is deleted and fetched again from the start; an md5 mismatch on a fresh, unresumed download fails at once
  (fetching again would give the same bytes);
- after the last failed attempt the partial file is deleted and ``DownloadError`` names the URL.

A ``base_url`` replaces the SDK's host so that a mirror can serve the same paths.

The md5: the SDK writes a ``md5`` metadata key but never computes it (``computational_sequence.deploy`` sets it
to None, beside a "TODO: hash check"); the genuine CMU files we have hold ``null``. We define it as the md5 of the
file's data, not of its bytes (the file holds its own md5, and HDF5 containers with equal data differ in bytes):
for each video in sorted order of its id, the id in UTF-8 and a NUL byte, then for ``intervals`` and then
``features``: the numpy dtype string (e.g. ``<f8``, ``|S12``), the shape as text (e.g. ``(3, 2)``), a NUL
byte and the array's bytes in C order. A value of null/None/empty means "no md5" and is not checked; any other
value that is not 32 hex digits is reported and not checked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py

from rider.data.csd import ROLES, SequenceRole, read_metadata
from rider.errors import DataError

log = logging.getLogger(__name__)

SDK_HOST = "http://immortal.multicomp.cs.cmu.edu"
# role -> (SDK module, dictionary, key) per dataset: the URLs themselves live in the SDK. Audio and vision are the
# paper's COVAREP and Facet unless the dataset chooses another of the SDK's high-level recipes (``RECIPES``).
_SDK_ENTRIES = {
    "mosi": {"words": ("raw", "words"), "audio": ("highlevel", "COVAREP"), "vision": ("highlevel", "FACET 4.1"),
             "labels": ("labels", "Opinion Segment Labels")},
    "mosei": {"words": ("raw", "words"), "audio": ("highlevel", "COVAREP"), "vision": ("highlevel", "FACET 4.2"),
              "labels": ("labels", "Sentiment Labels")},
}
# Fetched only when a dataset asks for them (datasets.<name>.glove_vectors).
_SDK_OPTIONAL = {
    "mosi": {"glove_vectors": ("highlevel", "glove_vectors")},
    "mosei": {"glove_vectors": ("highlevel", "glove_vectors")},
}
# The SDK's high-level sequences a dataset may take its audio or vision from (``cmu.audio``, ``cmu.vision``): the
# keys of mmsdk's cmu_mosi.highlevel / cmu_mosei.highlevel. Each file's width is its own (rider.data.csd).
RECIPES = {
    "mosi": {"audio": ("COVAREP", "OpenSMILE", "OpenSmile-emobase2010"), "vision": ("FACET 4.1", "OpenFace")},
    "mosei": {"audio": ("COVAREP", "OpenSMILE"), "vision": ("FACET 4.2", "OpenFace2.0")},
}
_NO_MD5 = {"", "null", "none"}
_HEX_MD5 = re.compile(r"^[0-9a-f]{32}$")
_CONTENT_RANGE = re.compile(r"^bytes (?P<start>\d+)-(?P<end>\d+)/(?P<total>\d+|\*)$")
_BLOCK = 1 << 20


@dataclass(frozen=True)
class DownloadConfig:
    dataset: str = "mosi"        # mosi | mosei
    base_url: str = SDK_HOST     # a mirror serving the SDK's paths
    retries: int = 5             # attempts per file, all together
    backoff_s: float = 2.0       # first wait; doubles after each failure
    timeout_s: float = 60.0      # per connection attempt / read
    audio: str | None = None     # a key of RECIPES[dataset]["audio"]; None: the paper's COVAREP
    vision: str | None = None    # a key of RECIPES[dataset]["vision"]; None: the paper's Facet


class DownloadError(RuntimeError):
    """A file could not be fetched; the message names the URL."""


class _Retry(Exception):
    """This attempt failed; the next one may resume from the partial file."""


class _Restart(Exception):
    """This attempt's file is unusable; the partial file is deleted and the next attempt starts over."""


def sdk_urls(config: DownloadConfig, roles: Sequence[str] | None = None) -> dict[str, str]:
    """URLs of the words, audio, vision and labels sequences (or of ``roles``, which may name the optional
    ``glove_vectors``), with the host replaced by ``base_url``."""
    from mmsdk.mmdatasdk.dataset import standard_datasets

    module = {"mosi": standard_datasets.CMU_MOSI, "mosei": standard_datasets.CMU_MOSEI}[config.dataset]
    entries = dict(_SDK_ENTRIES[config.dataset])
    for role in ("audio", "vision"):
        recipe = getattr(config, role)
        if recipe is not None:
            if recipe not in RECIPES[config.dataset][role]:
                raise ValueError(f"cmu.{role} = {recipe!r}: not one of the SDK's {config.dataset} {role} recipes "
                                 f"{list(RECIPES[config.dataset][role])}")
            entries[role] = ("highlevel", recipe)
    if roles is not None:
        known = {**entries, **_SDK_OPTIONAL[config.dataset]}
        unknown = sorted(set(roles) - set(known))
        if unknown:
            raise ValueError(f"no SDK sequence for role(s) {unknown}; known: {sorted(known)}")
        entries = {role: known[role] for role in roles}
    urls = {}
    for role, (table, key) in entries.items():
        url = getattr(module, table)[key]
        urls[role] = config.base_url.rstrip("/") + url[len(SDK_HOST):]
    return urls


def content_md5(path: str | os.PathLike, role: SequenceRole | None = None) -> str:
    """The md5 of a .csd's data as defined above, read one video at a time (each checked against ``role``,
    if given)."""
    from rider.data.fast_align import CsdReader

    digest = hashlib.md5()
    with CsdReader(path, role) as reader:
        for video in sorted(reader.videos):
            entry = reader.read(video)
            digest.update(video.encode("utf-8") + b"\0")
            for field in ("intervals", "features"):
                array = entry[field]
                digest.update(f"{array.dtype.str}{array.shape}".encode() + b"\0")
                digest.update(array.tobytes(order="C"))
    return digest.hexdigest()


def stamp_md5(path: str | os.PathLike) -> str:
    """Write the file's ``content_md5`` into its ``md5`` metadata (for a mirror); return it."""
    digest = content_md5(path)
    with h5py.File(path, "r+") as handle:
        metadata = handle[next(iter(handle.keys()))]["metadata"]
        if "md5" in metadata:
            del metadata["md5"]
        metadata.create_dataset("md5", (1,), dtype=h5py.string_dtype())[0] = digest
    return digest


def metadata_md5(path: str | os.PathLike) -> str | None:
    """The md5 a file's metadata declares, or None where it declares none (null, None, empty or absent)."""
    try:
        value = read_metadata(path).get("md5")
    except (KeyError, OSError) as err:
        raise DataError(f"{path}: its metadata cannot be read: {err!r}") from None
    if value is None or value.strip().lower() in _NO_MD5:
        return None
    value = value.strip().lower()
    if not _HEX_MD5.match(value):
        log.warning("%s: md5 metadata %r is not an md5 digest; not checked", path, value)
        return None
    return value


class Md5Mismatch(DataError):
    """The data's md5 differs from the one in the file's metadata."""


def verify(path: str | os.PathLike, role: str) -> None:
    """Every video reads as a valid ``role`` sequence and the declared md5, if any, matches; else DataError."""
    actual = content_md5(path, ROLES[role])  # first: it reports an unreadable file as DataError
    declared = metadata_md5(path)
    if declared is not None and declared != actual:
        raise Md5Mismatch(f"md5 of the data is {actual}, its metadata says {declared}")


def _transfer(session, url: str, partial: Path, config: DownloadConfig) -> bool:
    """One HTTP request into ``partial``, resuming from its size; return True if the file was resumed."""
    import requests
    import urllib3
    from tqdm import tqdm

    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # byte ranges count the bytes on the wire
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with session.get(url, stream=True, timeout=config.timeout_s, headers=headers) as response:
        if response.status_code == 416:
            raise _Restart(f"the server refused the range from byte {offset}")
        response.raise_for_status()
        if response.status_code == 206:
            match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
            if match is None or int(match["start"]) != offset:
                raise _Restart(f"asked for bytes from {offset}, got Content-Range "
                               f"{response.headers.get('content-range')!r}")
            total = None if match["total"] == "*" else int(match["total"])
            mode, resumed = "ab", True
        else:
            if offset:
                log.info("%s: the server ignored the range request; starting over", url)
            offset, mode, resumed = 0, "wb", False
            total = None
        length = response.headers.get("content-length")
        expected = int(length) if length is not None else None
        if total is None and expected is not None:
            total = offset + expected
        # read1 hands over whatever has arrived, so a connection that dies mid-block loses nothing already
        # received (iter_content's read(n) drops a short last block when it raises).
        read = getattr(response.raw, "read1", response.raw.read)
        received = 0
        try:
            with open(partial, mode) as handle, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                     desc=partial.name.removeprefix(".").removesuffix(".part")) as bar:
                while block := read(_BLOCK, decode_content=False):
                    handle.write(block)
                    received += len(block)
                    bar.update(len(block))
        except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as err:
            raise _Retry(f"connection lost after {offset + received} bytes: {err}") from None
    if expected is not None and received != expected:
        raise _Retry(f"received {received} of {expected} bytes")
    return resumed


def fetch(url: str, destination: Path, role: str, config: DownloadConfig) -> None:
    """Download ``url`` to ``destination`` (resuming, retrying with backoff, verified); else DownloadError."""
    import requests

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.part")
    wait = config.backoff_s
    try:
        with requests.Session() as session:
            for attempt in range(1, config.retries + 1):
                resumed = False
                try:
                    resumed = _transfer(session, url, partial, config)
                    verify(partial, role)
                    os.replace(partial, destination)
                    return
                except Md5Mismatch as err:
                    partial.unlink(missing_ok=True)
                    if not resumed:
                        raise DownloadError(f"{url}: {err}") from None
                    failure = f"{err} (after a resumed download; starting over)"
                except DataError as err:
                    partial.unlink(missing_ok=True)
                    failure = f"not a valid {role} sequence, starting over: {err}"
                except _Restart as err:
                    partial.unlink(missing_ok=True)
                    failure = f"{err}; starting over"
                except (_Retry, requests.RequestException) as err:
                    failure = str(err)
                if attempt == config.retries:
                    raise DownloadError(f"{url}: download failed after {attempt} attempt(s): {failure}")
                log.warning("%s: attempt %d of %d failed (%s); retrying in %.3g s", url, attempt, config.retries,
                            failure, wait)
                time.sleep(wait)
                wait *= 2
    finally:
        partial.unlink(missing_ok=True)  # nothing half-written outlives a failed fetch


def download(config: DownloadConfig, out_dir: str | os.PathLike, filenames: dict[str, str],
             roles: Sequence[str] | None = None) -> dict[str, Path]:
    """Fetch every role's sequence (or those of ``roles``) into ``out_dir``; files already there (complete, since
    writes are atomic) stay."""
    out_dir = Path(out_dir)
    paths = {}
    for role, url in sdk_urls(config, roles).items():
        path = out_dir / filenames[role]
        if path.exists():
            log.info("%s: already there, not downloaded again", path)
        else:
            log.info("downloading %s -> %s", url, path)
            fetch(url, path, role, config)
        paths[role] = path
    return paths
