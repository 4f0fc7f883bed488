"""A cache split as tensors on the training device, scaled by the train-set statistics.

Features are divided by their train-set std but not centred: a zero row must stay zero, because zero is what
padding, a dropped timestep (noise stress) and a zeroed token mean. The whole split lives on the device, so a
training step never copies from the host (DESIGN §8).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from rider.data.cache import read_words
from rider.errors import DataError
from rider.h5 import open_h5

STREAMS = ("text", "audio", "vision")


@dataclass(frozen=True)
class Split:
    text: torch.Tensor     # (N, L, Dt)
    audio: torch.Tensor    # (N, L, 74)
    vision: torch.Tensor   # (N, L, 35)
    lengths: torch.Tensor  # (N,) int64
    labels: torch.Tensor   # (N,) float32
    ids: tuple[str, ...]
    words: np.ndarray | None = None  # (N, L) str, '' for padding: only for a kind that reads words (ModelKind.words)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.text[index], self.audio[index], self.vision[index], self.lengths[index], self.labels[index]

    def batch_words(self, index: torch.Tensor) -> np.ndarray | None:
        """(B, L) words of the rows ``index``, or None when the split was read without them."""
        return None if self.words is None else self.words[index.cpu().numpy()]


def feature_scales(cache_path: str | os.PathLike, text_feature: str = "text_glove") -> dict[str, np.ndarray]:
    """Per-feature divisor of each stream: the train-set std, 1 where a feature is constant."""
    with open_h5(cache_path, "cache file") as handle:
        scales = {}
        for stream, name in zip(STREAMS, (text_feature, "audio", "vision")):
            if f"stats/{name}_std" not in handle:
                raise DataError(f"{cache_path}: no stats/{name}_std (the train-set scale of {name}); rebuild the cache")
            try:
                std = handle[f"stats/{name}_std"][:]
            except OSError as err:
                raise DataError(f"{cache_path}: not a readable cache file (truncated or corrupt?): {err}") from None
            scales[stream] = np.where(std > 1e-8, std, 1.0).astype(np.float32)
    return scales


def arrays_to_split(arrays: dict[str, np.ndarray], scales: dict[str, np.ndarray] | None, device: torch.device,
                    text_feature: str = "text_glove") -> Split:
    """Numpy arrays named as in the cache (``text_glove``, ``audio``, ...) to a scaled ``Split`` on ``device``."""
    def tensor(stream: str, name: str) -> torch.Tensor:
        values = arrays[name].astype(np.float32, copy=False)
        if scales is not None:
            values = values / scales[stream]
        return torch.from_numpy(np.ascontiguousarray(values)).to(device)

    return Split(
        text=tensor("text", text_feature),
        audio=tensor("audio", "audio"),
        vision=tensor("vision", "vision"),
        lengths=torch.from_numpy(arrays["lengths"].astype(np.int64)).to(device),
        labels=torch.from_numpy(arrays["labels"].astype(np.float32)).to(device),
        ids=tuple(arrays["ids"]),
        words=arrays.get("words"),
    )


def read_arrays(cache_path: str | os.PathLike, split: str, text_feature: str = "text_glove",
                words: bool = False) -> dict[str, np.ndarray]:
    """A split's arrays as the cache names them; with ``words``, its ``words`` too (rider.data.cache.read_words)."""
    with open_h5(cache_path, "cache file") as handle:
        if split not in handle:
            raise DataError(f"{cache_path}: no split '{split}'")
        group = handle[split]
        names = (text_feature, "audio", "vision", "lengths", "labels")
        missing = [name for name in names if name not in group]
        if missing:
            raise DataError(f"{cache_path}: split '{split}' lacks {missing}")
        try:  # a damaged chunk surfaces only when its data is read
            arrays = {name: group[name][:] for name in names}
            arrays["ids"] = group["ids"].asstr()[:]
            if "latents" in group:
                arrays["latents"] = _latents(group)
        except OSError as err:
            raise DataError(f"{cache_path}: not a readable cache file (truncated or corrupt?): {err}") from None
    if words:
        arrays["words"] = read_words(cache_path, split)
    return arrays


def read_latents(cache_path: str | os.PathLike, split: str) -> dict[str, np.ndarray] | None:
    """A split's ground-truth latents (synthetic data), or None where the cache has none; nothing else is read."""
    with open_h5(cache_path, "cache file") as handle:
        if split not in handle:
            raise DataError(f"{cache_path}: no split '{split}'")
        if "latents" not in handle[split]:
            return None
        try:
            return _latents(handle[split])
        except OSError as err:
            raise DataError(f"{cache_path}: not a readable cache file (truncated or corrupt?): {err}") from None


def _latents(group) -> dict[str, np.ndarray]:
    return {name: group[f"latents/{name}"][:] for name in group["latents"]}


def load_split(cache_path: str | os.PathLike, split: str, device: torch.device,
               text_feature: str = "text_glove", normalize: bool = True, words: bool = False) -> Split:
    scales = feature_scales(cache_path, text_feature) if normalize else None
    return arrays_to_split(read_arrays(cache_path, split, text_feature, words), scales, device, text_feature)
