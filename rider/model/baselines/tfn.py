"""Tensor Fusion Network (TFN), a baseline: Zadeh, Chen, Poria, Cambria and Morency, "Tensor Fusion Network for
Multimodal Sentiment Analysis", EMNLP 2017.

Authors' code: github.com/A2Zadeh/TensorFusionNetwork (Keras) and the PyTorch port of the same group
(github.com/Justin1904/TensorFusionNetworks), which MMSA 2.2.1 (thuiar/MMSA: models/singleTask/TFN.py,
models/subNets/FeatureNets.py, trains/singleTask/TFN.py) carries over. The sizes here are MMSA's
(config/config_regression.json, tfn.datasetParams), and the parameter counts are checked against MMSA's
(tests/model/baselines/test_tfn.py).

The network (paper §3):
1. Modality embedding sub-networks (§3.1). Audio and vision: the features averaged over the words, then
   BatchNorm, dropout and three Linear+ReLU layers -> z_a, z_v. Language: a one-layer LSTM over the words, its
   hidden state after the last word, one Linear -> z_l.
2. Tensor fusion layer (§3.2): each representation with a constant 1 appended, and their three-fold outer
   product z_m = [z_a; 1] ⊗ [z_v; 1] ⊗ [z_l; 1], flattened. The 1s keep the unimodal and bimodal terms beside
   the trimodal ones. It has no parameters.
3. Sentiment inference sub-network (§3.3): dropout, two Linear+ReLU layers of post_fusion_dim, a Linear to one
   output; the authors' code squashes it into the label range, 6·sigmoid(o) − 3, and so do we.
Trained on the task loss alone (L1, Eq. 2 of our paper: MMSA's regression setting).

Where ours differs from the authors' code, and why:
- Padding. MMSA averages audio and vision over all 50 positions, padding included (its data loader,
  ``need_normalized``), so a short segment's mean is shrunk towards 0 by its length; we average over the
  ``lengths[b]`` real words only. MMSA's language LSTM also runs on through the padding and keeps its state after
  position 50; we keep the state after the last real word (read from the LSTM's outputs at lengths−1: the same as
  a packed sequence, without packing, so it also runs under torch.compile). Padding never reaches our prediction
  (tested). A sample of length 0 gets z_a, z_v from an all-zero mean and z_l from the LSTM's zero initial state:
  finite, and the same for every empty sample.
- Text dropout. The authors' config lists a text dropout (dropouts[2]), but their TextSubNet sets it to 0 for a
  one-layer LSTM, so it is never applied; we leave the unused knob out.
- The paper's language sub-network puts fully connected layers after the LSTM; the authors' PyTorch port and
  MMSA take the final hidden state through one Linear. We follow the code, whose sizes MMSA's published numbers
  and our parameter counts come from.
- Optimiser. MMSA trains TFN with Adam (no weight decay) until 8 epochs pass without a better validation loss;
  our one trainer uses AdamW with the dataset's train settings and a fixed number of epochs, keeping the best
  validation checkpoint; a faithful run sets train.weight_decay 0 and the authors' lr and batch size.
- CPU speed and denormal floats (DESIGN §9). MMSA's LMF, which has this LSTM, slows on the CPU as it trains:
  measured here on synthetic MOSI with 1 thread, from 1.5 s to 12.6 s of CPU time per epoch by epoch 13 (epoch 14
  had not ended two minutes later), with about 90 % of a step in oneDNN's LSTM backward. We attribute it to the
  gradient that enters at position 50 and decays into denormal floats on its way back through the padding steps:
  torch.set_flush_denormal(True) takes that backward from 0.97 s to 0.10 s per step, and ours, whose gradient
  starts at the last real word (it is exactly 0 in the padding steps), does not slow: our LMF at the authors' MOSI
  sizes trained 60 epochs at a flat 1.3-2.1 s per epoch without the flag (a few thousand AdamW first moments of
  dead units turn denormal after epoch 30, with no cost seen).
  So the model code sets no process-wide flag. Should long real sequences bring the slowdown back, the switch
  belongs where the process is set up (the CLI, beside the thread count), for every kind with an LSTM.
- Text features are the cache's word features (GloVe 300 by default; MMSA's own MOSI file has 768-d BERT
  features per token). The architecture does not change, only text_dim.

Shapes: B batch, L words, Dt/Da/Dv input features, Ht LSTM width, To/Ha/Hv representation sizes, P post-fusion
width, F = (Ha+1)(Hv+1)(To+1) fused features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn

from rider.config import ConfigSection
from rider.model.kind import ModelKind, check_input_widths
from rider.model.objective import TaskLoss, task_objective
from rider.model.subnetworks import FeatureSubNet, TextSubNet, with_one

# The labels lie in [-3, 3]; TFN's output is 6·sigmoid(o) − 3 (the authors' output_range and output_shift).
LABEL_RANGE = 3.0


@dataclass(frozen=True)
class TFNConfig(ConfigSection):
    """TFN's sizes; defaults = MMSA 2.2.1 config_regression.json, tfn.datasetParams.mosi (its hidden_dims list is
    [text, audio, vision])."""

    text_hidden: int = 128  # Ht: LSTM width of the language sub-network (hidden_dims[0])
    audio_hidden: int = 32  # Ha: width of the audio sub-network's three layers = size of z_a (hidden_dims[1])
    vision_hidden: int = 128  # Hv: width of the vision sub-network's three layers = size of z_v (hidden_dims[2])
    text_out: int = 32  # To: size of z_l (text_out)
    post_fusion_dim: int = 64  # P: width of the two post-fusion layers (post_fusion_dim)
    audio_dropout: float = 0.3  # after the audio BatchNorm (dropouts[0])
    vision_dropout: float = 0.3  # after the vision BatchNorm (dropouts[1])
    post_fusion_dropout: float = 0.5  # on the fused tensor (dropouts[3])
    # Inputs, set by the trainer from the cache: GloVe 300 (768 BERT-family), COVAREP 74, Facet 35; L = 50 words.
    text_dim: int = 300
    audio_dim: int = 74
    vision_dim: int = 35
    max_len: int = 50  # TFN takes any L (LSTM and mean); kept because every kind's config carries it

    def __post_init__(self):
        for name in ("text_hidden", "audio_hidden", "vision_hidden", "text_out", "post_fusion_dim", "text_dim",
                     "audio_dim", "vision_dim", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"TFNConfig: {name} = {getattr(self, name)} must be >= 1")
        for name in ("audio_dropout", "vision_dropout", "post_fusion_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"TFNConfig: {name} = {getattr(self, name)} must be in [0, 1)")



def tensor_fusion(z_a: torch.Tensor, z_v: torch.Tensor, z_l: torch.Tensor) -> torch.Tensor:
    """The tensor fusion layer (§3.2): z_m = [z_a; 1] ⊗ [z_v; 1] ⊗ [z_l; 1], flattened -> (B, F)."""
    z_m = torch.einsum("ba,bv,bl->bavl", with_one(z_a), with_one(z_v), with_one(z_l))  # (B, Ha+1, Hv+1, To+1)
    return z_m.flatten(1)  # (B, F)


class TFNOutput(NamedTuple):
    prediction: torch.Tensor  # (B,)
    text: torch.Tensor  # z_l (B, To)
    audio: torch.Tensor  # z_a (B, Ha)
    vision: torch.Tensor  # z_v (B, Hv)


class TFN(nn.Module):
    def __init__(self, cfg: TFNConfig):
        super().__init__()
        self.cfg = cfg
        self.text_subnet = TextSubNet(cfg.text_dim, cfg.text_hidden, cfg.text_out)
        self.audio_subnet = FeatureSubNet(cfg.audio_dim, cfg.audio_hidden, cfg.audio_dropout)
        self.vision_subnet = FeatureSubNet(cfg.vision_dim, cfg.vision_hidden, cfg.vision_dropout)
        fused = (cfg.audio_hidden + 1) * (cfg.vision_hidden + 1) * (cfg.text_out + 1)  # F
        P = cfg.post_fusion_dim
        self.post_fusion = nn.Sequential(
            nn.Dropout(cfg.post_fusion_dropout), nn.Linear(fused, P), nn.ReLU(), nn.Linear(P, P), nn.ReLU(),
            nn.Linear(P, 1),
        )

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                lengths: torch.Tensor) -> TFNOutput:
        """text (B, L, Dt), audio (B, L, Da), vision (B, L, Dv), lengths (B,)."""
        check_input_widths("TFN", self.cfg, text=text, audio=audio, vision=vision)
        z_l = self.text_subnet(text, lengths)  # (B, To)
        z_a = self.audio_subnet(audio, lengths)  # (B, Ha)
        z_v = self.vision_subnet(vision, lengths)  # (B, Hv)
        z_m = tensor_fusion(z_a, z_v, z_l)  # (B, F)
        o = self.post_fusion(z_m).squeeze(-1)  # (B,)
        prediction = 2 * LABEL_RANGE * torch.sigmoid(o) - LABEL_RANGE  # (B,) in (-3, 3)
        return TFNOutput(prediction, z_l, z_a, z_v)


# The authors' sizes (MMSA 2.2.1 config_regression.json, tfn.datasetParams); feature widths are set from the cache.
PAPER = {
    "mosi": TFNConfig(),
    "mosei": TFNConfig(text_hidden=128, audio_hidden=16, vision_hidden=128, text_out=128, post_fusion_dim=16,
                       audio_dropout=0.4, vision_dropout=0.4, post_fusion_dropout=0.4),
}

KIND = ModelKind(name="tfn", config=TFNConfig, loss=TaskLoss, build=TFN, objective=task_objective, absent="zeros",
                 paper=PAPER, title="TFN")
