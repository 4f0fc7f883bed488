"""Checked readers for the project's JSON and weight files: a missing, truncated or foreign file is named as such.

HDF5 files (cache, plan, predictions, aligned) open through ``rider.h5.open_h5``; this module does the same for
the rest, so that no stage meets a ``JSONDecodeError`` or a ``PytorchStreamReader`` trace from a damaged file:

    read_json(path, "evaluation")          eval.json, config.json, metadata.json, a report spec
    load_state_dict(path)                  model.pt: a plain state_dict, loaded with weights_only=True

Every error is ``FileNotFoundError`` (no file) or ``DataError`` (a file that is there but unusable), and its
message starts with the path.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from rider.errors import DataError


def read_json(path: str | os.PathLike, what: str, expect: type = dict) -> Any:
    """The JSON value in ``path`` (a ``what``, named in errors), which must be an ``expect`` (a dict by default)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}" + (" (a folder)" if path.is_dir() else ""))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable {what}: {err}") from None
    if not text.strip():
        raise DataError(f"{path}: {what} is empty (truncated? rebuild it)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        ending = " (it ends early: truncated?)" if err.pos >= len(text.rstrip()) else ""
        raise DataError(f"{path}: not a valid {what}: {err.msg} at line {err.lineno}, column {err.colno}{ending}"
                        ) from None
    if expect is not None and not isinstance(value, expect):
        raise DataError(f"{path}: {what} holds a JSON {type(value).__name__}, expected a {expect.__name__}")
    return value


def load_state_dict(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint's weights: a dict of tensors saved by ``torch.save``, loaded with ``weights_only=True``, so a
    file that would run code when unpickled (a pickled module, a crafted file) is refused rather than run."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file" + (" (a folder)" if path.is_dir() else ""))
    if path.stat().st_size == 0:
        raise DataError(f"{path}: weights file is empty (truncated? retrain)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: refused: not a plain state_dict; loading it would run code or build objects "
                        f"(weights_only: {first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: not a readable weights file (truncated or corrupt?): {first}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: holds a {type(state).__name__}, expected a state_dict (names -> tensors)")
    return state
