"""A checkpoint is a folder: ``model.pt`` (a state_dict), ``config.json`` (the resolved configuration the model is
rebuilt from) and ``metadata.json`` (seed, best epoch, metrics, versions). Never a pickled module: weights load
with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from rider.atomic import atomic_path, write_json
from rider.model import DEFAULT_KIND, build_model, model_kind

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
    """
    folder = Path(folder)
    config = json.loads((folder / CONFIG).read_text())
    metadata = json.loads((folder / METADATA).read_text())
    config.setdefault("kind", DEFAULT_KIND)
    kind = model_kind(config["kind"])
    model = build_model(kind.config.from_dict(config["model"], where=f"{folder / CONFIG}: model"), kind.name)
    state = torch.load(folder / WEIGHTS, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), config, metadata
