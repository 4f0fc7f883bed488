"""GloVe-format word vectors: one line per word, ``word v1 v2 ... vd``, as Stanford distributes them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from rider.atomic import atomic_path
from rider.data.csd import DataError


def write_glove(path: str | os.PathLike, words: list[str], vectors: np.ndarray) -> None:
    with atomic_path(path, suffix=".txt") as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for word, vector in zip(words, vectors):
            handle.write(word + " " + " ".join(f"{x:.5f}" for x in vector) + "\n")


def read_glove(path: str | os.PathLike, wanted: Iterable[str] | None = None, dim: int = 300) -> dict[str, np.ndarray]:
    """Vectors of the ``wanted`` words (all words if None).

    Real GloVe files hold millions of words and some tokens contain spaces, so a line is split from the right:
    the last ``dim`` fields are the vector, the rest is the word.
    """
    wanted = None if wanted is None else set(wanted)
    vectors: dict[str, np.ndarray] = {}
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").rsplit(" ", dim)
            if len(parts) != dim + 1:
                raise DataError(f"{path}: line {number} has {len(parts) - 1} values, expected {dim}")
            word = parts[0]
            if wanted is not None and word not in wanted:
                continue
            try:
                vectors[word] = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise DataError(f"{path}: line {number} ('{word}') holds a value that is not a number") from None
    return vectors
