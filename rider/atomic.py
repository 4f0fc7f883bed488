"""Write outputs so that a crash never leaves a half-written file where a finished one is expected.

Every stage writes to a temporary name in the destination folder and renames on success; ``os.replace``
is atomic within one filesystem, so readers (and Snakemake) see either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs should read like any other file
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, value) -> None:
    """``value`` as indented JSON with sorted keys, written atomically."""
    import json

    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
