"""Per-sample test predictions of one evaluated model: clean and at every severity of every stressor.

``rider.evaluate`` writes them beside eval.json so that the report can test differences between models by a
paired bootstrap over test samples (``rider.report.bootstrap``): every model is scored on the same segments, so
resampling segments resamples all models together. Layout of the HDF5 file:

    /ids          (N,) str     segment ids of the test split, in cache order
    /labels       (N,) float   their labels
    /clean        (N,) float   predictions on the clean inputs
    /stress/<s>   (K, N) float predictions at each of the K severities of stressor s; attribute ``severities`` (K,)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from rider.atomic import atomic_path
from rider.errors import DataError
from rider.h5 import open_h5

WHAT = "predictions file"


@dataclass(frozen=True)
class Predictions:
    ids: np.ndarray  # (N,) str (object array when read back)
    labels: np.ndarray  # (N,) float64
    clean: np.ndarray  # (N,) float64
    stress: Mapping[str, tuple[np.ndarray, np.ndarray]]  # stressor -> (severities (K,), predictions (K, N))


def write_predictions(path: str | os.PathLike, predictions: Predictions) -> None:
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("ids", data=np.asarray(predictions.ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("labels", data=np.asarray(predictions.labels, dtype=np.float64))
        f.create_dataset("clean", data=np.asarray(predictions.clean, dtype=np.float64))
        group = f.create_group("stress")
        for stressor, (severities, values) in predictions.stress.items():
            data = group.create_dataset(stressor, data=np.asarray(values, dtype=np.float64))
            data.attrs["severities"] = np.asarray(severities, dtype=np.float64)


def read_predictions(path: str | os.PathLike) -> Predictions:
    """Read and check a predictions file.

    Raises:
        FileNotFoundError: no file. DataError: unreadable HDF5, a missing dataset, shapes that disagree with the
            number of ids, or non-finite predictions; the message names the file and the dataset.
    """
    path = Path(path)
    with open_h5(path, WHAT) as f:
        try:
            ids = np.asarray(f["ids"].asstr()[()], dtype=object)
            labels, clean = f["labels"][()].astype(np.float64), f["clean"][()].astype(np.float64)
            stress = {name: (np.asarray(data.attrs["severities"], dtype=np.float64), data[()].astype(np.float64))
                      for name, data in f["stress"].items()}
        except KeyError as err:
            raise DataError(f"{path}: {WHAT} lacks {err.args[0] if err.args else 'a dataset'}") from None
        except OSError as err:  # a damaged chunk surfaces only when its data is read
            raise DataError(f"{path}: not a readable {WHAT} (truncated or corrupt?): {err}") from None
    n = len(ids)
    arrays = [("labels", labels, (n,)), ("clean", clean, (n,)),
              *((f"stress/{name}", values, (len(severities), n)) for name, (severities, values) in stress.items())]
    for name, values, expected in arrays:
        if values.shape != expected:
            raise DataError(f"{path}: {name} has shape {values.shape}, expected {expected} ({n} ids)")
        if not np.all(np.isfinite(values)):
            raise DataError(f"{path}: {name} holds non-finite values")
    return Predictions(ids=ids, labels=labels, clean=clean, stress=stress)
