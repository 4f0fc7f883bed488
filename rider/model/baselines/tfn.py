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

Issue 21: ours against MMSA 2.2.1's own TFN on the same cache
MMSA 2.2.1's TFN model and trainer with its MOSI config (Adam, lr 1e-3, batch 32, no weight decay, early stopping
after 8 epochs without a lower validation loss; capped here at 40 epochs) on the default synthetic MOSI cache,
read exactly as our loader reads it (train-std scaled), beside ours at the same size (TFNConfig(), the authors'
MOSI size: 9,261,723 parameters in both) and protocol (``train``: epochs 40, lr 1e-3, batch_size 32,
weight_decay 0, patience 8). Test Acc-2 (labels != 0) / MAE / Corr at each run's lowest validation MAE, mean ± sd
over seeds 0-2; CPU seconds per training epoch, one thread (the other core busy with other jobs):

    (Corr and MAE: means)                          best epoch   val MAE        test Acc-2   MAE    Corr   CPU s
    MMSA 2.2.1 TFN, the text as the cache has it   16 (of 23)   1.152 (s0)     62.0         1.083  0.381  8
    MMSA 2.2.1 TFN, the text front-padded          35, 27, 23   0.548 ± 0.043  84.6 ± 0.9   0.567  0.852  8.3
      at MMSA's own checkpoint (lowest validation loss: epochs 28, 20, 24)                   86.0 ± 1.9   0.575  0.849
    ours                                           27, 20, 24   0.541 ± 0.041  85.3 ± 0.9   0.568  0.852  8.1

For scale: a text-only probe reaches validation MAE about 0.78 (test Acc-2 76.8 %), a constant about 1.2. Both
leave the text-only level between epochs 5 and 12 and stop after 28-36 epochs; once fed alike they agree within
the spread between seeds on every metric.
- Why MMSA's TFN did not learn at first: the feed, not its model or trainer. Its TextSubNet reads the LSTM's final
  hidden state, after position 50. Our cache keeps the words first and the zeros after (6-20 words of L = 50), so
  that state comes after 30-44 all-zero inputs, by which the LSTM has forgotten the sentence: the text path carried
  next to nothing, and the little that was learned (Corr 0.38) came from the averaged audio and vision. The
  authors' own preprocessing (the CMU-MultimodalDataSDK utilities of their PyTorch port: ``pad`` puts the zeros
  before the words and, for longer segments, keeps the last max_len) ends every sequence on its last word, so the
  comparison feeds MMSA each sample's words moved to the end of its 50 steps, audio and vision averaged as MMSA
  averages them (over all 50 steps). MMSA's own MOSI files hold 768-d BERT token features whose mask has its ones
  first (its data_loader takes a text length as the argmin of the mask), i.e. padded at the end too; whether their
  padded rows are zeros or BERT's outputs at [PAD] positions (which attend to the sentence) could not be checked
  here, so how MMSA's published TFN reads its sentences is open. The driver's CPU patches (outputs kept for the
  epoch's metrics detached, denormals flushed) do not touch TFN's computation.
- What still differs, term by term: (a) audio and vision averaged over the real words (ours) or over all 50 steps,
  padding included (MMSA and the authors), which shrinks a short segment's mean by n/50 before the BatchNorm.
  MMSA's TFN fed the real-word mean (seed 0) reached validation MAE 0.554 (epoch 33 of 40, the cap), test 86.6 /
  0.526 / 0.870, against 0.535 and 85.7 / 0.557 / 0.855 with its own mean: no effect beyond the spread between
  seeds; (b) the words enter our LSTM from its zero state, theirs from the state left by 50 - n zero steps, which
  depends on the length; (c) early stopping and the checkpoint follow our validation MAE, MMSA's its validation
  loss, the mean of its batch L1s, in which the last batch (5 of the 229 validation samples) weighs 1/8: its
  checkpoint lay 1-7 epochs from the lowest-MAE one; (d) the data order and dropout masks (other random streams).

Where ours differs from the authors' code, and why:
- Padding. MMSA averages audio and vision over all 50 positions, padding included (its data loader,
  ``need_normalized``), so a short segment's mean is shrunk towards 0 by its length; we average over the
  ``lengths[b]`` real words only. MMSA's language LSTM keeps its state after position 50, the last word's only
  where the words come last (the authors' front padding, Issue 21 above); we keep the state after the last real
  word (read from the LSTM's outputs at lengths−1: the same as a packed sequence, without packing, so it also runs
  under torch.compile). Padding never reaches our prediction (tested). A sample of length 0 gets z_a, z_v from an
  all-zero mean and z_l from the LSTM's zero initial state: finite, and the same for every empty sample.
- Text dropout. The authors' config lists a text dropout (dropouts[2]), but their TextSubNet sets it to 0 for a
  one-layer LSTM, so it is never applied; we leave the unused knob out.
- The paper's language sub-network puts fully connected layers after the LSTM; the authors' PyTorch port and
  MMSA take the final hidden state through one Linear. We follow the code, whose sizes MMSA's published numbers
  and our parameter counts come from.
- Optimiser. MMSA trains TFN with Adam (no weight decay) until 8 epochs pass without a lower validation loss;
  our trainer's default is AdamW with the dataset's train settings, keeping the best validation checkpoint. A
  faithful run sets ``train``: lr 1e-3, batch_size 32, weight_decay 0 and patience 8 (Issue 21 above).
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
