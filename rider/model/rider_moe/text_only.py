"""A text-only model: RIDER-MoE's text encoder g_T and a regression head, no fusion, experts or routing.

It answers "how far does the text alone go" on data that has only text (the genuine MOSI transcripts: the
mosi-text configuration) and is trained by the same trainer with the task loss of Eq. 2 alone. The audio and
vision arguments exist so that every model kind is called the same way; they are never read.

Shapes: B batch, L words, D hidden (d_model).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from rider.model.kind import ModelKind
from rider.model.objective import TaskLoss, task_objective
from rider.model.rider_moe.config import ModelConfig
from rider.model.rider_moe.encoders import ModalityEncoder


class TextOnlyOutput(NamedTuple):
    prediction: torch.Tensor  # (B,)
    text: torch.Tensor  # h_T, (B, D)


class TextOnlyModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.d_model
        self.encoder = ModalityEncoder(cfg.text_dim, cfg)  # g_T, exactly as in RIDER-MoE
        # A one-hidden-layer MLP, as RIDER-MoE's probes and experts end: D -> D -> 1.
        self.head = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(D, 1))

    def forward(self, text: torch.Tensor, audio: torch.Tensor | None, vision: torch.Tensor | None,
                lengths: torch.Tensor) -> TextOnlyOutput:
        """text (B, L, Dt), lengths (B,)."""
        if text.shape[-1] != self.cfg.text_dim:
            raise ValueError(f"TextOnlyModel: text has {text.shape[-1]} features, the config expects "
                             f"{self.cfg.text_dim}")
        h = self.encoder(text, lengths)  # (B, D)
        return TextOnlyOutput(self.head(h).squeeze(-1), h)  # (B,), (B, D)


KIND = ModelKind(
    name="text_only", config=ModelConfig, loss=TaskLoss, build=TextOnlyModel, objective=task_objective,
    modalities=("text",), shared_sections=("model",), title="Text only",
)
