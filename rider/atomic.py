"""Write outputs so that a crash never leaves a half-written file where a finished one is expected.

Every stage writes to a temporary name in the destination folder and renames on success; ``os.replace``
is atomic within one filesystem, so readers (and Snakemake) see either the old file or the new one.

A process killed outright (kill -9, out of memory, a cluster time limit) runs no cleanup, so its temporary file
stays. The temporary's name records the host and process that write it (``.<final>.<host>.<pid>.<random>.tmp``),
and the next write of the same output removes every stale one: a temporary of a process that no longer runs on
this host, or, from another host (whose processes cannot be asked), one left untouched for ``FOREIGN_STALE_S``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)

# The host in a temporary's name, with anything that would confuse parsing the name replaced.
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "localhost"
# A temporary from another host is only known to be dead by its age; every writer here touches its file within
# seconds, so an hour of silence means nobody is writing it.
FOREIGN_STALE_S = 3600.0


def _stale_pattern(final: Path) -> re.Pattern[str]:
    # New names carry host and pid; names from before (.<final>.<8 random>.tmp<suffix>) carry neither.
    name = re.escape(final.name)
    return re.compile(rf"^\.{name}\.(?:(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.)?[A-Za-z0-9_]+\.tmp(?:\.[^.]+)?$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def stale_temporaries(final: str | os.PathLike) -> list[Path]:
    """Temporary files of ``final`` left by writers that were killed (see the module docstring)."""
    final = Path(final)
    if not final.parent.is_dir():
        return []
    pattern, now, stale = _stale_pattern(final), time.time(), []
    for entry in final.parent.iterdir():
        match = pattern.match(entry.name)
        if match is None or not entry.is_file():
            continue
        host, pid = match.group("host"), match.group("pid")
        if host is None:  # written by an earlier version of this module, which no longer runs
            stale.append(entry)
        elif host == HOST:
            if int(pid) != os.getpid() and not _alive(int(pid)):
                stale.append(entry)
        else:
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat().st_mtime > FOREIGN_STALE_S:
                    stale.append(entry)
    return sorted(stale)


def remove_stale_temporaries(final: str | os.PathLike) -> list[Path]:
    """Delete the stale temporaries of ``final``; return what was removed (each is logged)."""
    removed = []
    for path in stale_temporaries(final):
        with contextlib.suppress(FileNotFoundError):  # another writer may have cleaned it first
            path.unlink()
            removed.append(path)
            log.warning("removed %s, left by an earlier run of this stage that was killed while writing", path)
    return removed


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    Stale temporaries of ``final`` from killed runs are removed first.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.{HOST}.{os.getpid()}.", suffix=f".tmp{suffix}",
                                    dir=final.parent)
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
