"""Low-rank Multimodal Fusion (LMF), a baseline: Liu, Shen, Lakshminarasimhan, Liang, Zadeh and Morency,
"Efficient Low-rank Multimodal Fusion with Modality-Specific Factors", ACL 2018.

Authors' code: github.com/Justin1904/Low-rank-Multimodal-Fusion, which MMSA 2.2.1 (thuiar/MMSA:
models/singleTask/LMF.py, trains/singleTask/LMF.py) carries over. The sizes here are MMSA's
(config/config_regression.json, lmf.datasetParams), and the parameter counts are checked against MMSA's
(tests/model/baselines/test_lmf.py).

LMF keeps TFN's sub-networks and its appended 1s (rider.model.baselines.tfn: the same FeatureSubNet and TextSubNet) but
never builds the outer product. TFN's fusion is a linear map W of Z = [z_a; 1] ⊗ [z_v; 1] ⊗ [z_l; 1] (paper
§3.1); LMF writes W as a sum of r rank-one tensors, W = Σ_i w_a^(i) ⊗ w_v^(i) ⊗ w_l^(i), whose modality-specific
factors w_m^(i) act on each representation separately (§3.2):
    W·Z = Σ_i (w_a^(i)·[z_a; 1]) (w_v^(i)·[z_v; 1]) (w_l^(i)·[z_l; 1]),
so the cost is linear in the number of modalities. As in the authors' code, the fusion output is the prediction
itself (output size 1, no post-fusion network, no output squashing), and the r rank-one terms are summed with
learned weights λ_i instead of the plain sum of the decomposition ("more flexibility", their comment), plus the
bias b of the paper's linear map:
    y = Σ_i λ_i Π_m (w_m^(i)·[z_m; 1]) + b.
Trained on the task loss alone (L1, Eq. 2 of our paper: MMSA's regression setting).

Issue 21: ours against MMSA 2.2.1's own LMF on the same cache
MMSA 2.2.1's LMF model and trainer with its MOSI config (Adam with L2 weight decay 0.005, lr 1e-3 and factor_lr
1e-3, batch 64, early stopping after 8 epochs without a lower validation loss; capped here at 40 epochs) on the
default synthetic MOSI cache, read exactly as our loader reads it, beside ours at the same size (LMFConfig(),
the authors' MOSI size: 268,647 parameters in both) and protocol (``train``: epochs 40, lr 1e-3, batch_size 64,
weight_decay 0.005, weight_decay_mode l2, patience 8; factor_lr 1e-3 from this config). Test Acc-2 (labels != 0)
/ MAE / Corr at each run's lowest validation MAE, mean ± sd over seeds 0-2; CPU seconds per training epoch, one
thread (the other core busy with other jobs):

    (Corr and MAE: means)                          best epoch   val MAE        test Acc-2   MAE    Corr   CPU s
    MMSA 2.2.1 LMF, the text as the cache has it   9 (of 9)     1.217 (s0)     50.3         1.171  0.097  1
      the same, weight decay 0                     9 (of 10)    1.200 (s0)     55.8         1.155  0.197  1
    MMSA 2.2.1 LMF, the text front-padded          31, 14, 15   0.827 ± 0.005  76.2 ± 0.2   0.804  0.742  1.3
      at MMSA's own checkpoint (lowest validation loss: epochs 29, 18, 15)                   75.5 ± 0.4   0.814  0.738
      the same, audio/vision real-word means       14 (of 22)   0.825 (s0)     74.3         0.812  0.742  1
    ours                                           9, 18, 11    0.829 ± 0.003  75.5 ± 0.3   0.799  0.745  1.4
      the same, weight decay 0                     29 (of 37)   0.790 (s0)     76.9         0.843  0.716  1.1

For scale: a text-only probe reaches validation MAE about 0.78 (test Acc-2 76.8 %), a constant about 1.2.
- Why MMSA's LMF did not learn at first: the feed, as for TFN (rider.model.baselines.tfn, Issue 21). With the words
  first and 30-44 zero steps after them, the LSTM's state after position 50 has forgotten the sentence. Measured
  after one and two epochs of MMSA's optimiser (seed 0): z_l is the same for every sample to 1e-9 (the LSTM has
  reached its zero-input fixed point), and the prediction is 0 ± 5e-5 for every sample, i.e. the constant 0, whose
  validation MAE is the mean |label| (1.217); without the weight decay the audio-vision products alone grow slowly
  (prediction spread 3e-2 after two epochs, validation MAE 1.20 after ten). With each sample's words moved to the
  end of its 50 steps (the authors' front padding) it learns from the first epoch.
- Once fed alike, theirs and ours agree within the spread between seeds, and both stay at the text-only level
  (validation MAE 0.82-0.83, a little above the text probe's): at the authors' MOSI size and optimisation LMF does
  not learn the cross-modal part of this cache's label, which TFN (validation MAE about 0.54) does. That is the
  authors' model on these data, not ours: their own code gives the same. Neither the weight decay (ours without it,
  seed 0: validation MAE 0.790, table) nor the rank (ours at rank 16, seed 0: 0.838 at epoch 9 of 17) takes it off
  that level. What remains, untested, is the form of the prediction: the fusion itself, a sum of products of affine
  maps of the three representations with no network after it, where TFN has two ReLU layers after its tensor.
- What still differs, term by term: (a) λ and b are trained here (below), not in MMSA (not isolated);
  (b) audio and vision averaged over the real words (ours) or over all 50 steps (MMSA and the authors): MMSA's
  LMF fed the real-word mean lands at the same level (table); (c) the words enter our LSTM from its zero state,
  theirs from the state left by 50 - n zero steps; (d) early stopping and the checkpoint follow our validation
  MAE, MMSA's its validation loss (the mean of its batch L1s); (e) the data order and dropout masks.

Where ours differs from the authors' code, and why:
- The rank weights λ and the bias b are trained. The authors' optimiser (their repository's and MMSA's trainer)
  is given the factors and the sub-networks only, so λ stays at its random initialisation and b at 0, which looks
  like an oversight: the parameters are declared and initialised as trainable and the comment calls them more
  flexible. Ours learn with the factors at factor_lr. Our parameter count equals MMSA's parameter count (which
  includes them); r + 1 of those are not updated by MMSA.
- Padding, as in TFN (rider.model.baselines.tfn): audio and vision are averaged over the lengths[b] real words
  (MMSA over all 50 positions, padding included), and the language LSTM's state is read after the last real word
  (MMSA's after position 50, the last word's only where the words come last: Issue 21 above). Padding never reaches
  the prediction (tested); a sample of length 0 is finite.
- Dropout. The authors' config lists four dropouts; their text dropout is 0 for a one-layer LSTM (as in TFN), and
  their post-fusion dropout is declared but never applied in the forward pass. Only the audio and vision
  dropouts act, and only those are fields here.
- Optimiser. MMSA trains LMF with Adam (coupled L2 weight decay) at two rates, factor_lr for the factors and
  learning_rate for the sub-networks, until 8 epochs pass without a lower validation loss; our trainer's default
  is AdamW (decoupled weight decay), keeping the best validation checkpoint. A faithful run sets ``train``:
  lr 1e-3, batch_size 64, weight_decay 0.005, weight_decay_mode l2 and patience 8 (Issue 21 above). The two
  rates are kept: ``parameter_groups`` gives the fusion parameters factor_lr (from this config) and the rest the
  trainer's lr.
- Speed on the CPU (DESIGN §9: "LMF can slow 20x from denormal floats"). The cause lies in the language LSTM
  that LMF shares with TFN, and our padding fix removes it; rider.model.baselines.tfn records the measurement and where
  ``torch.set_flush_denormal`` would belong. Nothing here sets a process-wide flag.

Shapes: B batch, L words, Dt/Da/Dv input features, Ht LSTM width, To/Ha/Hv representation sizes, r rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn

from rider.config import ConfigSection
from rider.model.kind import ModelKind, check_input_widths
from rider.model.objective import TaskLoss, task_objective
from rider.model.subnetworks import FeatureSubNet, TextSubNet, with_one


@dataclass(frozen=True)
class LMFConfig(ConfigSection):
    """LMF's sizes; defaults = MMSA 2.2.1 config_regression.json, lmf.datasetParams.mosi (its hidden_dims list is
    [text, audio, vision])."""

    text_hidden: int = 128  # Ht: LSTM width of the language sub-network (hidden_dims[0])
    audio_hidden: int = 16  # Ha: width of the audio sub-network's three layers = size of z_a (hidden_dims[1])
    vision_hidden: int = 128  # Hv: width of the vision sub-network's three layers = size of z_v (hidden_dims[2])
    text_out: int = 64  # To: size of z_l; the authors' code fixes it to text_hidden // 2
    rank: int = 3  # r: rank-one terms of the fusion tensor (rank)
    audio_dropout: float = 0.3  # after the audio BatchNorm (dropouts[0])
    vision_dropout: float = 0.3  # after the vision BatchNorm (dropouts[1])
    factor_lr: float = 1e-3  # learning rate of the fusion parameters (factor_lr; the others take train.lr)
    # Inputs, set by the trainer from the cache: GloVe 300 (768 BERT-family), COVAREP 74, Facet 35; L = 50 words.
    text_dim: int = 300
    audio_dim: int = 74
    vision_dim: int = 35
    max_len: int = 50  # LMF takes any L (LSTM and mean); kept because every kind's config carries it

    def __post_init__(self):
        for name in ("text_hidden", "audio_hidden", "vision_hidden", "text_out", "rank", "text_dim", "audio_dim",
                     "vision_dim", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"LMFConfig: {name} = {getattr(self, name)} must be >= 1")
        for name in ("audio_dropout", "vision_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"LMFConfig: {name} = {getattr(self, name)} must be in [0, 1)")
        if self.factor_lr <= 0:
            raise ValueError(f"LMFConfig: factor_lr = {self.factor_lr} must be > 0")



def glorot_normal(rank: int, width: int) -> nn.Parameter:
    """An (r, width) factor drawn as the authors draw theirs: Glorot normal with the fans of their (r, width, 1)
    tensor (fan_in = width, fan_out = r)."""
    return nn.Parameter(torch.randn(rank, width) * math.sqrt(2.0 / (width + rank)))


class LMFOutput(NamedTuple):
    prediction: torch.Tensor  # (B,)
    text: torch.Tensor  # z_l (B, To)
    audio: torch.Tensor  # z_a (B, Ha)
    vision: torch.Tensor  # z_v (B, Hv)
    fusion: torch.Tensor  # the r rank-one terms Π_m (w_m^(i)·[z_m; 1]) (B, r)


class LMF(nn.Module):
    def __init__(self, cfg: LMFConfig):
        super().__init__()
        self.cfg = cfg
        self.text_subnet = TextSubNet(cfg.text_dim, cfg.text_hidden, cfg.text_out)
        self.audio_subnet = FeatureSubNet(cfg.audio_dim, cfg.audio_hidden, cfg.audio_dropout)
        self.vision_subnet = FeatureSubNet(cfg.vision_dim, cfg.vision_hidden, cfg.vision_dropout)
        # Modality-specific factors w_m^(1..r), one row per rank-one term, over [1; z_m].
        self.audio_factor = glorot_normal(cfg.rank, cfg.audio_hidden + 1)  # (r, Ha+1)
        self.vision_factor = glorot_normal(cfg.rank, cfg.vision_hidden + 1)  # (r, Hv+1)
        self.text_factor = glorot_normal(cfg.rank, cfg.text_out + 1)  # (r, To+1)
        # λ: Glorot normal of the authors' (1, r) matrix (fans 1 and r); b: zero.
        self.fusion_weights = nn.Parameter(torch.randn(cfg.rank) * math.sqrt(2.0 / (1 + cfg.rank)))  # (r,)
        self.fusion_bias = nn.Parameter(torch.zeros(1))  # (1,)

    def fusion_parameters(self) -> list[nn.Parameter]:
        return [self.audio_factor, self.vision_factor, self.text_factor, self.fusion_weights, self.fusion_bias]

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """The authors' two rates: factor_lr for the fusion, the trainer's lr for the sub-networks."""
        fusion = {id(p) for p in self.fusion_parameters()}
        rest = [p for p in self.parameters() if id(p) not in fusion]
        return [{"params": self.fusion_parameters(), "lr": self.cfg.factor_lr, "weight_decay": weight_decay},
                {"params": rest, "lr": lr, "weight_decay": weight_decay}]

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                lengths: torch.Tensor) -> LMFOutput:
        """text (B, L, Dt), audio (B, L, Da), vision (B, L, Dv), lengths (B,)."""
        check_input_widths("LMF", self.cfg, text=text, audio=audio, vision=vision)
        z_l = self.text_subnet(text, lengths)  # (B, To)
        z_a = self.audio_subnet(audio, lengths)  # (B, Ha)
        z_v = self.vision_subnet(vision, lengths)  # (B, Hv)
        prediction, terms = self.fuse(z_a, z_v, z_l)  # (B,), (B, r)
        return LMFOutput(prediction, z_l, z_a, z_v, terms)

    def fuse(self, z_a: torch.Tensor, z_v: torch.Tensor, z_l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-rank fusion (§3.2): the prediction (B,) and the r rank-one terms (B, r)."""
        # Each modality through its own factors: w_m^(i)·[z_m; 1] for i = 1..r.
        f_a = with_one(z_a) @ self.audio_factor.T  # (B, Ha+1) -> (B, r)
        f_v = with_one(z_v) @ self.vision_factor.T  # (B, Hv+1) -> (B, r)
        f_l = with_one(z_l) @ self.text_factor.T  # (B, To+1) -> (B, r)
        terms = f_a * f_v * f_l  # (B, r): the rank-one terms of W·Z
        return terms @ self.fusion_weights + self.fusion_bias, terms  # (B,): Σ_i λ_i term_i + b


# The authors' sizes (MMSA 2.2.1 config_regression.json, lmf.datasetParams); feature widths are set from the cache.
PAPER = {
    "mosi": LMFConfig(),
    "mosei": LMFConfig(text_hidden=128, audio_hidden=16, vision_hidden=128, text_out=64, rank=4, audio_dropout=0.2,
                       vision_dropout=0.2, factor_lr=1e-3),
}

KIND = ModelKind(name="lmf", config=LMFConfig, loss=TaskLoss, build=LMF, objective=task_objective, absent="zeros",
                 paper=PAPER, title="LMF")
