"""Where tensors live: CUDA when present (``auto``), else the CPU. Used by training, evaluation and timing alike."""

from __future__ import annotations

import torch

from rider.config import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise ConfigError(f"device = {name!r}, expected one of {list(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device is 'cuda' but no CUDA device is available")
    return torch.device(name)
