"""A checkpoint is a folder: ``model.pt`` (a state_dict), ``config.json`` (the resolved configuration the model is
rebuilt from) and ``metadata.json`` (seed, best epoch, metrics, versions). Never a pickled module: weights load
with ``weights_only=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from rider.atomic import atomic_path, write_json
from rider.errors import DataError
from rider.model import DEFAULT_KIND, build_model, model_kind
from rider.readers import load_state_dict, read_json

WEIGHTS, CONFIG, METADATA = "model.pt", "config.json", "metadata.json"


def save_checkpoint(folder: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any],
                    metadata: Mapping[str, Any]) -> None:
    folder = Path(folder)
    with atomic_path(folder / WEIGHTS, suffix=".pt") as tmp:
        torch.save({name: tensor.detach().cpu() for name, tensor in state_dict.items()}, tmp)
    write_json(folder / CONFIG, config)
    write_json(folder / METADATA, metadata)


def load_checkpoint(folder: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict, dict]:
    """Rebuild the model from ``config.json`` and load its weights; returns (model in eval mode, config, metadata).

    ``config["kind"]`` names the model kind (rider.model.MODEL_KINDS); a checkpoint without it is a RIDER-MoE.
    Every file is read through the checked readers (a missing, truncated or unsafe file is named as such), and
    weights that do not fit the model the config describes are one error naming both.
    """
    folder = Path(folder)
    config = read_json(folder / CONFIG, "checkpoint configuration")
    metadata = read_json(folder / METADATA, "checkpoint metadata")
    config.setdefault("kind", DEFAULT_KIND)
    kind = model_kind(config["kind"])
    model = build_model(kind.config.from_dict(config["model"], where=f"{folder / CONFIG}: model"), kind.name)
    state = load_state_dict(folder / WEIGHTS, map_location=device)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[1:3]) or first[0]
        raise DataError(f"{folder / WEIGHTS}: the weights do not fit the {kind.name} model that {folder / CONFIG} "
                        f"describes ({detail})") from None
    return model.to(device).eval(), config, metadata
