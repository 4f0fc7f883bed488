"""The embedded default dataset: synthetic CMU-MOSI in the SDK's own .csd layout, with a known ground truth.

Per segment (DESIGN §2) the latents are a redundancy r ~ N(0,1) carried by all three modalities, a uniqueness
u_m ~ N(0,1) carried by modality m alone, and a synergy bit b_m ∈ {±1} per modality whose product
s = b_T·b_A·b_V no single modality or pair can reveal. The label is
    y = clip(w_r·r + Σ_m w_u,m·u_m + w_s·s + ε, −3, 3), rounded to a grid of ``label_step``.
Each modality sees its code c_m = (g_m·r, u_m, b_m), g_m its ``redundancy_gain``:
- text: every token is the vocabulary word whose 3-d code lies nearest to c_T + noise; the words' 300-d
  vectors (a fixed random map of their codes) are written as a GloVe-format file, so text reaches the model
  through the same GloVe lookup as real data;
- audio (100 Hz, 74-d) and vision (30 Hz, 35-d): per word, a fixed random map of c_m plus word-level noise,
  repeated over the word's frames with frame jitter, on top of a per-video offset; silence carries only jitter.
  Audio holds a small rate of -inf/NaN, as real COVAREP does.
The segments use the SDK's standard video ids and folds with the real fold sizes. Everything is a function of
the seed.

Quality (``QualityConfig``, on by default). Real recordings are not equally reliable: a face leaves the frame,
the microphone picks up a fan, the transcript garbles a phrase. Each segment's modality m gets a quality
q_m ∈ [0, 1], 1 = clean; independently per modality, with probability ``degraded_rate`` it is degraded with
q_m ~ U(``severity``), and then, with a strength of 1 − q_m:
- text: each token is replaced by a uniformly random vocabulary word with probability 1 − q_T (garbled);
- audio / vision: the word-level noise std is multiplied by 1 + ``noise_gain``·(1 − q_m) (lower signal-to-noise),
  and each word's frames are zeroed (occluded) with probability ``occlusion``·(1 − q_m).
  (In the cache an occluded word's row is near zero rather than exactly zero: the aligner's mean over the
  word's frames takes in the edge frames it shares with the gap around it.)
The labels do not depend on q: a degraded modality only tells less. ``quality`` (N, 3), columns text, audio,
vision, is written to latents.h5 and carried into the cache as /<split>/latents/quality, the ground truth against
which a model's per-modality reliability (the router's r_m) can be checked. At the defaults 15 % of the segments'
modalities are degraded: 39 % of the segments have one or more, 6 % two or more (seed 0, MOSI-sized:
14-17 % per modality, 40.5 %, 5.7 %).

Modality balance. On genuine MOSI a frozen text encoder alone reaches Acc-2 80.8 %, and audio or vision alone far
less; with one code per modality at equal weights, every modality here was equally informative (each alone about
72 %). Text now carries most of the label: r is seen faintly by audio and vision (g = 1, 0.15, 0.15; DESIGN §2's
"r in all three modalities" still holds), text's own latent weighs most (w_u = 0.8, 0.25, 0.25), text tokens are
less noisy (``text_noise`` 0.6, was 1.2), and w_r = 1.0, w_s = 0.7, ε std 0.2 (were 0.9, 0.8, 0.3) keep the
label's spread (std 1.51 unclipped as before; 1.43 as written, was 1.42). b_m keeps full weight in every code, so
the synergy stays recoverable from all three modalities together only. Measured with
``benchmarks/modality_probes.py``
(probes on the segment means of the cache's train split, scored on its test split; seed 0, MOSI-sized,
1,284 / 686 segments; Acc-2 over non-zero labels, in %):

    probe from     | before: ridge Acc-2 / Corr, MLP Acc-2 / Corr | now: ridge Acc-2 / Corr, MLP Acc-2 / Corr
    text alone     |         72.9 / 0.614,  71.8 / 0.603          |      76.6 / 0.789,  76.8 / 0.782
    audio alone    |         72.8 / 0.664,  71.5 / 0.629          |      63.4 / 0.358,  60.5 / 0.256
    vision alone   |         70.6 / 0.635,  70.3 / 0.616          |      58.8 / 0.261,  56.0 / 0.197
    all three      |         76.2 / 0.778,  88.1 / 0.896          |      78.3 / 0.817,  85.2 / 0.871

A linear probe cannot use s = b_T·b_A·b_V, hence the gap between ridge and MLP on all three. Other ground-truth
probes on the same data (ridge on segment means, Pearson r on test): r from text 0.94, audio 0.51, vision 0.33;
each u_m from its own modality 0.95-0.96; s from all three (MLP classifier) 93.9 %, from any pair 49-50 %. The
degradation is visible in its own modality only (logistic regression on a modality's per-segment mean, std and
share of zeroed words; AUROC for "m degraded"): text 0.99, audio 1.00, vision 1.00; from another modality
0.43-0.51.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np
from scipy.spatial import cKDTree
from tqdm import tqdm

from rider.atomic import atomic_path
from rider.data.csd import write_sequence
from rider.data.folds import SPLITS, standard_folds
from rider.data.glove import write_glove

log = logging.getLogger(__name__)

FOLD_SIZES = {  # segments per split, as in the paper's App. C.1
    "mosi": {"train": 1284, "valid": 229, "test": 686},
    "mosei": {"train": 16326, "valid": 1871, "test": 4659},
}
MODALITIES = ("text", "audio", "vision")
FEATURE_DIMS = {"audio": 74, "vision": 35}
# File names inside the raw folder; the align stage finds sequences by these roles.
RAW_FILES = {"words": "words.csd", "audio": "audio.csd", "vision": "vision.csd", "labels": "labels.csd"}
GLOVE_FILE = "glove.txt"
LATENTS_FILE = "latents.h5"
# Per segment in LATENTS_FILE: r (N,), u (N, 3), b (N, 3), s (N,), y (N,), quality (N, 3); columns text, audio, vision.
LATENTS = ("r", "u", "b", "s", "y", "quality")


def _check_per_modality(value, where: str) -> None:
    """A setting with one number per modality (text, audio, vision); ``where`` names it in the error."""
    if not isinstance(value, (tuple, list)) or len(value) != len(MODALITIES):
        raise ValueError(f"{where} = {value!r}: give one number per modality, [{', '.join(MODALITIES)}]")


@dataclass(frozen=True)
class LabelWeights:
    redundancy: float = 1.0   # w_r
    # w_u per modality (text, audio, vision): text's own latent weighs most, as text carries most of the signal on
    # genuine MOSI; audio's and vision's stay in the label so that all three together beat text alone.
    uniqueness: tuple[float, float, float] = (0.8, 0.25, 0.25)
    synergy: float = 0.7      # w_s
    noise: float = 0.2        # std of ε

    def __post_init__(self):
        _check_per_modality(self.uniqueness, "synthetic.label_weights.uniqueness")


@dataclass(frozen=True)
class QualityConfig:
    """Per segment and modality a quality q_m in [0, 1] (1 = clean); a degraded modality has q_m < 1 and is
    damaged with a strength of 1 − q_m (module docstring). Modalities degrade independently of each other."""
    degraded_rate: float = 0.15          # P(a modality of a segment is degraded): 39 % of segments have one or more
    severity: tuple[float, float] = (0.1, 0.7)  # a degraded modality's q_m ~ U(low, high)
    noise_gain: float = 2.0              # audio/vision word-level noise std × (1 + noise_gain·(1 − q_m))
    occlusion: float = 0.5               # audio/vision: share of the segment's words zeroed = occlusion·(1 − q_m)

    def __post_init__(self):
        low, high = self.severity
        if not 0.0 <= low <= high < 1.0:
            raise ValueError(f"synthetic.quality.severity = {list(self.severity)}: need 0 <= low <= high < 1 "
                             "(a degraded modality's quality; 1 is clean)")
        if not 0.0 <= self.degraded_rate <= 1.0:
            raise ValueError(f"synthetic.quality.degraded_rate = {self.degraded_rate}: a probability in [0, 1]")
        if not 0.0 <= self.occlusion <= 1.0:
            raise ValueError(f"synthetic.quality.occlusion = {self.occlusion}: a share in [0, 1]")


@dataclass(frozen=True)
class SyntheticConfig:
    size: str = "mosi"                       # fold sizes and video ids: mosi | mosei
    seed: int = 0
    videos_per_split: int | None = None      # use only the first n videos of each fold (tests)
    segments_per_split: tuple[int, int, int] | None = None  # override train/valid/test sizes (tests)
    words_per_segment: tuple[int, int] = (6, 20)
    word_seconds: float = 0.3
    audio_hz: float = 100.0
    vision_hz: float = 30.0
    vocabulary_size: int = 4000
    glove_dim: int = 300
    text_noise: float = 0.6                  # std of a token's code around c_T
    audio_noise: float = 3.0                 # word-level std per audio feature
    vision_noise: float = 2.0                # word-level std per vision feature
    frame_noise: float = 0.5                 # frame-to-frame jitter within a word
    # How strongly each modality's code carries r (text, audio, vision): r stays in all three (DESIGN §2) but audio
    # and vision see it faintly, so that each alone predicts the label far worse than text (module docstring).
    redundancy_gain: tuple[float, float, float] = (1.0, 0.15, 0.15)
    nonfinite_rate: float = 1e-4             # fraction of audio frames holding -inf or NaN
    label_step: float = 0.2                  # labels are rounded to this grid (so some are exactly 0)
    label_weights: LabelWeights = field(default_factory=LabelWeights)
    quality: QualityConfig = field(default_factory=QualityConfig)

    def __post_init__(self):
        _check_per_modality(self.redundancy_gain, "synthetic.redundancy_gain")


@dataclass
class _Segment:
    video: str
    index: int
    start: float
    end: float
    word_times: np.ndarray  # (w, 2)


def _segment_counts(rng: np.random.Generator, total: int, videos: int) -> np.ndarray:
    """Spread ``total`` segments over ``videos`` videos, at least one each, unevenly as in the real data."""
    if total < videos:
        raise ValueError(f"{total} segments cannot cover {videos} videos")
    share = rng.dirichlet(np.full(videos, 2.0))
    return 1 + rng.multinomial(total - videos, share)


def _vocabulary(size: int) -> list[str]:
    """Pronounceable pseudo-words, two or three syllables, never 'sp' (the SDK's silence token)."""
    syllables = [c + v for c, v in itertools.product("bdfgklmnprstvz", "aeiou")]
    words = ("".join(p) for n in (2, 3) for p in itertools.product(syllables, repeat=n))
    vocabulary = list(itertools.islice(words, size))
    if len(vocabulary) < size:
        raise ValueError(f"vocabulary_size {size} exceeds the {len(vocabulary)} pseudo-words available")
    return vocabulary


def _feature_map(rng: np.random.Generator, dim: int) -> np.ndarray:
    # Entries N(0, 1/3): each feature then has unit signal variance from the three unit-variance codes.
    return rng.normal(0.0, np.sqrt(1.0 / 3.0), size=(3, dim))


def _draw_quality(rng: np.random.Generator, n_segments: int, config: QualityConfig) -> np.ndarray:
    """(n, 3) quality per segment and modality (text, audio, vision): 1 where clean, U(severity) where degraded."""
    degraded = rng.random((n_segments, len(MODALITIES))) < config.degraded_rate
    return np.where(degraded, rng.uniform(*config.severity, size=degraded.shape), 1.0)


def _garble(rng: np.random.Generator, token_ids: np.ndarray, quality: np.ndarray, vocabulary_size: int) -> np.ndarray:
    """Replace a share 1 − q of the tokens (each token's segment's text quality q) by random vocabulary words."""
    garbled = rng.random(len(token_ids)) < 1.0 - quality
    return np.where(garbled, rng.integers(0, vocabulary_size, size=len(token_ids)), token_ids)


def _stream(
    rng: np.random.Generator,
    segments: list[_Segment],
    codes: np.ndarray,
    quality: np.ndarray,
    mapping: np.ndarray,
    hz: float,
    word_noise: float,
    frame_noise: float,
    degradation: QualityConfig,
) -> dict[str, np.ndarray]:
    """Frames of one video at ``hz``: each word's frames carry its code; gaps carry only noise. A segment of
    quality q < 1 has its word noise raised to word_noise·(1 + noise_gain·(1 − q)) and each word occluded (frames
    zeroed, as a face tracker or a microphone that lost its source writes) with probability occlusion·(1 − q)."""
    end = segments[-1].end + 0.5
    n_frames = int(np.ceil(end * hz))
    starts = np.arange(n_frames) / hz
    intervals = np.stack([starts, starts + 1.0 / hz], axis=1)
    dim = mapping.shape[1]
    offset = rng.normal(0.0, 0.5, size=dim)  # who is speaking / filming: a per-video shift
    features = offset + rng.normal(0.0, frame_noise, size=(n_frames, dim))
    for segment, code, q in zip(segments, codes, quality):
        noise = word_noise * (1.0 + degradation.noise_gain * (1.0 - q))
        occluded = rng.random(len(segment.word_times)) < degradation.occlusion * (1.0 - q)
        for (t0, t1), dark in zip(segment.word_times, occluded):
            first, last = int(np.ceil(t0 * hz)), int(np.ceil(t1 * hz))
            if last <= first:
                continue
            if dark:
                features[first:last] = 0.0
                continue
            word = code @ mapping + rng.normal(0.0, noise, size=dim)
            features[first:last] = offset + word + rng.normal(0.0, frame_noise, size=(last - first, dim))
    return {"intervals": intervals, "features": features.astype(np.float32)}


def generate(config: SyntheticConfig, out_dir: str | Path) -> dict[str, Path]:
    """Write words/audio/vision/labels .csd, the GloVe file and the latents into ``out_dir``."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(config.seed)
    folds = standard_folds(config.size)
    sizes = (
        dict(zip(SPLITS, config.segments_per_split))
        if config.segments_per_split is not None
        else FOLD_SIZES[config.size]
    )
    vocabulary = _vocabulary(config.vocabulary_size)
    vocab_codes = rng.normal(0.0, 1.5, size=(len(vocabulary), 3))
    text_map = _feature_map(rng, config.glove_dim)
    glove = vocab_codes @ text_map + rng.normal(0.0, 0.3, size=(len(vocabulary), config.glove_dim))
    nearest_word = cKDTree(vocab_codes)
    maps = {name: _feature_map(rng, dim) for name, dim in FEATURE_DIMS.items()}
    noise = {"audio": config.audio_noise, "vision": config.vision_noise}
    hz = {"audio": config.audio_hz, "vision": config.vision_hz}
    w = config.label_weights

    words, labels = {}, {}
    streams: dict[str, dict] = {"audio": {}, "vision": {}}
    latents: dict[str, list] = {k: [] for k in ("key", "split", *LATENTS)}
    videos = {split: folds[split][: config.videos_per_split] for split in SPLITS}
    progress = tqdm(total=sum(map(len, videos.values())), desc="generate", unit="video")
    for split in SPLITS:
        for video, n_segments in zip(videos[split], _segment_counts(rng, sizes[split], len(videos[split]))):
            segments, time = [], float(rng.uniform(1.0, 5.0))
            for index in range(n_segments):
                n_words = int(rng.integers(config.words_per_segment[0], config.words_per_segment[1] + 1))
                lengths = rng.uniform(0.6, 1.4, size=n_words) * config.word_seconds
                gaps = rng.uniform(0.0, 0.1, size=n_words)
                word_starts = time + np.concatenate([[0.0], np.cumsum(lengths + gaps)[:-1]])
                word_times = np.stack([word_starts, word_starts + lengths], axis=1)
                segments.append(_Segment(video, index, float(word_times[0, 0]), float(word_times[-1, 1]), word_times))
                time = word_times[-1, 1] + float(rng.uniform(0.3, 1.0))
            r = rng.normal(size=n_segments)
            u = rng.normal(size=(n_segments, 3))
            b = rng.choice([-1.0, 1.0], size=(n_segments, 3))
            s = b.prod(axis=1)
            raw_y = (w.redundancy * r + u @ np.asarray(w.uniqueness) + w.synergy * s
                     + rng.normal(0.0, w.noise, n_segments))
            y = np.clip(np.round(raw_y / config.label_step) * config.label_step, -3.0, 3.0)
            codes = {m: np.stack([config.redundancy_gain[i] * r, u[:, i], b[:, i]], axis=1)  # (n, 3) each
                     for i, m in enumerate(MODALITIES)}
            quality = _draw_quality(rng, n_segments, config.quality)  # (n, 3)

            counts = [len(seg.word_times) for seg in segments]
            token_codes = np.repeat(codes["text"], counts, axis=0) + rng.normal(0.0, config.text_noise, (sum(counts), 3))
            _, token_ids = nearest_word.query(token_codes)
            token_ids = _garble(rng, token_ids, np.repeat(quality[:, 0], counts), len(vocabulary))
            words[video] = {
                "intervals": np.concatenate([seg.word_times for seg in segments]),
                "features": np.array([[vocabulary[i].encode()] for i in token_ids]),
            }
            for m in ("audio", "vision"):
                column = MODALITIES.index(m)
                streams[m][video] = _stream(rng, segments, codes[m], quality[:, column], maps[m], hz[m], noise[m],
                                            config.frame_noise, config.quality)
            labels[video] = {
                "intervals": np.array([[seg.start, seg.end] for seg in segments]),
                "features": y[:, None].astype(np.float32),
            }
            latents["key"] += [f"{video}[{seg.index}]" for seg in segments]
            latents["split"] += [split] * n_segments
            for name, value in (("r", r), ("u", u), ("b", b), ("s", s), ("y", y), ("quality", quality)):
                latents[name].append(value)
            progress.update(1)
    progress.close()

    nonfinite = 0
    for features in (entry["features"] for entry in streams["audio"].values()):
        hit = rng.random(features.shape[0]) < config.nonfinite_rate
        column = rng.integers(0, features.shape[1], size=int(hit.sum()))
        features[np.flatnonzero(hit), column] = rng.choice([-np.inf, np.nan], size=int(hit.sum()))
        nonfinite += int(hit.sum())
    log.info("generated %d videos, %d segments, %d words; %d non-finite audio values",
             len(words), len(latents["key"]), sum(len(v["intervals"]) for v in words.values()), nonfinite)

    paths = {role: out_dir / name for role, name in RAW_FILES.items()}
    described = {
        "words": "words of each segment, drawn from a pseudo-word vocabulary",
        "audio": f"74-d COVAREP-like frames at {config.audio_hz:g} Hz",
        "vision": f"35-d Facet-like frames at {config.vision_hz:g} Hz",
        "labels": "sentiment in [-3, 3] per opinion segment",
    }
    for role, entries in (("words", words), ("audio", streams["audio"]), ("vision", streams["vision"]), ("labels", labels)):
        write_sequence(paths[role], role, entries, _metadata(config, described[role]))
    paths["glove"] = out_dir / GLOVE_FILE
    write_glove(paths["glove"], vocabulary, glove.astype(np.float32))
    paths["latents"] = out_dir / LATENTS_FILE
    with atomic_path(paths["latents"], suffix=".h5") as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("key", data=np.array(latents["key"], dtype=object), dtype=h5py.string_dtype())
        handle.create_dataset("split", data=np.array(latents["split"], dtype=object), dtype=h5py.string_dtype())
        for name in LATENTS:
            handle.create_dataset(name, data=np.concatenate(latents[name]).astype(np.float32))
        handle.attrs["modalities"] = "u, b and quality columns are text, audio, vision"
        handle.attrs["config"] = repr(asdict(config))
    return paths


def _metadata(config: SyntheticConfig, description: str) -> dict[str, str]:
    return {
        "computational sequence description": description,
        "computational sequence version": "1.0",
        "alignment compatible": "true",
        "dataset name": f"synthetic-{config.size}",
        "dataset version": f"seed-{config.seed}",
        "creator": "rider synthetic generator",
        "contact": "see README",
        "featureset bib citation": "none (synthetic)",
        "dataset bib citation": "none (synthetic)",
    }
