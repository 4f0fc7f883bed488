"""Checksums and the provenance record that every derived file carries, and the checks that read it back.

A derived file records what it was built from: the dataset's name, its configuration section and, for each
upstream file, a ``file_record`` (path and sha256 of the content). A stage that reads a derived file together
with its upstream file checks the pair (``check_built_from``) and a file made for another dataset
(``check_dataset``): a cache, plan or checkpoint built for something else is refused with a message naming both
files, instead of producing numbers about the wrong data.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import rider


class ProvenanceError(ValueError):
    """A file was built from other inputs, or for another dataset, than the ones it is used with."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | os.PathLike, sha256: str | None = None, **extra: Any) -> dict[str, Any]:
    """What a derived file keeps of one input: its path, the sha256 of its content and ``extra`` (a dataset
    name, say). ``sha256`` when the caller has it already (hashing a large file twice costs seconds)."""
    return {"path": str(path), "sha256": sha256 if sha256 is not None else sha256_file(path), **extra}


def provenance(inputs: Mapping[str, str | os.PathLike], config: Mapping[str, Any], **extra: Any) -> str:
    """JSON naming each input with its checksum, the configuration used, the code version and ``extra`` (the
    dataset's name, its source)."""
    record = {
        "rider_version": rider.__version__,
        "inputs": {name: file_record(path) for name, path in inputs.items()},
        "config": config,
        **extra,
    }
    return json.dumps(record, sort_keys=True)


def _short(sha256: str) -> str:
    return sha256[:12]


def check_built_from(derived: str | os.PathLike, what: str, recorded: Mapping[str, Any],
                     upstream: str | os.PathLike, upstream_what: str, sha256: str | None = None) -> str:
    """Raise ``ProvenanceError`` unless ``upstream`` has the content ``recorded`` (a ``file_record``) says
    ``derived`` was built from; return the upstream's sha256.

    ``what`` and ``upstream_what`` name the kinds of file ("stress plan", "cache file"); ``sha256``: the upstream's,
    when the caller has it already.
    """
    actual = sha256 if sha256 is not None else sha256_file(upstream)
    expected = recorded.get("sha256")
    if expected is None:
        raise ProvenanceError(f"{derived}: this {what} does not record the {upstream_what} it was built from; "
                              f"rebuild it from {upstream}")
    if actual != expected:
        was = recorded.get("path", "another file")
        same = Path(str(was)).resolve() == Path(upstream).resolve() if was else False
        since = " (that file has changed since)" if same else ""
        raise ProvenanceError(
            f"{derived}: this {what} was built from the {upstream_what} {was} (sha256 {_short(expected)}){since}, "
            f"not from {upstream} (sha256 {_short(actual)}); rebuild the {what} from {upstream}, or use the "
            f"{upstream_what} it was built from")
    return actual


def check_dataset(path: str | os.PathLike, what: str, recorded: str | None, expected: str | None,
                  expected_from: str = "") -> None:
    """Raise ``ProvenanceError`` when ``path`` (a ``what``) was built for a dataset other than ``expected``.

    Nothing is checked without an expected name, or for a file that records none (built by hand without one).
    ``expected_from`` says where the expected name comes from ("--dataset", "the checkpoint model.pt").
    """
    if not expected or not recorded or recorded == expected:
        return
    source = f" ({expected_from})" if expected_from else ""
    raise ProvenanceError(f"{path}: this {what} was built for dataset '{recorded}', not for '{expected}'{source}; "
                          "was it swapped or copied from another dataset?")
