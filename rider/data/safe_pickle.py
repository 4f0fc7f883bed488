"""Reading a pickle of arrays without running the code a pickle can carry.

Loading a pickle calls whatever functions it names: a file that names ``os.system`` runs a command. The data
pickles researchers trade (MulT's, MMSA's: rider.data.pickle_source) hold nothing but dictionaries, lists,
strings, numbers and numpy arrays, so ``load_pickle`` reads them with an unpickler that resolves only the globals
those need and refuses any other, before it is called, in one line naming the file and the global
(``module.name``). Admitted:

- the builtin containers and scalars (``dict``, ``list``, ``set``, ``bytes``, ``int`` ...; most of them are
  opcodes that name no global at all), ``collections.OrderedDict``;
- numpy arrays, dtypes and scalars: ``numpy.ndarray``, ``numpy.dtype`` and numpy's reconstruction helpers
  (``_reconstruct``, ``scalar``, ``_frombuffer``) under the module names numpy 1.x (``numpy.core.*``) and 2.x
  (``numpy._core.*``) write;
- ``_codecs.encode``, which Python 3 writes for ``bytes`` under protocols 0-2, for the latin-1 codec only.

Python 2 pickles (MulT's files come from Python 2) are read with ``encoding="latin1"``, the one encoding that
turns their byte strings, numpy's raw array data among them, back into the same bytes; their ``__builtin__``
module reads as ``builtins``. A file that is not a whole pickle (truncated, corrupt, not a pickle) is a
``DataError`` naming it.
"""

from __future__ import annotations

import collections
import importlib
import os
import pickle
from pathlib import Path
from typing import Any, Callable

from rider.errors import DataError


class RefusedGlobal(DataError):
    """The pickle names a global outside the admitted ones; nothing it names was called."""


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # What Python 3 writes for a bytes object under protocols 0-2: _codecs.encode(text, "latin1"). Any other codec
    # (zlib, base64, rot13 ...) is no part of such a file.
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591", "l1"):
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r}, not latin-1")
    return text.encode("latin-1", errors)


def _numpy_attribute(modules: tuple[str, ...], name: str) -> Callable[[], Any]:
    """The attribute ``name`` of the first of ``modules`` that imports (numpy 2 moved numpy.core to numpy._core;
    importing the old name there warns)."""
    def resolve() -> Any:
        for module in modules:
            try:
                return getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"numpy has no {name} in {' or '.join(modules)}")
    return resolve


def _admitted() -> dict[tuple[str, str], Callable[[], Any]]:
    import builtins

    table: dict[tuple[str, str], Callable[[], Any]] = {}
    for name in ("dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "str", "int", "float",
                 "complex", "bool"):
        for module in ("builtins", "__builtin__"):
            table[(module, name)] = (lambda value: lambda: value)(getattr(builtins, name))
    table[("_codecs", "encode")] = lambda: _latin1_encode
    table[("collections", "OrderedDict")] = lambda: collections.OrderedDict
    for name in ("ndarray", "dtype"):
        table[("numpy", name)] = _numpy_attribute(("numpy",), name)
    for submodule, names in (("multiarray", ("_reconstruct", "scalar")), ("numeric", ("_frombuffer",))):
        modules = (f"numpy._core.{submodule}", f"numpy.core.{submodule}")
        for module in modules:
            for name in names:
                table[(module, name)] = _numpy_attribute(modules, name)
    return table


ADMITTED = _admitted()


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` resolves the ``ADMITTED`` globals and refuses every other."""

    def __init__(self, handle, path: Path):
        super().__init__(handle, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        resolve = ADMITTED.get((module, name))
        if resolve is None:
            raise RefusedGlobal(
                f"{self._path}: refused: the pickle asks for the global {module}.{name}, which a data file of "
                "arrays never needs (loading it could run code); only builtin containers and numpy arrays are "
                "read (rider.data.safe_pickle)")
        return resolve()


def load_pickle(path: str | os.PathLike) -> Any:
    """The object pickled in ``path``, read by the restricted unpickler (module docstring)."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as err:
        raise DataError(f"{path}: cannot be read: {err.strerror or err}") from None
    with handle:
        try:
            return _ArraysOnlyUnpickler(handle, path).load()
        except RefusedGlobal:
            raise
        except MemoryError:
            raise DataError(f"{path}: not enough memory to read the pickle") from None
        # A truncated or corrupt file fails in many ways (EOFError, UnpicklingError, numpy's ValueError on a
        # short buffer, a KeyError on a bad memo index ...): whatever it is, the file is not a whole pickle.
        except Exception as err:  # noqa: BLE001
            detail = " ".join(str(err).split()) or type(err).__name__
            raise DataError(f"{path}: not a readable pickle (truncated or corrupt?): {type(err).__name__}: "
                            f"{detail}") from None
