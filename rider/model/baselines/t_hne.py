"""t-HNE (Li and Li, COLING 2025, "t-HNE: A Text-guided Hierarchical Noise Eliminator for Multimodal Sentiment
Analysis", pp. 2834-2844), a baseline of the paper's Tables 1-2, trained by the same trainer as every kind.

No public code was found (GitHub searched for t-HNE and the title's terms), and the paper's full text was not
reachable here: only its abstract (aclanthology.org/2025.coling-main.192) and RIDER-MoE's description ("denoising
noisy modalities", §2). The abstract fixes three mechanisms, and this file builds exactly those:
1. intra-modality denoising: "textual information is injected into both visual and acoustic modalities using an
   attention mechanism";
2. inter-modality denoising: "maximizing the mutual information between textual representations and the
   respective visual and acoustic representations";
3. feature recovery: "the fused multimodal representation is refined through contrastive learning with each
   unimodal representation except the textual".
EVERYTHING ELSE WAS DECIDED HERE, not taken from the paper; the equation numbers of the paper are unknown:
- Encoders: each modality's words projected by Linear(D_m -> d); the text then goes through ``text_layers`` layers
  of self-attention (the MulT encoder of rider.model.baselines.mult: sqrt(d) scaling, sinusoidal positions, pre-norm,
  final LayerNorm; not causal). Audio and vision get no encoder of their own before the injection.
- Stage 1 (intra-modality): a crossmodal Transformer per non-text modality (MulT's, ``cross_layers`` layers),
  queries from audio (vision) words, keys and values from the encoded text: the text-injected streams.
- Utterance vectors: masked mean over the real words -> h_T, h_A, h_V (B, d).
- Stage 2 (inter-modality): mutual information maximised through its InfoNCE lower bound (van den Oord et al.
  2018) between h_T and h_A and between h_T and h_V, with in-batch negatives; the critic is the cosine of a
  learned Linear(d -> d) image of the text vector and the other vector, divided by a temperature τ. The two
  InfoNCE losses are averaged: the term ``mi``.
- Fusion: [h_T; h_A; h_V] -> Linear(3d -> d) -> ReLU -> dropout = z; prediction head Linear(d -> d) -> ReLU ->
  dropout -> Linear(d -> 1).
- Feature recovery: InfoNCE between z and h_A and between z and h_V (a Linear(d -> d) image of z against the
  unimodal vector, cosine / τ), averaged: the term ``recovery``. Not against h_T, as the abstract says.
- Loss: L = L_task (Eq. 2, L1) + mi_weight L_mi + recovery_weight L_rec, both weights 0.1; widths (d = 128,
  4 heads, 2 text layers, 1 crossmodal layer), dropout 0.1 and τ = 0.1 are ours: ``PAPER`` holds these same
  sizes for MOSI and MOSEI because no published sizes were available, and the count test records our count.
- Absent modality (App. C.2): zeroed features (``absent="zeros"``). The noise eliminator is the model's own
  denoising mechanism and runs unchanged in evaluation on whatever it receives (noisy, zeroed, or swapped
  features); the paper describes no separate missing-modality procedure.
- Padding: inputs are zeroed beyond ``lengths``, padded keys are masked in every attention, and the utterance
  vectors average the real words only; a sample of length 0 gets zero vectors (tested).

Shapes: B batch, L words, D = d_model, M = 3 modalities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from rider.config import ConfigSection
from rider.model.kind import ModelKind, check_input_widths
from rider.model.crossmodal import Transformer
from rider.model.objective import Objective, PureObjective, task_loss
from rider.model.padding import needed_steps


@dataclass(frozen=True)
class THNEConfig(ConfigSection):
    """The network; every default decided here (module docstring). ``heads``, ``embed_dropout``,
    ``relu_dropout``, ``res_dropout``, ``position_embedding`` and ``max_len`` are read by the MulT encoder
    (rider.model.crossmodal.Transformer) under the same names."""

    d_model: int = 128  # width d of every stream and utterance vector
    heads: int = 4  # attention heads of the text encoder and the crossmodal injections
    text_layers: int = 2  # self-attention layers over the text
    cross_layers: int = 1  # crossmodal layers of each text injection (stage 1)
    embed_dropout: float = 0.1  # on each Transformer's embedded inputs
    attn_dropout: float = 0.1  # on the attention weights
    relu_dropout: float = 0.1  # inside the feed-forwards
    res_dropout: float = 0.1  # on each sub-layer's output
    output_dropout: float = 0.1  # in the fusion and the prediction head
    temperature: float = 0.1  # τ of the InfoNCE critics (stage 2 and recovery)
    position_embedding: bool = True  # sinusoidal positions in the Transformers
    # Inputs (set from the cache by the trainer): GloVe text (768 for BERT-family features), COVAREP audio,
    # Facet vision; L words.
    text_dim: int = 300
    audio_dim: int = 74
    vision_dim: int = 35
    max_len: int = 50

    def __post_init__(self):
        for name in ("d_model", "heads", "text_layers", "cross_layers", "text_dim", "audio_dim", "vision_dim",
                     "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"THNEConfig: {name} = {value!r} must be an integer >= 1")
        if self.d_model % self.heads:
            raise ValueError(f"THNEConfig: d_model = {self.d_model} is not divisible by heads = {self.heads}")
        for name in ("embed_dropout", "attn_dropout", "relu_dropout", "res_dropout", "output_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"THNEConfig: {name} = {getattr(self, name)} must be in [0, 1)")
        if not self.temperature > 0:
            raise ValueError(f"THNEConfig: temperature = {self.temperature} must be > 0")



@dataclass(frozen=True)
class THNELoss(ConfigSection):
    """L = L_task + mi_weight L_mi + recovery_weight L_rec; both weights decided here (0.1)."""

    mi_weight: float = 0.1  # stage 2: InfoNCE between the text and the audio / vision vectors
    recovery_weight: float = 0.1  # feature recovery: InfoNCE between the fused and the audio / vision vectors

    def __post_init__(self):
        for name in ("mi_weight", "recovery_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"THNELoss: {name} = {getattr(self, name)} must be >= 0")

    def coefficients(self) -> dict[str, float]:
        return {"task": 1.0, "mi": self.mi_weight, "recovery": self.recovery_weight}



class THNEOutput(NamedTuple):
    prediction: torch.Tensor  # ŷ, (B,)
    utterance: torch.Tensor  # h_T, h_A, h_V after the text injection, (M, B, D)
    fused: torch.Tensor  # z, (B, D)
    mi_scores: torch.Tensor  # critic scores text -> audio, text -> vision, (2, B, B)
    recovery_scores: torch.Tensor  # critic scores fused -> audio, fused -> vision, (2, B, B)


def padded_key_mask(steps_q: int, steps_k: int, real: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, Tq, Tk) additive mask, 0 where key j is a real word (the first key for an empty sample, so that no
    softmax row is empty), -inf elsewhere."""
    allowed = torch.arange(steps_k, device=real.device)[None, :] < real.clamp(min=1)[:, None]  # (B, Tk)
    allowed = allowed[:, None, None, :].expand(-1, 1, steps_q, -1)  # (B, 1, Tq, Tk)
    return torch.zeros(allowed.shape, dtype=dtype, device=real.device).masked_fill(~allowed, float("-inf"))


