"""The training cache: word-aligned features per split, padded to L words, with the train-set statistics.

Layout (``CACHE_SCHEMA_VERSION``; ``validate_cache`` checks a file against it)::

    /<split>/text_glove (N, L, 300) float32  GloVe vector of each word (from a GloVe-format file, or the SDK's
                                             word-vector sequence aligned to the words); 0 for padding, 'sp' and
                                             unknown words
    /<split>/text_bert  (N, L, H)   float32  optional (``text_encoder``): a BERT-family encoder's hidden states,
                                             per segment, averaged over each word's sub-tokens (rider.data.bert)
    /<split>/audio      (N, L, Da)  float32  word-level mean of the audio frames (Da: the sequence's width, 74
                                             for the paper's COVAREP; widths follow the input files)
    /<split>/vision     (N, L, Dv)  float32  (35 for the paper's Facet)
    /<split>/lengths    (N,)        int32    real words (the first `lengths` rows; the rest is zero padding)
    /<split>/labels     (N,)        float32  sentiment in [-3, 3]
    /<split>/ids        (N,)        str      SDK segment key "<video>[<i>]" (from a pickle: its ids in the same
                                             form, rider.data.pickle_source)
    /<split>/words      (N, L)      str      the words as spoken (cased, the silence token 'sp' kept), '' for
                                             padding: for a model that tokenises them itself (ModelKind.words).
                                             Caches written before it lack it, and so do caches built from a
                                             pickle (which holds features only): they serve every other model
    /<split>/latents/{r (N,), u (N,3), b (N,3), s (N,), quality (N,3)}   synthetic data only: the ground truth
                                             (columns text, audio, vision; quality only from a generator that
                                             writes it, rider.data.synthetic)
    /stats/<feature>_mean, /stats/<feature>_std  (D,) float32  over the real rows of the train split
    attrs: schema_version, dataset, sequence_length, provenance (JSON: input checksums, config),
           counts (JSON: segments per split, truncated segments, unknown words, non-finite values, and the
           shares the stage checks, below), features (JSON: width of each feature above)

Splits are train, valid, test. Segments longer than L keep their first L words. A dataset without audio or
vision (``modalities: [text]``), or without GloVe vectors, stores that feature with zero columns, (N, L, 0), so
every stage reads the same fields; a model that needs the feature stops with its name (rider.train.trainer).

Features must not silently vanish: a GloVe file that matches none of the words, an audio stream of zeros or of
NaN would otherwise train and evaluate to exit 0 on inputs that carry nothing. The stage measures, over the real
words (every word row of every segment; for text, the words other than the silence token 'sp'):

    unknown words  share of words without a GloVe vector (zero row)        limit cache.max_unknown_words
    zero rows      share of words whose feature vector is all zero, per    limit cache.max_zero_rows
                   feature (text_bert, audio, vision; text_glove is the unknown share)
    non-finite     share of the values that were NaN or inf (set to 0), per   limit cache.max_nonfinite
                   feature: in the frames (counted by the aligner) or in the words, whichever is larger

logs each, records them under ``counts["shares"]`` and stops, writing nothing, when one passes its limit. A
feature with zero columns (absent) is not measured.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import h5py
import numpy as np

from rider.atomic import atomic_path
from rider.data.bert import TextEncoderConfig, encode_segments
from rider.errors import DataError
from rider.data.folds import SPLITS, split_of
from rider.data.glove import read_glove
from rider.h5 import open_h5
from rider.provenance import check_dataset, file_record, provenance

log = logging.getLogger(__name__)

CACHE_SCHEMA_VERSION = 1
FEATURES = {"text_glove": 300, "audio": 74, "vision": 35}
SILENCE = "sp"  # the SDK's token for a pause between words
PADDING_WORD = ""  # /<split>/words beyond a segment's length
# A word whose text features the stress plan zeroed (text noise, or text missing): no transcript holds it, and a
# model that reads words gives it its own "nothing here" marker (rider.stress.noise; MMA: the mask token).
MASKED_WORD = "<zeroed>"


@dataclass(frozen=True)
class CacheConfig:
    sequence_length: int = 50      # L, the standard aligned setting
    glove_dim: int = 300
    lowercase: bool = True         # GloVe vocabularies are lower case; the SDK's words are not always
    # Limits on the shares the module docstring lists. GloVe 840B leaves a few % of MOSI's words unknown and real
    # COVAREP a few % of values non-finite; a wrong file or a broken stream is near 100 %.
    max_unknown_words: float = 0.2
    max_zero_rows: float = 0.5
    max_nonfinite: float = 0.1


def _pad(rows: list[np.ndarray], length: int, dim: int) -> np.ndarray:
    out = np.zeros((len(rows), length, dim), dtype=np.float32)
    for i, row in enumerate(rows):
        out[i, : min(len(row), length)] = row[:length]
    return out


def _pad_words(rows: list[np.ndarray], length: int) -> np.ndarray:
    out = np.full((len(rows), length), PADDING_WORD, dtype=object)  # (N, L)
    for i, row in enumerate(rows):
        out[i, : min(len(row), length)] = row[:length]
    return out


def read_words(path: str | os.PathLike, split: str) -> np.ndarray:
    """(N, L) object array of a split's words ('' for padding); a cache written before words were stored is a
    ``DataError`` that asks for a rebuild."""
    with open_h5(path, "cache file") as handle:
        if f"{split}/words" not in handle:
            if json.loads(handle.attrs.get("provenance", "{}")).get("source") == "pickle":
                raise DataError(f"{path}: no /{split}/words: this cache was built from a pickle, which holds the "
                                "features of each word but not the words; this model configuration reads the words "
                                "(choose one that reads features)")
            raise DataError(f"{path}: no /{split}/words; rebuild the cache (`rider cache`, or delete it and rerun the "
                            "workflow): this model reads the segments' words, which caches written before them lack")
        try:
            return np.asarray(handle[f"{split}/words"].asstr()[()], dtype=object)
        except OSError as err:
            raise DataError(f"{path}: not a readable cache file (truncated or corrupt?): {err}") from None


def build_cache(
    aligned_path: str | os.PathLike,
    glove_path: str | os.PathLike | None,
    folds: Mapping[str, list[str]],
    out_path: str | os.PathLike,
    config: CacheConfig = CacheConfig(),
    dataset: str = "",
    latents_path: str | os.PathLike | None = None,
    provenance_config: Mapping | None = None,
    text_encoder: TextEncoderConfig | None = None,
) -> dict:
    """The cache stage; returns the counts it also writes into the file's attributes.

    ``text_glove`` comes from the GloVe-format file ``glove_path``, else from the SDK's word-vector sequence when
    the aligned file holds it (``glove_vectors``), else it gets zero columns. ``text_encoder`` with a model adds
    ``text_bert``. Audio and vision come from the aligned file when it holds them, else get zero columns.
    """
    aligned_path = Path(aligned_path)
    with open_h5(aligned_path, "aligned HDF5 file") as handle:
        try:
            keys = handle["segments/key"].asstr()[:]
            videos = handle["segments/video"].asstr()[:]
            labels = handle["segments/label"][:]
            offset = handle["segments/offset"][:]
            words = handle["words/word"].asstr()[:]
            streams = {name: handle[name][:] if name in handle else np.zeros((len(words), 0), np.float32)
                       for name in ("audio", "vision")}
            sdk_vectors = handle["glove_vectors"][:] if "glove_vectors" in handle and glove_path is None else None
            # The aligner already replaced the streams' NaN/inf frame values and counted them with the values read.
            upstream = ({name: (count, json.loads(handle.attrs["values"]).get(name, 0))
                         for name, count in json.loads(handle.attrs["nonfinite"]).items()}
                        if "values" in handle.attrs and "nonfinite" in handle.attrs else {})
        except KeyError as err:
            raise DataError(f"{aligned_path}: missing field {err}; was it written by `rider align`?") from None
    encode = text_encoder is not None and text_encoder.model is not None
    if glove_path is None and sdk_vectors is None and not encode:
        raise DataError(f"{aligned_path}: no text features: give a GloVe file, align the SDK's word vectors "
                        "(glove_vectors) or configure a text_encoder model")
    spoken = words.astype(str)  # as the transcript has them, for a cased encoder
    if config.lowercase:
        words = np.char.lower(words.astype(str))
    bad_label = ~np.isfinite(labels) | (labels < -3) | (labels > 3)
    if bad_label.any():
        i = int(np.argmax(bad_label))
        raise DataError(f"{aligned_path}: field 'segments/label' of segment {keys[i]} is {labels[i]}, outside [-3, 3]")

    vocabulary = set(words.tolist()) - {SILENCE}
    vectors = read_glove(glove_path, vocabulary, dim=config.glove_dim) if glove_path is not None else {}
    unknown = sorted(vocabulary - set(vectors)) if glove_path is not None else []
    text = np.zeros((len(words), config.glove_dim if glove_path is not None else 0), dtype=np.float32)
    for i, word in enumerate(words):
        if word in vectors:
            text[i] = vectors[word]
    if sdk_vectors is not None:  # the SDK's vectors, aligned to the words like audio (zero for 'sp')
        text = sdk_vectors.astype(np.float32)
        unknown = sorted({w for w, row in zip(words, text) if w != SILENCE and not row.any()})
    features = {"text_glove": text}
    encoder_counts = None
    if encode:
        segments = [spoken[offset[k]: offset[k + 1]].tolist() for k in range(len(keys))]
        per_segment, encoder_counts = encode_segments(segments, text_encoder)
        features["text_bert"] = np.concatenate(per_segment) if len(per_segment) else np.zeros((0, 0), np.float32)
    features.update(streams)
    nonfinite = {}
    for name, values in features.items():
        bad = ~np.isfinite(values)
        nonfinite[name] = int(bad.sum())
        if nonfinite[name]:
            values[bad] = 0.0
            log.warning("%s: replaced %d non-finite value(s) in %s by 0", aligned_path, nonfinite[name], name)

    shares = _shares(features, nonfinite, words, upstream)
    check_shares(shares, config, aligned_path, glove_path)

    owner = split_of(folds)
    split_of_segment = np.array([owner.get(video, "") for video in videos])
    unassigned = sorted(set(videos[split_of_segment == ""]))
    if unassigned:
        log.warning("%d video(s) are in no fold and are left out, e.g. %s", len(unassigned), unassigned[:3])
    indices = {split: np.flatnonzero(split_of_segment == split) for split in SPLITS}
    for split, index in indices.items():
        if len(index) == 0:
            raise DataError(f"{aligned_path}: no segment falls in the {split} fold")
    lengths_all = np.diff(offset)
    counts = {"segments": {split: int(len(index)) for split, index in indices.items()},
              "truncated": int((lengths_all > config.sequence_length).sum()),
              "unknown_words": len(unknown), "nonfinite": nonfinite, "unassigned_videos": len(unassigned)}
    counts["shares"] = shares
    if encoder_counts is not None:
        counts["text_encoder"] = encoder_counts
    latents = _read_latents(latents_path) if latents_path else None
    length = config.sequence_length

    def fields():  # one array at a time: a padded feature of a MOSEI-sized split is a gigabyte
        for split, index in indices.items():
            for name, values in features.items():
                yield split, name, _pad([values[offset[i]: offset[i + 1]] for i in index], length, values.shape[1])
            yield split, "lengths", np.minimum(lengths_all[index], length)
            yield split, "labels", labels[index]
            yield split, "ids", keys[index]
            yield split, "words", _pad_words([spoken[offset[i]: offset[i + 1]] for i in index], length)
            if latents is not None:
                for name, values in _latent_rows(latents, keys[index], latents_path).items():
                    yield split, f"latents/{name}", values

    inputs = {"aligned": aligned_path, **({"glove": glove_path} if glove_path is not None else {})}
    if latents_path:
        inputs["latents"] = latents_path
    write_cache(out_path, fields(), {name: int(values.shape[1]) for name, values in features.items()},
                dataset=dataset, sequence_length=length, counts=counts,
                provenance_record=provenance(inputs, dict(provenance_config or {}), dataset=dataset))
    log.info("cache %s: %s", out_path, json.dumps(counts))
    return counts


def write_cache(out_path: str | os.PathLike, fields: Iterable[tuple[str, str, np.ndarray]],
                features: Mapping[str, int], *, dataset: str, sequence_length: int, counts: Mapping,
                provenance_record: str) -> None:
    """Write a cache file in the layout above, atomically (nothing is left behind when ``fields`` raises): the one
    writer of every source's cache.

    ``fields`` yields ``(split, name, array)`` for each split of SPLITS: every feature of ``features`` (name ->
    width) as (N, L, D), ``lengths``, ``labels``, ``ids`` and optionally ``words`` and ``latents/<name>``. It may
    build them one at a time, so that only one is held in memory. The train-split statistics are computed here.
    """
    with atomic_path(out_path, suffix=".h5") as tmp, h5py.File(tmp, "w") as out:
        for split, name, values in fields:
            where = f"{split}/{name}"
            if name in ("ids", "words"):
                out.create_dataset(where, data=np.asarray(values, dtype=object), dtype=h5py.string_dtype())
            elif name in features:
                values = np.asarray(values, dtype=np.float32)
                out.create_dataset(where, data=values, **({"compression": "gzip", "compression_opts": 1}
                                                          if values.size else {}))  # HDF5 cannot chunk 0 columns
            elif name == "lengths":
                out.create_dataset(where, data=np.asarray(values, dtype=np.int32))
            elif name == "labels":
                out.create_dataset(where, data=np.asarray(values, dtype=np.float32))
            else:
                out.create_dataset(where, data=values)
        absent = [split for split in SPLITS if split not in out]
        if absent:
            raise ValueError(f"write_cache: no fields for split(s) {absent}")
        train = out["train"]
        real = np.arange(sequence_length)[None, :] < train["lengths"][:][:, None]  # (N, L)
        for name in features:
            rows = train[name][:][real]
            out.create_dataset(f"stats/{name}_mean", data=rows.mean(axis=0).astype(np.float32))
            out.create_dataset(f"stats/{name}_std", data=rows.std(axis=0).astype(np.float32))
        out.attrs["schema_version"] = CACHE_SCHEMA_VERSION
        out.attrs["dataset"] = dataset
        out.attrs["sequence_length"] = sequence_length
        out.attrs["counts"] = json.dumps(counts)
        out.attrs["features"] = json.dumps(dict(features))
        out.attrs["provenance"] = provenance_record


def _shares(features: Mapping[str, np.ndarray], nonfinite: Mapping[str, int], words: np.ndarray,
            upstream: Mapping[str, tuple[int, int]]) -> dict:
    """The shares of unknown words, all-zero rows and non-finite values (module docstring) of features (W, D);
    ``upstream``: the non-finite and all values per stream that the aligner saw in the frames (it cleans them)."""
    spoken = words != SILENCE  # (W,)
    shares: dict[str, dict[str, float]] = {"unknown_words": {}, "zero_rows": {}, "nonfinite": {}}
    for name, values in features.items():
        if values.shape[1] == 0:
            continue
        rows = values[spoken] if name.startswith("text") else values
        zero = float((~rows.any(axis=1)).mean()) if len(rows) else 0.0
        shares["unknown_words" if name == "text_glove" else "zero_rows"][name] = zero
        share = nonfinite[name] / values.size if values.size else 0.0
        if name in upstream and upstream[name][1]:  # the larger of the frames' share and the words'
            share = max(share, upstream[name][0] / upstream[name][1])
        shares["nonfinite"][name] = share
    return shares


def check_shares(shares: Mapping[str, Mapping[str, float]], config: CacheConfig, aligned_path: Path,
                 glove_path=None, counted: str = "frames and words") -> None:
    """Stop (``DataError`` naming the file and the feature) when a share passes its limit (module docstring);
    ``aligned_path``: the file the features came from, ``counted``: where its non-finite values were counted."""
    log.info("shares of the real words: unknown %s; all-zero rows %s; non-finite values %s",
             *({name: f"{share:.2%}" for name, share in shares[kind].items()}
               for kind in ("unknown_words", "zero_rows", "nonfinite")))
    source = glove_path if glove_path is not None else f"{aligned_path} (the SDK's word vectors)"
    what = {  # kind -> (limit, the file, what the share is of, a hint)
        "unknown_words": ("max_unknown_words", source, "words have no vector",
                          "is it the vocabulary of these transcripts (cache.lowercase)?"),
        "zero_rows": ("max_zero_rows", aligned_path, "words have an all-zero {name} vector", "is the stream empty?"),
        "nonfinite": ("max_nonfinite", aligned_path, "{name} values (" + counted + ") are NaN or inf",
                      "is the stream damaged?"),
    }
    for kind, (limit_name, path, of, hint) in what.items():
        limit = getattr(config, limit_name)
        for name, share in shares[kind].items():
            if share > limit:
                raise DataError(f"{path}: {share:.1%} of the {of.format(name=name)}, more than cache.{limit_name} = "
                                f"{limit:g} allows; {hint} No cache was written")


CACHED_LATENTS = ("r", "u", "b", "s")
OPTIONAL_LATENTS = ("quality",)  # absent from latents files written before the generator had it


def _read_latents(path) -> dict[str, np.ndarray]:
    with open_h5(path, "latents file") as handle:
        missing = [name for name in ("key", *CACHED_LATENTS) if name not in handle]
        if missing:
            raise DataError(f"{path}: latents file lacks {missing}; was it written by `rider generate`?")
        names = CACHED_LATENTS + tuple(name for name in OPTIONAL_LATENTS if name in handle)
        latents = {"key": handle["key"].asstr()[:], **{name: handle[name][:] for name in names}}
    for name in names:
        if len(latents[name]) != len(latents["key"]):
            raise DataError(f"{path}: field '{name}' has {len(latents[name])} rows, 'key' {len(latents['key'])}")
    return latents


def _latent_rows(latents: dict[str, np.ndarray], keys: np.ndarray, path) -> dict[str, np.ndarray]:
    """The latents of the segments ``keys``, in their order: (n,) or (n, 3) per name."""
    position = {key: i for i, key in enumerate(latents["key"])}
    missing = [key for key in keys if key not in position]
    if missing:
        raise DataError(f"{path}: no latents for segment(s) {missing[:3]}")
    rows = np.array([position[key] for key in keys])
    return {name: values[rows] for name, values in latents.items() if name != "key"}


def cache_dataset(path: str | os.PathLike) -> str:
    """The dataset name a cache file records ("" when built without one)."""
    with open_h5(path, "cache file") as handle:
        return str(handle.attrs.get("dataset", ""))


def check_cache_dataset(path: str | os.PathLike, expected: str | None, expected_from: str = "--dataset") -> None:
    """Refuse (``ProvenanceError``) a cache file built for a dataset other than ``expected`` (a swapped cache)."""
    check_dataset(path, "cache file", cache_dataset(path), expected, expected_from)


def cache_features(path: str | os.PathLike) -> dict[str, int]:
    """Width of each feature a cache file holds (0: absent), from its ``features`` attribute."""
    with open_h5(path, "cache file") as handle:
        return json.loads(handle.attrs["features"]) if "features" in handle.attrs else dict(FEATURES)


def cache_record(path: str | os.PathLike) -> dict:
    """What a checkpoint or an evaluation keeps of the cache it read: path, sha256 and dataset name
    (``rider.provenance.check_built_from`` checks it against the cache given later)."""
    return file_record(path, dataset=cache_dataset(path))


def validate_cache(path: str | os.PathLike) -> dict[str, int]:
    """Check a cache file against the schema; return the number of segments per split."""
    path = Path(path)
    with open_h5(path, "cache file") as handle:
        try:
            return _validate(handle, path)
        except OSError as err:  # a damaged chunk surfaces only when its data is read
            raise DataError(f"{path}: not a readable cache file (truncated or corrupt?): {err}") from None


def _validate(handle: h5py.File, path: Path) -> dict[str, int]:
    if "sequence_length" not in handle.attrs:
        raise DataError(f"{path}: not a cache file (no attribute 'sequence_length'); was it written by `rider cache`?")
    version = handle.attrs.get("schema_version")
    if version != CACHE_SCHEMA_VERSION:
        raise DataError(f"{path}: schema_version is {version}, expected {CACHE_SCHEMA_VERSION}")
    length = int(handle.attrs["sequence_length"])
    # Caches written before the features attribute hold exactly FEATURES.
    features = json.loads(handle.attrs["features"]) if "features" in handle.attrs else FEATURES
    missing = sorted(set(FEATURES) - set(features))
    if missing:
        raise DataError(f"{path}: attribute 'features' lacks {missing} (zero columns mark an absent one)")
    sizes = {}
    for split in SPLITS:
        if split not in handle:
            raise DataError(f"{path}: missing split '{split}'")
        group = handle[split]
        if "labels" not in group:
            raise DataError(f"{path}: missing field '{split}/labels'")
        n = group["labels"].shape[0]
        expected = {name: (n, length, dim) for name, dim in features.items()}
        expected.update(lengths=(n,), labels=(n,), ids=(n,))
        if "words" in group:  # optional: older caches lack it (read_words)
            expected["words"] = (n, length)
        for name, shape in expected.items():
            if name not in group:
                raise DataError(f"{path}: missing field '{split}/{name}'")
            if group[name].shape != shape:
                raise DataError(f"{path}: field '{split}/{name}' has shape {group[name].shape}, expected {shape}")
        lengths = group["lengths"][:]
        if n and (lengths.min() < 0 or lengths.max() > length):
            raise DataError(f"{path}: field '{split}/lengths' outside [0, {length}]")
        labels = group["labels"][:]
        if n and (not np.all(np.isfinite(labels)) or labels.min() < -3 or labels.max() > 3):
            raise DataError(f"{path}: field '{split}/labels' outside [-3, 3] or not finite")
        sizes[split] = n
    for name, dim in features.items():
        for stat in ("mean", "std"):
            field = f"stats/{name}_{stat}"
            if field not in handle or handle[field].shape != (dim,):
                raise DataError(f"{path}: missing or misshapen field '{field}'")
    return sizes
