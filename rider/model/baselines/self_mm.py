"""Self-MM (Yu, Xu, Yuan and Wu, AAAI 2021, "Learning Modality-Specific Representations with Self-Supervised
Multi-Task Learning for Multimodal Sentiment Analysis"), a baseline of the paper's Table 1.

One network, four regression heads: the fused representation predicts the multimodal label y_m (the task), and
each modality's own representation predicts a unimodal label y_s (s = text, audio, vision) that no annotator
gave. The unimodal labels are generated during training (the authors' ULGM), one per training sample, from where
each sample's representations lie relative to the class centres:
- the positive and negative centres C_p, C_n of each representation (fused F_m and unimodal F_s) are the means of
  the stored representations of the samples whose current label is > 0 (resp. < 0), over the whole training set;
- the relative distance of a representation is α = (D_n - D_p) / (D_p + ε), D the L2 distance to a centre;
- y_s is derived from y_m by assuming y_s / y_m = α_s / α_m and y_s - y_m = α_s - α_m, averaged:
  y_s = (α_s / α_m) y_m / 2 + (y_m + α_s - α_m) / 2, clipped to [-H, H];
- it enters a per-sample memory with momentum: at epoch i > 1, y_s <- (i - 1)/(i + 1) y_s + 2/(i + 1) y_s^new.
  At epoch 1 every y_s is y_m (and no label moves).
The loss is |ŷ_m - y_m| + Σ_s tanh(|y_s - y_m|) |ŷ_s - y_s| (batch means): a unimodal head learns only where its
label departs from the multimodal one. The representations are stored after every step, the centres recomputed.
The memory is ``SelfMMObjective``'s state, keyed by the training-split rows (``Batch.index``); the trainer calls
``start_epoch`` and ``after_step``. The audio and vision sub-networks learn at their own rates
(``SelfMM.parameter_groups``), as in the authors' optimiser. The paper's equation numbers were not at hand while
writing this file: the lines name the quantities.

Reference code: MMSA 2.2.1 (thuiar/MMSA: models/multiTask/SELF_MM.py, trains/multiTask/SELF_MM.py,
config/config_regression.json). Its CMU-MOSI and CMU-MOSEI hyper-parameters are the defaults and ``PAPER`` here.
The authors' own repository, thuiar/Self-MM, configures the network differently (MOSI: batch 32,
audio and vision LSTM widths 32 and 64, other rates); MMSA's configuration is the one we follow and count against.
Written from reading the code, not copied.

Where ours differs, and why:
- Text. The authors fine-tune BERT and take its first token ([CLS], 768-d) as the text representation; they
  have no other text path. Here the text is the cached, frozen word features (GloVe 300, or frozen BERT-family
  features of 768 per word, without a [CLS] token), so the closest faithful text representation is their mean
  over the real words: parameter-free like the frozen encoder it stands for, a sentence vector of the features'
  own width (text_out = text_dim), fed to the same text and fusion heads. With 768-d features our count equals the
  authors' without BERT (tests). BERT's learning rate and weight decay have nothing left to apply to.
- The memory of a sample starts when the sample is first seen (its y_s = y_m), not in a pass over the training
  set before the first epoch: labels move only from epoch 2, when every sample has been seen, and the centres of
  epoch 1 are never read, so the generated labels are the authors'. A class with no sample gets a zero centre
  (the authors' mean of nothing is NaN).
- Distances are plain L2 norms, as in the authors' code (it builds a per-representation width map to scale them
  and never uses it).
- Audio and vision read the word-aligned features for the word count (the authors' aligned setting); packed
  sequences are replaced by padded ones with the same final states (rider.model.recurrent); a sample of length 0
  gets a zero state.
- Optimisation (the trainer's, configs/paper.yaml): AdamW (decoupled weight decay) instead of Adam with L2;
  MMSA accumulates the gradients of ``update_epochs`` = 4 batches before a step (16 x 4 for MOSI, 32 x 4 for
  MOSEI: batch 64 and 128 here). The authors' label and representation updates follow every batch, as ours
  (``after_step``).
- The sub-networks' LSTMs have one layer (``a_lstm_layers`` = ``v_lstm_layers`` = 1 in every configuration; the
  authors' sub-network reads a single layer's state and breaks with more), so there is no layer count to set.

Shapes: B batch, L words, N training samples, M modalities (text, audio, vision), D_m a modality's features,
P the width of a head's representation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from rider.config import ConfigSection
from rider.model.kind import MODALITY_NAMES, ModelKind, check_input_widths
from rider.model.objective import Batch, Objective, task_loss
from rider.model.recurrent import run_forward, truncate

EPS = 1e-8  # the authors' MIN: keeps the relative distances finite
HEADS = ("fusion", *MODALITY_NAMES)  # the four representations and predictions, fused first


@dataclass(frozen=True)
class SelfMMConfig(ConfigSection):
    """The network and its per-subnetwork optimiser settings. Defaults: MMSA 2.2.1 config_regression.json,
    self_mm.datasetParams.mosi (MOSEI in ``PAPER``)."""

    # Audio and vision sub-networks: a one-layer LSTM, dropout on its final state, Linear(hidden -> out).
    audio_lstm_hidden: int = 16  # a_lstm_hidden_size (MOSEI 16)
    vision_lstm_hidden: int = 32  # v_lstm_hidden_size (MOSEI 32)
    audio_out: int = 16  # audio_out (MOSEI 16)
    vision_out: int = 32  # video_out (MOSEI 32)
    audio_lstm_dropout: float = 0.0  # a_lstm_dropout, on the final state (MOSEI 0.0)
    vision_lstm_dropout: float = 0.0  # v_lstm_dropout (MOSEI 0.0)
    # Heads: dropout, Linear(in -> P), ReLU (the representation F), Linear(P -> P), ReLU, Linear(P -> 1).
    post_fusion_dim: int = 128  # (MOSEI 128)
    post_text_dim: int = 32  # (MOSEI 32)
    post_audio_dim: int = 16  # (MOSEI 16)
    post_vision_dim: int = 32  # post_video_dim (MOSEI 32)
    post_fusion_dropout: float = 0.0  # (MOSEI 0.1)
    post_text_dropout: float = 0.1  # (MOSEI 0.0)
    post_audio_dropout: float = 0.1  # (MOSEI 0.0)
    post_vision_dropout: float = 0.0  # post_video_dropout (MOSEI 0.0)
    # The audio and vision sub-networks' own Adam(W) settings; every other parameter learns at train.lr and
    # train.weight_decay (the authors' learning_rate_other 1e-3, weight_decay_other 1e-3; MOSEI 1e-3, 1e-2).
    lr_audio: float = 5e-3  # learning_rate_audio (MOSEI 5e-3)
    lr_vision: float = 5e-3  # learning_rate_video (MOSEI 1e-4)
    weight_decay_audio: float = 1e-3  # (MOSEI 0.0)
    weight_decay_vision: float = 1e-3  # weight_decay_video (MOSEI 0.0)
    # Inputs (set from the cache by the trainer): GloVe text (768 for BERT-family features), COVAREP audio,
    # Facet vision; L words (unused: the LSTMs and the text mean read any length).
    text_dim: int = 300
    audio_dim: int = 74
    vision_dim: int = 35
    max_len: int = 50

    def __post_init__(self):
        for name in ("audio_lstm_hidden", "vision_lstm_hidden", "audio_out", "vision_out", "post_fusion_dim",
                     "post_text_dim", "post_audio_dim", "post_vision_dim", "text_dim", "audio_dim", "vision_dim",
                     "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SelfMMConfig: {name} = {value!r} must be an integer >= 1")
        for name in ("audio_lstm_dropout", "vision_lstm_dropout", "post_fusion_dropout", "post_text_dropout",
                     "post_audio_dropout", "post_vision_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"SelfMMConfig: {name} = {getattr(self, name)} must be in [0, 1)")
        for name in ("lr_audio", "lr_vision"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SelfMMConfig: {name} = {getattr(self, name)} must be > 0")
        for name in ("weight_decay_audio", "weight_decay_vision"):
            if getattr(self, name) < 0:
                raise ValueError(f"SelfMMConfig: {name} = {getattr(self, name)} must be >= 0")



@dataclass(frozen=True)
class SelfMMLoss(ConfigSection):
    """The unimodal terms' weights (the authors add all four terms with weight 1) and the label generation's
    settings (MMSA self_mm, MOSI and MOSEI alike)."""

    text_weight: float = 1.0
    audio_weight: float = 1.0
    vision_weight: float = 1.0
    label_bound: float = 3.0  # H: generated labels are clipped to [-H, H], the label range
    exclude_zero: bool = True  # excludeZero: a label of exactly 0 belongs to neither centre (else: positive)

    def __post_init__(self):
        for name in ("text_weight", "audio_weight", "vision_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"SelfMMLoss: {name} = {getattr(self, name)} must be >= 0")
        if self.label_bound <= 0:
            raise ValueError(f"SelfMMLoss: label_bound = {self.label_bound} must be > 0")

    def coefficients(self) -> dict[str, float]:
        return {"task": 1.0, "text": self.text_weight, "audio": self.audio_weight, "vision": self.vision_weight}



class SelfMMOutput(NamedTuple):
    prediction: torch.Tensor  # ŷ_m, (B,)
    unimodal: torch.Tensor  # ŷ_s for text, audio, vision, (M, B)
    fusion_feature: torch.Tensor  # F_m, (B, P_fusion)
    text_feature: torch.Tensor  # F_t, (B, P_text)
    audio_feature: torch.Tensor  # F_a, (B, P_audio)
    vision_feature: torch.Tensor  # F_v, (B, P_vision)


class AudioVisionSubnet(nn.Module):
    """The authors' AuViSubNet: a one-layer LSTM's final state, dropout, Linear(hidden -> out)."""

    def __init__(self, in_dim: int, hidden: int, out: int, dropout: float):
        super().__init__()
        self.rnn = nn.LSTM(in_dim, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _, final = run_forward(self.rnn, truncate(x, lengths), lengths)  # (B, hidden)
        return self.linear(self.dropout(final))  # (B, out)


class Head(nn.Module):
    """Dropout, Linear(in -> P), ReLU: the representation F; then Linear(P -> P), ReLU, Linear(P -> 1)."""

    def __init__(self, in_dim: int, dim: int, dropout: float):
        super().__init__()
        self.represent = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, dim), nn.ReLU())
        self.predict = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.represent(x)  # (B, P)
        return feature, self.predict(feature).squeeze(-1)  # (B, P), (B,)


class SelfMM(nn.Module):
    def __init__(self, cfg: SelfMMConfig):
        super().__init__()
        self.cfg = cfg
        self.audio_subnet = AudioVisionSubnet(cfg.audio_dim, cfg.audio_lstm_hidden, cfg.audio_out,
                                              cfg.audio_lstm_dropout)
        self.vision_subnet = AudioVisionSubnet(cfg.vision_dim, cfg.vision_lstm_hidden, cfg.vision_out,
                                               cfg.vision_lstm_dropout)
        self.fusion_head = Head(cfg.text_dim + cfg.audio_out + cfg.vision_out, cfg.post_fusion_dim,
                                cfg.post_fusion_dropout)
        self.text_head = Head(cfg.text_dim, cfg.post_text_dim, cfg.post_text_dropout)
        self.audio_head = Head(cfg.audio_out, cfg.post_audio_dim, cfg.post_audio_dropout)
        self.vision_head = Head(cfg.vision_out, cfg.post_vision_dim, cfg.post_vision_dropout)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                lengths: torch.Tensor) -> SelfMMOutput:
        """text (B, L, Dt), audio (B, L, Da), vision (B, L, Dv), lengths (B,)."""
        check_input_widths("SelfMM", self.cfg, text=text, audio=audio, vision=vision)
        valid = (torch.arange(text.shape[1], device=text.device)[None, :] < lengths[:, None]).to(text.dtype)  # (B, L)
        t = (text * valid[..., None]).sum(dim=1) / valid.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, Dt)
        a = self.audio_subnet(audio, lengths)  # (B, audio_out)
        v = self.vision_subnet(vision, lengths)  # (B, vision_out)
        F_m, y_m = self.fusion_head(torch.cat([t, a, v], dim=-1))  # (B, P_fusion), (B,)
        F_t, y_t = self.text_head(t)  # (B, P_text), (B,)
        F_a, y_a = self.audio_head(a)  # (B, P_audio), (B,)
        F_v, y_v = self.vision_head(v)  # (B, P_vision), (B,)
        return SelfMMOutput(y_m, torch.stack([y_t, y_a, y_v]), F_m, F_t, F_a, F_v)

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """The authors' optimiser groups: audio and vision sub-networks at their own rates and decays, every other
        parameter at (lr, weight_decay), the authors' learning_rate_other and weight_decay_other."""
        own = {"audio_subnet": (self.cfg.lr_audio, self.cfg.weight_decay_audio),
               "vision_subnet": (self.cfg.lr_vision, self.cfg.weight_decay_vision)}
        groups = [{"params": list(getattr(self, name).parameters()), "lr": rate, "weight_decay": decay}
                  for name, (rate, decay) in own.items()]
        rest = [p for name, p in self.named_parameters() if name.split(".")[0] not in own]
        return groups + [{"params": rest, "lr": lr, "weight_decay": weight_decay}]