def masked_mean(x: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, L, D) over the real words, words (B, L, 1) bool; zeros for an empty sample."""
    return (x * words).sum(dim=1) / words.sum(dim=1).clamp(min=1)  # (B, D)


def critic_scores(anchor: torch.Tensor, other: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE critic: cosine of anchor_i (already mapped) and other_j, over τ. (B, D) each -> (B, B)."""
    return F.normalize(anchor, dim=-1) @ F.normalize(other, dim=-1).T / temperature


def info_nce(scores: torch.Tensor) -> torch.Tensor:
    """The InfoNCE loss of (B, B) critic scores whose positives lie on the diagonal: the mean over i of
    -log softmax_j(scores_ij) at j = i (minimising it maximises a lower bound on the mutual information)."""
    return F.cross_entropy(scores, torch.arange(scores.shape[0], device=scores.device))


class THNE(nn.Module):
    def __init__(self, cfg: THNEConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.d_model
        self.project = nn.ModuleDict({m: nn.Linear(getattr(cfg, f"{m}_dim"), D) for m in ("text", "audio", "vision")})
        self.text_encoder = Transformer(D, cfg.text_layers, cfg, cfg.attn_dropout)
        # Stage 1: the text injected into audio and into vision (queries: the target's words; keys/values: text).
        self.inject = nn.ModuleDict({m: Transformer(D, cfg.cross_layers, cfg, cfg.attn_dropout)
                                     for m in ("audio", "vision")})
        # Stage 2 critics (text -> audio, text -> vision) and recovery critics (fused -> audio, fused -> vision).
        self.mi_critic = nn.ModuleDict({m: nn.Linear(D, D) for m in ("audio", "vision")})
        self.recovery_critic = nn.ModuleDict({m: nn.Linear(D, D) for m in ("audio", "vision")})
        self.fuse = nn.Sequential(nn.Linear(3 * D, D), nn.ReLU(), nn.Dropout(cfg.output_dropout))
        self.head = nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Dropout(cfg.output_dropout), nn.Linear(D, 1))

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                lengths: torch.Tensor) -> THNEOutput:
        """text (B, L, Dt), audio (B, L, Da), vision (B, L, Dv), lengths (B,) real words."""
        cfg = self.cfg
        check_input_widths("t-HNE", cfg, text=text, audio=audio, vision=vision)
        B, L, _ = text.shape
        if L > cfg.max_len:
            raise ValueError(f"t-HNE: sequences of {L} words, the config has max_len = {cfg.max_len}")
        L = needed_steps(lengths, L)  # steps beyond the longest sample are padding nobody sees
        words = (torch.arange(L, device=text.device)[None, :] < lengths[:, None])[..., None]  # (B, L, 1)
        streams = {m: self.project[m](x[:, :L] * words)
                   for m, x in (("text", text), ("audio", audio), ("vision", vision))}  # (B, L, D) each
        mask = padded_key_mask(L, L, lengths, text.dtype)  # (B, 1, L, L)
        encoded_text = self.text_encoder(streams["text"], None, mask)  # (B, L, D)
        # Stage 1: text-guided intra-modality denoising of audio and vision.
        injected = {m: self.inject[m](streams[m], encoded_text, mask) for m in ("audio", "vision")}  # (B, L, D)
        h_t = masked_mean(encoded_text, words)  # (B, D)
        h_a, h_v = masked_mean(injected["audio"], words), masked_mean(injected["vision"], words)  # (B, D) each
        fused = self.fuse(torch.cat([h_t, h_a, h_v], dim=-1))  # z, (B, D)
        prediction = self.head(fused).squeeze(-1)  # (B,)
        # Stage 2 (inter-modality) and feature recovery: the critics' scores; the objective turns them into InfoNCE.
        mi = torch.stack([critic_scores(self.mi_critic[m](h_t), h, cfg.temperature)
                          for m, h in (("audio", h_a), ("vision", h_v))])  # (2, B, B)
        recovery = torch.stack([critic_scores(self.recovery_critic[m](fused), h, cfg.temperature)
                                for m, h in (("audio", h_a), ("vision", h_v))])  # (2, B, B)
        return THNEOutput(prediction, torch.stack([h_t, h_a, h_v]), fused, mi, recovery)


TERMS = ("task", "mi", "recovery")


def thne_objective(config: THNEConfig, loss: THNELoss, train_size: int = 0) -> Objective:
    """The three unweighted terms; ``THNELoss.coefficients`` weights them."""
    def terms(output: THNEOutput, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "task": task_loss(output.prediction, y),  # Eq. 2
            "mi": (info_nce(output.mi_scores[0]) + info_nce(output.mi_scores[1])) / 2,
            "recovery": (info_nce(output.recovery_scores[0]) + info_nce(output.recovery_scores[1])) / 2,
        }
    return PureObjective(TERMS, terms)


# No published sizes were reachable: both datasets get the sizes decided here (module docstring).
PAPER = {"mosi": THNEConfig(), "mosei": THNEConfig()}

KIND = ModelKind(name="t_hne", config=THNEConfig, loss=THNELoss, build=THNE, objective=thne_objective,
                 absent="zeros", paper=PAPER, title="t-HNE",
                 note="no public code or full text: built from the abstract's three mechanisms; sizes, critics and "
                      "loss weights decided here (rider/model/baselines/t_hne.py)")
