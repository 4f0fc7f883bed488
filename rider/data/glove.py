"""GloVe-format word vectors: one line per word, ``word v1 v2 ... vd``, as Stanford distributes them."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from rider.atomic import atomic_path
from rider.errors import DataError


def write_glove(path: str | os.PathLike, words: list[str], vectors: np.ndarray) -> None:
    with atomic_path(path, suffix=".txt") as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for word, vector in zip(words, vectors):
            handle.write(word + " " + " ".join(f"{x:.5f}" for x in vector) + "\n")


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def glove_width(path: str | os.PathLike, sample: int = 20, lines: int = 1000) -> tuple[int, int] | None:
    """(width, line number): how many numbers end a line whose first field is not itself a number, the most
    common count over the first ``sample`` such lines, and the first line that has it.

    A word may contain spaces (". . ."), so one line alone cannot tell a word's trailing number from a vector's
    first value; a line starting with a number (a numeric token, or a word2vec-style header) is skipped for that
    reason. None when the first ``lines`` lines give no answer.
    """
    first: dict[int, int] = {}
    counts: collections.Counter[int] = collections.Counter()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if number > lines or sum(counts.values()) >= sample:
                break
            fields = line.rstrip("\n").split(" ")
            if not fields[0] or _is_number(fields[0]):
                continue
            width = 0
            for field in reversed(fields):
                if not _is_number(field):
                    break
                width += 1
            counts[width] += 1
            first.setdefault(width, number)
    if not counts:
        return None
    width = max(counts, key=lambda w: (counts[w], -first[w]))
    return width, first[width]


def read_glove(path: str | os.PathLike, wanted: Iterable[str] | None = None, dim: int = 300) -> dict[str, np.ndarray]:
    """Vectors of the ``wanted`` words (all words if None).

    Real GloVe files hold millions of words and some tokens contain spaces, so a line is split from the right:
    the last ``dim`` fields are the vector, the rest is the word. A file whose vectors are wider than ``dim`` would
    split the same way, every word then carrying numbers and matching nothing: its width is checked first.
    """
    wanted = None if wanted is None else set(wanted)
    vectors: dict[str, np.ndarray] = {}
    path = Path(path)
    width = glove_width(path)
    if width is not None and width[0] != dim:
        raise DataError(f"{path}: line {width[1]} has {width[0]} values, expected {dim} (cache.glove_dim): set "
                        f"cache.glove_dim to the file's width or use a {dim}-d file")
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
