"""Computational sequences (.csd): written and read through the CMU Multimodal SDK, validated on the way in.

A .csd file is HDF5: ``/<root name>/data/<video>/{intervals (n,2), features (n,d)}`` and
``/<root name>/metadata/<key>``. The SDK checks little (it warns and carries on), so every read here checks
what later stages rely on and names the file, the video and the field when something is wrong.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from rider.atomic import atomic_path
from rider.errors import DataError

# The SDK's own list of the ten metadata keys; `deploy()` prompts on stdin for any that is missing.
METADATA_KEYS = (
    "root name",
    "computational sequence description",
    "computational sequence version",
    "alignment compatible",
    "dataset name",
    "dataset version",
    "creator",
    "contact",
    "featureset bib citation",
    "dataset bib citation",
)

Entries = dict[str, dict[str, np.ndarray]]


@dataclass(frozen=True)
class SequenceRole:
    """What a stage expects of one computational sequence."""

    name: str                      # words | audio | vision | labels
    feature_dim: int | None        # None: words (one string per row)
    allow_nonfinite: bool = False  # COVAREP holds -inf/NaN; cleaned later and counted
    value_range: tuple[float, float] | None = None
    # Audio and vision may be any of the SDK's recipes (COVAREP 74-d, OpenSMILE, Facet 35-d, OpenFace ...): the
    # file's first video sets the width (``of_file``) and every other video must have it; feature_dim is the paper's.
    any_width: bool = False

    def of_file(self, first_shape: tuple[int, ...]) -> "SequenceRole":
        """This role with the width of a file whose first video's features have ``first_shape`` (``any_width``)."""
        if not self.any_width or len(first_shape) != 2:
            return self
        return replace(self, feature_dim=int(first_shape[1]), any_width=False)


ROLES = {
    "words": SequenceRole("words", None),
    "audio": SequenceRole("audio", 74, allow_nonfinite=True, any_width=True),
    "vision": SequenceRole("vision", 35, allow_nonfinite=True, any_width=True),
    "labels": SequenceRole("labels", 1, value_range=(-3.0, 3.0)),
    # The SDK's GloVe vector of each word (CMU_MOSI_TimestampedWordVectors): an alternative to a GloVe file.
    "glove_vectors": SequenceRole("glove_vectors", 300),
}


def _sdk():
    # Imported lazily: `import mmsdk` imports torch (about 2 s), which `rider --help` should not pay for.
    from mmsdk import mmdatasdk

    return mmdatasdk


def write_sequence(path: str | os.PathLike, root_name: str, entries: Entries, metadata: Mapping[str, str]) -> None:
    """Write ``entries`` as a .csd through the SDK's own writer, atomically."""
    missing = [key for key in METADATA_KEYS if key not in metadata and key != "root name"]
    if missing:
        raise ValueError(f"{path}: metadata lacks {missing}; the SDK would prompt for them on stdin")
    sequence = _sdk().computational_sequence(root_name)
    sequence.setData(entries, root_name)
    sequence.setMetadata({**metadata, "root name": root_name}, root_name)
    with atomic_path(path, suffix=".csd") as tmp:
        sequence.deploy(str(tmp))


def _decode(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    # The CMU files store metadata JSON-encoded ('"CMU-MOSI"'); ours are plain strings.
    try:
        decoded = json.loads(value)
        return decoded if isinstance(decoded, str) else value
    except (json.JSONDecodeError, TypeError):
        return str(value)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    with h5py.File(path, "r") as handle:
        root = handle[next(iter(handle.keys()))]
        return {key: _decode(root["metadata"][key][0]) for key in root["metadata"].keys()}


def read_sequence(path: str | os.PathLike, role: SequenceRole) -> Entries:
    """Load a .csd with the SDK and check it against ``role``; return ``{video: {intervals, features}}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such computational sequence ({role.name})")
    try:
        with h5py.File(path, "r"):
            pass
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 computational sequence (truncated or corrupt?): {err}") from None
    try:
        sequence = _sdk().computational_sequence(str(path))
    except Exception as err:  # the SDK raises bare RuntimeErrors with colour codes
        raise DataError(f"{path}: the SDK could not read it: {err}") from None
    try:
        entries = {
            video: {"intervals": np.asarray(group["intervals"]), "features": np.asarray(group["features"])}
            for video, group in sequence.data.items()
        }
    except (OSError, KeyError) as err:
        raise DataError(f"{path}: a video's 'intervals' or 'features' cannot be read (truncated?): {err}") from None
    finally:
        sequence.h5handle.close()
    if not entries:
        raise DataError(f"{path}: holds no videos")
    role = role.of_file(next(iter(entries.values()))["features"].shape)
    for video, entry in entries.items():
        _check_entry(path, role, video, entry)
    return entries


def _check_entry(path: Path, role: SequenceRole, video: str, entry: dict[str, np.ndarray]) -> None:
    intervals, features = entry["intervals"], entry["features"]
    where = f"{path}: video '{video}'"
    if intervals.ndim != 2 or intervals.shape[1] != 2:
        raise DataError(f"{where} field 'intervals' has shape {intervals.shape}, expected (n, 2)")
    if features.ndim != 2 or features.shape[0] != intervals.shape[0]:
        raise DataError(
            f"{where} field 'features' has shape {features.shape}, expected ({intervals.shape[0]}, d) "
            "to match its intervals"
        )
    if not np.all(np.isfinite(intervals)):
        raise DataError(f"{where} field 'intervals' holds NaN or infinite times")
    if role.feature_dim is None:
        if features.dtype.kind not in "SUO":
            raise DataError(f"{where} field 'features' holds {features.dtype}, expected words (strings)")
        return
    if features.shape[1] != role.feature_dim:
        set_by = ", as the file's first video" if role.name in ("audio", "vision") else ""
        raise DataError(
            f"{where} field 'features' has {features.shape[1]} features, expected {role.feature_dim} ({role.name}"
            f"{set_by})"
        )
    if features.dtype.kind not in "fiu":
        raise DataError(f"{where} field 'features' holds {features.dtype}, expected numbers ({role.name})")
    finite = np.isfinite(features)
    if not role.allow_nonfinite and not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise DataError(f"{where} field 'features' row {row} is {features[row].tolist()}: NaN/inf not allowed in {role.name}")
    if role.value_range is not None:
        low, high = role.value_range
        outside = (features < low) | (features > high)
        if outside.any():
            row = int(np.argwhere(outside)[0][0])
            raise DataError(
                f"{where} field 'features' row {row} is {features[row].tolist()}, outside [{low}, {high}] ({role.name})"
            )


def check_same_videos(sequences: Mapping[str, tuple[Path, Entries]], reference: str) -> None:
    """Every video of ``reference`` must exist in every sequence: the SDK would silently drop it."""
    wanted = set(sequences[reference][1])
    for name, (path, entries) in sequences.items():
        missing = sorted(wanted - set(entries))
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DataError(
                f"{path}: {len(missing)} video(s) of {sequences[reference][0].name} are missing from {name}: {shown}"
            )
