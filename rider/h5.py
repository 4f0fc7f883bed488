"""Opening HDF5 inputs so that a missing, truncated or corrupt file is reported by name, not by an h5py trace."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import h5py

from rider.errors import DataError


@contextlib.contextmanager
def open_h5(path: str | os.PathLike, what: str) -> Iterator[h5py.File]:
    """``h5py.File(path, "r")``; ``what`` names the kind of file in the error ("cache file", "stress plan")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path}: not a readable {what} (truncated or corrupt?): {err}") from None
    with handle:
        yield handle