# The unimodal label generation (ULGM), as pure functions of tensors.

def class_centres(features: torch.Tensor, labels: torch.Tensor, seen: torch.Tensor,
                  exclude_zero: bool) -> torch.Tensor:
    """(N, P) representations, (N,) labels, (N,) bool rows stored so far -> (2, P): the positive centre C_p (mean
    over labels > 0, or >= 0 without exclude_zero) and the negative one C_n (labels < 0); zeros for an empty class."""
    positive = (labels > 0) if exclude_zero else (labels >= 0)
    members = torch.stack([positive & seen, (labels < 0) & seen]).to(features.dtype)  # (2, N)
    return (members @ features) / members.sum(dim=1, keepdim=True).clamp(min=1.0)  # (2, P)


def relative_distance(features: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """α = (D_n - D_p) / (D_p + ε): (B, P) representations, (2, P) centres -> (B,). Large where a representation
    lies near the positive centre and far from the negative one."""
    d_p = torch.linalg.vector_norm(features - centres[0], dim=-1)  # (B,)
    d_n = torch.linalg.vector_norm(features - centres[1], dim=-1)  # (B,)
    return (d_n - d_p) / (d_p + EPS)


def generated_label(y_m: torch.Tensor, alpha_m: torch.Tensor, alpha_s: torch.Tensor, bound: float) -> torch.Tensor:
    """y_s from y_m (B,): the mean of y_s = y_m α_s / α_m and y_s = y_m + α_s - α_m, clipped to [-H, H]."""
    ratio = alpha_s / (alpha_m + EPS)  # (B,)
    return (0.5 * ratio * y_m + 0.5 * (y_m + alpha_s - alpha_m)).clamp(-bound, bound)


def momentum_update(previous: torch.Tensor, new: torch.Tensor, epoch: int) -> torch.Tensor:
    """The memory at epoch i > 1: (i - 1)/(i + 1) of the stored label plus 2/(i + 1) of the new one."""
    return (epoch - 1) / (epoch + 1) * previous + 2 / (epoch + 1) * new


class SelfMMObjective(Objective):
    """The task term and the three weighted unimodal terms, and the per-sample memory behind them: the labels
    y_s (and y_m) of every training row, the last representations F of every row and head, their class centres.

    ``__call__`` only reads the memory (so it can be graph-captured); ``after_step`` writes it, with the
    representations of the step that was just taken, as the authors do after the backward pass."""

    terms = ("task", *MODALITY_NAMES)

    def __init__(self, train_size: int, loss: SelfMMLoss):
        if train_size < 1:
            raise ValueError(f"SelfMMObjective: train_size = {train_size}, expected the training split's size >= 1")
        self.train_size = train_size
        self.bound = loss.label_bound
        self.exclude_zero = loss.exclude_zero
        self.epoch = 1
        self.labels: torch.Tensor | None = None  # (1 + M, N): y_m, then y_s for text, audio, vision
        self.seen: torch.Tensor | None = None  # (N,) bool: rows whose labels and representations are stored
        self.features: dict[str, torch.Tensor] = {}  # head -> (N, P) last representation of every row
        self.centres: dict[str, torch.Tensor] = {}  # head -> (2, P): C_p, C_n

    def _memory(self, device: torch.device) -> None:
        if self.labels is None:
            self.labels = torch.zeros(1 + len(MODALITY_NAMES), self.train_size, device=device)
            self.seen = torch.zeros(self.train_size, dtype=torch.bool, device=device)

    def unimodal_labels(self, index: torch.Tensor, y_m: torch.Tensor) -> torch.Tensor:
        """y_s of the rows ``index`` (M, B); a row not seen yet starts at y_m."""
        self._memory(y_m.device)
        return torch.where(self.seen[index], self.labels[1:, index], y_m)  # (M, B)

    def __call__(self, output: SelfMMOutput, batch: Batch) -> dict[str, torch.Tensor]:
        y_m = batch.labels  # (B,): the multimodal label is never regenerated
        y_s = self.unimodal_labels(batch.index, y_m)  # (M, B)
        weight = torch.tanh((y_s - y_m).abs())  # (M, B): 0 where y_s = y_m
        unimodal = (weight * (output.unimodal - y_s).abs()).mean(dim=1)  # (M,)
        return {"task": task_loss(output.prediction, y_m), **dict(zip(MODALITY_NAMES, unimodal))}

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @torch.no_grad()
    def after_step(self, output: SelfMMOutput, batch: Batch) -> None:
        index, y_m = batch.index, batch.labels
        self._memory(y_m.device)
        new = ~self.seen[index]
        self.labels[:, index[new]] = y_m[new]  # a row's memory starts at y_m (every y_s = y_m)
        features = dict(zip(HEADS, (output.fusion_feature, output.text_feature, output.audio_feature,
                                    output.vision_feature)))
        if self.epoch > 1 and self.centres:  # the labels of epoch 1 stay y_m; later ones move from its centres
            alpha_m = relative_distance(features["fusion"], self.centres["fusion"])  # (B,)
            for s, modality in enumerate(MODALITY_NAMES, start=1):
                alpha_s = relative_distance(features[modality], self.centres[modality])  # (B,)
                target = generated_label(y_m, alpha_m, alpha_s, self.bound)  # (B,)
                self.labels[s, index] = momentum_update(self.labels[s, index], target, self.epoch)
        self.seen[index] = True
        for k, head in enumerate(HEADS):
            if head not in self.features:
                self.features[head] = torch.zeros(self.train_size, features[head].shape[-1], device=y_m.device)
            self.features[head][index] = features[head].detach().float()
            self.centres[head] = class_centres(self.features[head], self.labels[k], self.seen, self.exclude_zero)


def self_mm_objective(config: SelfMMConfig, loss: SelfMMLoss, train_size: int) -> Objective:
    return SelfMMObjective(train_size, loss)


# The authors' sizes and rates (MMSA config_regression.json, self_mm.datasetParams); input widths from the data.
PAPER = {
    "mosi": SelfMMConfig(),
    "mosei": SelfMMConfig(post_fusion_dropout=0.1, post_text_dropout=0.0, post_audio_dropout=0.0, lr_vision=1e-4,
                          weight_decay_audio=0.0, weight_decay_vision=0.0),
}

KIND = ModelKind(name="self_mm", config=SelfMMConfig, loss=SelfMMLoss, build=SelfMM, objective=self_mm_objective,
                 absent="zeros", paper=PAPER, title="Self-MM",
                 note="the original fine-tunes BERT end to end and reads its [CLS] vector; here the text is the mean "
                      "of the cached frozen word features (the authors have no non-BERT path)")
