"""Checksums and the provenance record that every derived file carries in its attributes."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping

import rider


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def provenance(inputs: Mapping[str, str | os.PathLike], config: Mapping[str, Any]) -> str:
    """JSON naming each input with its checksum, the configuration used and the code version."""
    record = {
        "rider_version": rider.__version__,
        "inputs": {name: {"path": str(path), "sha256": sha256_file(path)} for name, path in inputs.items()},
        "config": config,
    }
    return json.dumps(record, sort_keys=True)
