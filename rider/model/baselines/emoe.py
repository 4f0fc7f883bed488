"""EMOE (Fang, Huang, Wan, Su and Ye, CVPR 2025, "EMOE: Modality-Specific Enhanced Dynamic Emotion Experts"), a
baseline of the paper's Tables 1-2: a routed model, whose router gives every sample its own weights over three
modality-specific experts. Trained by the same trainer as every kind.

Per sample:
1. Mixture of Modality Experts. A router reads the raw, word-aligned features of all three modalities, flattened
   (L x (D_T + D_A + D_V)), through Linear -> L2 normalisation -> ReLU -> Linear(3), divides by a temperature
   and takes the softmax: the modality importance w (B, 3).
2. Each modality m is an expert: a bias-free temporal convolution (kernel k_m, no padding) to d channels, a
   1x1 convolution shared by all three modalities (the authors' ``encoder_c``), a self-attention Transformer
   (MulT's encoder: sqrt(d) scaling, sinusoidal positions, pre-norm layers, causal mask, final LayerNorm) read
   at one step -> h_m (B, d); a residual MLP h_m + W2 ReLU(W1 h_m) -> p_m and a linear output -> the unimodal
   prediction ŷ_m.
3. Fusion ("sum", the authors' setting): c = Σ_m w_m h_m, the same residual MLP -> p_c -> ŷ.
Loss (the authors' trainer): L = L1(ŷ) + (1/3) Σ_m L1(ŷ_m) + 0.1 (L_ent + 0.1 L_imp) + 0.1 L_ud, with
- L_ent: M Σ_m w_m log w_m, averaged over the batch (a negative entropy: minimising it balances the weights);
- L_imp: the mean squared distance of w from a target built from each expert's own squared error
  e_m = (ŷ_m - y)^2: target_m = (1 / (e_m + 0.1)) / Σ_k 1 / (e_k + 0.1), detached (the better a modality predicts
  this sample, the more weight it should get);
- L_ud, unimodal distillation: the mean squared difference of softmax(p_c) and softmax(Σ_m w_m p_m), the latter
  detached (the fused representation learns the weighted unimodal ones).
The paper's equation numbers were not at hand while writing this file: the lines name the quantities.

Reference code: the authors' repository (github.com/fuyyyyy/EMOE, commit be3da9b "Add files via upload", read from
its fork Wendy888888888/EMOE, whose model, trainer and config files are the authors' unchanged):
``trains/singleTask/model/emoe.py``, ``model/router.py``, ``trains/singleTask/EMOE.py``, ``trains/utils/functions.py``,
``config/config.json`` (its CMU-MOSI values are the defaults here, MOSEI's in ``PAPER``). Written from reading them,
not copied.

Issue 21: ours against the authors' own EMOE on the same cache
The authors' model (``trains/singleTask/model/emoe.py``, ``router.py``) and trainer (``trains/singleTask/EMOE.py``:
their five loss terms as written there) imported unchanged on the CPU, without BERT (the 300-d GloVe features
as ``text``, ``use_bert`` off), on the default synthetic MOSI cache read exactly as our loader reads it, at the
size of our default run (d 16, 2 heads, 1 layer, kernels 5, dropouts text 0.2 / embed 0.1 / output 0.2 / attention
0.1, 0.1 (audio), 0 (vision), relu and residual 0, temperature 0.1, the router's hidden width 16 instead of its
input width // 8; 378,291 parameters against our 372,423, the difference being exactly their unused
``encoder_l/a/v`` and ``transfer_a_ali/v_ali``). Their optimisation otherwise: Adam lr 1e-4 (no weight decay, no
clipping: the config's ``weight_decay`` and ``grad_clip`` are never read), batch 16 with the gradients of 10
batches summed per step and an epoch's last incomplete group dropped, ReduceLROnPlateau (factor 0.5, patience 5)
and early stopping after 10 epochs on the validation loss (the mean of the batch L1s), capped at 30 epochs.
Their model reads each expert at its last step, 50, with no key-padding mask, so it was fed as the authors'
aligned data lays a segment out (CMU SDK padding: the zeros before the words): each sample's text, audio and
vision rolled together so that the words end at step 50 (the router reads that layout, flattened). Ours at the
same size, trained once with the same protocol (``train``: epochs 30, patience 10, lr 1e-4, batch_size 16,
accumulate 10, accumulate_reduction sum, weight_decay 0, grad_clip 0, schedule plateau, plateau_patience 5,
plateau_factor 0.5) and once with the default run's (epochs 30, patience 8, lr 5e-4, batch 32, AdamW weight_decay
1e-3); theirs also with the default run's as far as their trainer allows (Adam lr 5e-4 without decay, batch 32,
one batch per step, early stopping after 8, the plateau schedule off). Lowest validation MAE, the test Acc-2
(labels != 0) / MAE / Corr at that epoch (the mean over seeds 0-2, ± sd), CPU seconds per training epoch, one
thread on a 2-core machine shared with another job:

    (MAE and Corr: means)                        best epoch (of)          val MAE        test Acc-2  MAE    Corr   CPU s
    the authors' optimisation
      authors' EMOE, their trainer               19, 30, 21 (28, 30, 30)  0.830 ± 0.039  75.3 ± 1.6  0.871  0.693  1.6
        at their checkpoint (lowest val. loss)   18, 30, 21                              75.3 ± 1.6  0.870
      ours                                       23, 30, 28 (30, 30, 30)  0.861 ± 0.043  76.0 ± 1.2  0.863  0.696  0.9
    the default run's optimisation
      authors' EMOE, their trainer               3, 11, 8 (16, 16, 16)    0.814 ± 0.029  76.6 ± 1.0  0.831  0.727  1.5
      ours (the default run's configuration)     13, 11, 5 (21, 19, 13)   0.768 ± 0.008  76.5 ± 1.0  0.826  0.738  0.8

For scale: a text-only probe reaches validation MAE about 0.78 (test Acc-2 76.8 %), a constant about 1.2, and
MulT at the same d 16 0.49-0.52 (config.yaml). Neither EMOE leaves the text-only level, under either
protocol: the authors' code does no better than ours, so there is no differing term to look for here (unlike
MulT, TFN and LMF). Single runs (seed 0 unless said), the authors' optimisation unless said:
- Not the cap. Uncapped (100 epochs, their early stopping), seed 1: theirs stops at 60, best validation MAE
  0.816 at epoch 50 (test 76.5 / 0.879 / 0.685), ours at 55, 0.826 at epoch 45 (75.8 / 0.851 / 0.702). At the
  authors' lr 1e-4 with 8 steps an epoch both are still descending at epoch 30 (best epochs 30 and 28-30 above),
  but only towards the text-only level.
- Not the rate: lr 2e-3, one batch per step (MulT's recipe): theirs 0.817 (epoch 8 of 18, 75.8 / 0.865 / 0.709),
  ours 0.767 (epoch 22 of 30, 77.5 / 0.817 / 0.736).
- Not the feed: theirs fed the cache as it is (the words first, step 50 padding) reached 0.787 (epoch 18 of
  28, 77.2 / 0.831 / 0.738) against 0.786 front-padded. Unlike an LSTM's final state, the last step of a causal self-attention encoder attends to every real step wherever the words lie.
- Not the auxiliary losses: ours with the task L1 alone (unimodal, entropy, importance and distillation weights
  0, the default run's optimisation) 0.804 (epoch 2 of 10, 75.5 / 0.833 / 0.732).
  Our reading, not measured further: each expert sees one modality only and the fusion is a weighted sum of
  their representations, so a cross-modal (synergistic) part of the label can only come from the two-layer
  residual MLP on that sum and from the router; at this size neither finds it. The authors' routing weights end
  spread over all three (validation means (l, v, a) = (0.46, 0.33, 0.20) and (0.38, 0.41, 0.21) at the last
  epoch, seeds 0 and 1; (0.38, 0.32, 0.30) and (0.34, 0.32, 0.34) after 16 epochs at lr 5e-4), as the entropy
  term asks.
- Time: theirs 1.5-1.6 s an epoch against our 0.8-0.9 s; their fusion and importance target loop over the
  samples of a batch in Python.
What still differs, term by term (none measured to matter beyond the above): (a) the read-out: theirs step 50
of the front-padded layout, whose convolution window holds the last five words, its attention over every step
(padding included, no mask); ours the window starting at the last word (that word and k - 1 appended zeros), the
padded keys masked; (b) positions: theirs give a step whose first feature is exactly 0 no position and number
the others by their absolute step, so a word's position depends on the segment's length; ours number the steps
from the first word; (c) the router's input: the same features in another layout (front-padded, (l, v, a)
against words first, (T, A, V)); (d) early stopping and the plateau schedule on the validation loss, the mean of
the batch L1s in which the last batch of 5 samples weighs 1/15 at batch 16 (theirs), against the validation
MAE (ours);
(e) the data order, initialisation and dropout masks (other random streams). The losses are the same
quantities: unimodal L1s averaged over three, 0.1 L_ent, 0.01 L_imp with the 1 / (e + 0.1) target detached,
0.1 L_ud with the weighted unimodal projection detached.

Where ours differs, and why:
- Text. The authors fine-tune BERT (``use_bert``, ``use_finetune``); here the text is the cached, frozen word
  features (GloVe 300, or frozen BERT-family features of 768) fed to the text convolution and to the router, as
  the authors' code feeds BERT's 768-d output to both. Nothing is fine-tuned; the count (tests) leaves BERT out.
- Unused parameters left out: the authors build ``encoder_l``, ``encoder_a``, ``encoder_v`` (3 x d^2) that forward
  never calls, and ``transfer_a_ali`` / ``transfer_v_ali`` (Linear(L, L) each) used only on unaligned data (their
  config reads the aligned data, as we do). They never train; the count test asserts the exact difference.
- Read-out and padding (DESIGN §9), as in rider.model.baselines.mult: the authors read each expert at its last time step,
  which on our padded word-aligned data is padding. Ours zeroes the inputs beyond ``lengths`` (so neither the
  router nor a convolution window sees anything there), appends k_m - 1 zero steps so that every word starts a
  window (the authors' unpadded convolution has L - k_m + 1 steps), masks padded keys in the attention, keeps
  the causal mask, and reads step ``lengths - 1``, the window starting at the last word, which has seen every
  real step; an empty sample reads zeros. Nothing at a padded position reaches the prediction or the routing,
  and a sample's output depends neither on its batch nor on how far it is padded (tested). The encoders are cut
  to the steps a real word can reach; the router reads all ``max_len`` steps (shorter inputs zero-padded).
- Order of the modalities: the authors concatenate the router's input as (text, vision, audio) and order w as
  (l, v, a); ours is (T, A, V) everywhere. A relabelling of the router's first layer's columns and last layer's
  rows: the same function class and count.
- ``router_hidden``: the authors' router hidden width is its input width // 8 (``None`` here, the default). At
  L = 50 and 768-d text that layer alone has 196 M parameters (MOSI); the CPU-sized default run sets a small
  width. The authors' ``fusion_method: concat`` option is not implemented (their configuration uses ``sum``).
- Absent modality (App. C.2): zeroed features (``absent="zeros"``). EMOE has no missing-modality mechanism of
  its own: its router reads the features themselves, so a zeroed modality reaches the importance weighting as
  it would in the authors' code; a presence-masked renormalisation of w would be a mechanism they never had.
- Optimisation (the trainer's, configs/paper.yaml): the authors use Adam (lr 1e-4, no weight decay passed,
  no gradient clipping in their trainer although the config names ``grad_clip``), batch 16 with gradients
  accumulated over 10 batches (``update_epochs``: batch 160 here), ReduceLROnPlateau and early stopping
  (patience 10) on the validation L1 loss. Ours: AdamW, at most ``epochs`` with early stopping after ``patience``
  epochs without a lower validation MAE (the default run: 30 and 8), the best-validation checkpoint.

Shapes: B batch, L words, M = 3 modalities (= E experts, order T, A, V), T_m steps after modality m's
convolution, D = d_model, R = the router's input width L (D_T + D_A + D_V), H its hidden width.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from rider.config import ConfigSection
from rider.model.kind import MODALITY_NAMES, ModelKind, check_input_widths
from rider.model.crossmodal import Transformer
from rider.model.objective import Objective, PureObjective, task_loss
from rider.model.padding import needed_steps

EXPERT_NAMES = ("T", "A", "V")  # one expert per modality, in MODALITY_NAMES order


@dataclass(frozen=True)
class EMOEConfig(ConfigSection):
    """The network. Defaults: the authors' config/config.json, emoe.datasetParams.mosi (MOSEI in ``PAPER``).
    ``heads``, ``embed_dropout``, ``relu_dropout``, ``res_dropout``, ``position_embedding`` and ``max_len`` are
    read by the MulT encoder (rider.model.crossmodal.Transformer) under the same names."""

    d_model: int = 256  # dst_feature_dim_nheads[0]: width d of every expert (MOSI and MOSEI)
    heads: int = 8  # dst_feature_dim_nheads[1]
    layers: int = 4  # nlevels: layers of each expert's self-attention encoder
    kernel_text: int = 5  # conv1d_kernel_size_l (MOSEI 5)
    kernel_audio: int = 5  # conv1d_kernel_size_a (MOSEI 1)
    kernel_vision: int = 5  # conv1d_kernel_size_v (MOSEI 3)
    text_dropout: float = 0.5  # on the text features before the convolution (MOSEI 0.3)
    embed_dropout: float = 0.2  # on each encoder's embedded input (MOSEI 0.0)
    attn_dropout: float = 0.3  # the text expert's attention (MOSEI 0.4)
    attn_dropout_audio: float = 0.2  # attn_dropout_a (MOSEI 0.0)
    attn_dropout_vision: float = 0.0  # attn_dropout_v (MOSEI 0.0)
    relu_dropout: float = 0.0  # inside each encoder's feed-forward
    res_dropout: float = 0.0  # on each encoder sub-layer's output
    output_dropout: float = 0.5  # inside the residual MLPs of the experts and of the fusion
    temperature: float = 0.1  # the router's softmax temperature (commonParams)
    router_hidden: int | None = None  # None = the router's input width // 8, the authors'; set for the CPU run
    causal: bool = True  # attn_mask: step i attends to steps <= i
    position_embedding: bool = True  # the authors' encoder always adds sinusoidal positions
    # Inputs (set from the cache by the trainer): GloVe text (768 for BERT-family features), COVAREP audio,
    # Facet vision; L words, which fixes the router's input width.
    text_dim: int = 300
    audio_dim: int = 74
    vision_dim: int = 35
    max_len: int = 50

    def __post_init__(self):
        for name in ("d_model", "heads", "layers", "kernel_text", "kernel_audio", "kernel_vision", "text_dim",
                     "audio_dim", "vision_dim", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"EMOEConfig: {name} = {value!r} must be an integer >= 1")
        if self.router_hidden is not None and (not isinstance(self.router_hidden, int)
                                               or isinstance(self.router_hidden, bool) or self.router_hidden < 1):
            raise ValueError(f"EMOEConfig: router_hidden = {self.router_hidden!r} must be null (input width // 8) "
                             "or an integer >= 1")
        if self.d_model % self.heads:
            raise ValueError(f"EMOEConfig: d_model = {self.d_model} is not divisible by heads = {self.heads}")
        for name in ("kernel_text", "kernel_audio", "kernel_vision"):
            if getattr(self, name) > self.max_len:
                raise ValueError(f"EMOEConfig: {name} = {getattr(self, name)} is longer than max_len = "
                                 f"{self.max_len}: the unpadded convolution would leave no step")
        for name in ("text_dropout", "embed_dropout", "attn_dropout", "attn_dropout_audio", "attn_dropout_vision",
                     "relu_dropout", "res_dropout", "output_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"EMOEConfig: {name} = {getattr(self, name)} must be in [0, 1)")
        if not self.temperature > 0:
            raise ValueError(f"EMOEConfig: temperature = {self.temperature} must be > 0")
        if self.router_width() // 8 < 1 and self.router_hidden is None:
            raise ValueError("EMOEConfig: the router's input is narrower than 8: set router_hidden")

    def router_width(self) -> int:
        """R: the router reads every word's features of the three modalities, flattened."""
        return self.max_len * (self.text_dim + self.audio_dim + self.vision_dim)

    def router_hidden_width(self) -> int:
        return self.router_width() // 8 if self.router_hidden is None else self.router_hidden

    def kernel(self, modality: str) -> int:
        return getattr(self, f"kernel_{modality}")

    def attention_dropout(self, modality: str) -> float:
        return {"text": self.attn_dropout, "audio": self.attn_dropout_audio,
                "vision": self.attn_dropout_vision}[modality]



@dataclass(frozen=True)
class EMOELoss(ConfigSection):
    """L = L_task + unimodal (1/3) Σ L1(ŷ_m) + entropy L_ent + importance L_imp + distill L_ud. Defaults: the
    authors' trainer (the same for MOSI and MOSEI), where 0.1 (L_ent + 0.1 L_imp) gives L_imp 0.01."""

    unimodal_weight: float = 1.0  # the unimodal L1 terms, averaged over the three experts
    entropy_weight: float = 0.1  # L_ent
    importance_weight: float = 0.01  # L_imp (0.1 x 0.1)
    distill_weight: float = 0.1  # L_ud
    importance_offset: float = 0.1  # the 0.1 in 1 / (e_m + 0.1): bounds a perfect expert's share

    def __post_init__(self):
        for name in ("unimodal_weight", "entropy_weight", "importance_weight", "distill_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"EMOELoss: {name} = {getattr(self, name)} must be >= 0")
        if not self.importance_offset > 0:
            raise ValueError(f"EMOELoss: importance_offset = {self.importance_offset} must be > 0")

    def coefficients(self) -> dict[str, float]:
        return {"task": 1.0, "unimodal": self.unimodal_weight, "entropy": self.entropy_weight,
                "importance": self.importance_weight, "distill": self.distill_weight}



class EMOEOutput(NamedTuple):
    prediction: torch.Tensor  # ŷ from the fused representation, (B,)
    routing: torch.Tensor  # w, the modality importance, (B, E)
    expert_outputs: torch.Tensor  # ŷ_m of each expert, one view (the full inputs), (1, B, E)
    fused: torch.Tensor  # p_c, (B, D)
    unimodal: torch.Tensor  # p_m, (E, B, D)


class Router(nn.Module):
    """The authors' router: softmax(W2 ReLU(normalize(W1 x)) / t) over the experts."""

    def __init__(self, width: int, hidden: int, experts: int, temperature: float):
        super().__init__()
        self.l1, self.l2 = nn.Linear(width, hidden), nn.Linear(hidden, experts)
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, R) -> w (B, E)."""
        h = F.relu(F.normalize(self.l1(x), p=2, dim=1))  # (B, H): unit length, then ReLU
        return torch.softmax(self.l2(h) / self.temperature, dim=1)  # (B, E)


class ResidualHead(nn.Module):
    """p = h + W2 dropout(ReLU(W1 h)); ŷ = w^T p + b (the authors' proj1/proj2/out_layer)."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.proj1, self.proj2, self.out = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, 1)
        self.dropout = dropout

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h (B, D) -> (p (B, D), ŷ (B,))."""
        p = h + self.proj2(F.dropout(F.relu(self.proj1(h)), self.dropout, self.training))  # (B, D)
        return p, self.out(p).squeeze(-1)


def self_attention_mask(steps: int, real: torch.Tensor, causal: bool, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, T, T) additive mask, 0 where query i may see key j: j is a real step (the first step for an empty
    sample, so no softmax row is empty) and, with ``causal``, j <= i; -inf elsewhere."""
    key = torch.arange(steps, device=real.device)
    allowed = (key[None, :] < real.clamp(min=1)[:, None])[:, None, None, :]  # (B, 1, 1, T)
    if causal:
        allowed = allowed & (key[None, :] <= key[:, None])  # (B, 1, T, T)
    return torch.zeros(allowed.shape, dtype=dtype, device=real.device).masked_fill(~allowed, float("-inf"))


class EMOE(nn.Module):
    def __init__(self, cfg: EMOEConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.d_model
        self.router = Router(cfg.router_width(), cfg.router_hidden_width(), len(EXPERT_NAMES), cfg.temperature)
        # Bias-free temporal convolutions: a window of zeros (padding) stays exactly zero.
        self.conv = nn.ModuleDict({m: nn.Conv1d(getattr(cfg, f"{m}_dim"), D, cfg.kernel(m), bias=False)
                                   for m in MODALITY_NAMES})
        self.shared = nn.Linear(D, D, bias=False)  # the authors' encoder_c, a 1x1 convolution shared by all
        # The encoders see up to max_len + widest kernel - 1 steps (every word starts a window): positions for all.
        steps = dataclasses.replace(cfg, max_len=cfg.max_len + max(cfg.kernel(m) for m in MODALITY_NAMES) - 1)
        self.encoders = nn.ModuleDict({m: Transformer(D, cfg.layers, steps, cfg.attention_dropout(m))
                                       for m in MODALITY_NAMES})
        self.heads = nn.ModuleDict({m: ResidualHead(D, cfg.output_dropout) for m in MODALITY_NAMES})
        self.fusion_head = ResidualHead(D, cfg.output_dropout)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                lengths: torch.Tensor) -> EMOEOutput:
        """text (B, L, Dt), audio (B, L, Da), vision (B, L, Dv), lengths (B,) real words."""
        cfg = self.cfg
        check_input_widths("EMOE", cfg, text=text, audio=audio, vision=vision)
        B, L, _ = text.shape
        if L > cfg.max_len:
            raise ValueError(f"EMOE: sequences of {L} words, the config has max_len = {cfg.max_len}")
        words = (torch.arange(L, device=text.device)[None, :] < lengths[:, None])[..., None]  # (B, L, 1)
        inputs = {"text": text * words, "audio": audio * words, "vision": vision * words}  # zero beyond lengths

        # 1. Modality importance from the raw features of every word, padded to max_len steps.
        flat = F.pad(torch.cat(list(inputs.values()), dim=-1), (0, 0, 0, cfg.max_len - L)).flatten(1)  # (B, R)
        w = self.router(flat)  # (B, E)

        # 2. The experts. widest - 1 zero steps after the last word let every real word start a window; the
        # steps no real word reaches are cut (not under torch.compile: a data-dependent length recompiles).
        widest = max(cfg.kernel(m) for m in MODALITY_NAMES)
        inputs = {m: F.pad(x, (0, 0, 0, widest - 1)) for m, x in inputs.items()}  # (B, L + widest - 1, D_m)
        steps = needed_steps(lengths, L + widest - 1, widest - 1)
        inputs = {m: x[:, :steps] for m, x in inputs.items()}
        inputs["text"] = F.dropout(inputs["text"], cfg.text_dropout, self.training)
        hidden, projected, unimodal = [], [], []
        for m in MODALITY_NAMES:
            z = self.shared(self.conv[m](inputs[m].transpose(1, 2)).transpose(1, 2))  # (B, T_m, D)
            T = z.shape[1]
            real = lengths.clamp(max=T)  # (B,) = lengths: step i is the window starting at word i
            h = self.encoders[m](z, None, self_attention_mask(T, real, cfg.causal, z.dtype))  # (B, T_m, D)
            last = (real - 1).clamp(min=0)  # (B,) the last real step; an empty sample reads zeros
            h = h[torch.arange(B, device=h.device), last] * (real > 0)[:, None]  # h_m, (B, D)
            p, y_m = self.heads[m](h)  # (B, D), (B,)
            hidden.append(h)
            projected.append(p)
            unimodal.append(y_m)
        hidden_stack = torch.stack(hidden, dim=1)  # (B, E, D)

        # 3. Fusion: the importance-weighted sum of the experts' representations.
        fused = (w[..., None] * hidden_stack).sum(dim=1)  # c, (B, D)
        p_c, prediction = self.fusion_head(fused)  # (B, D), (B,)
        return EMOEOutput(prediction, w, torch.stack(unimodal, dim=1)[None], p_c, torch.stack(projected))


def unimodal_loss(expert_outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1/E) Σ_m L1(ŷ_m, y): expert_outputs (1, B, E), y (B,)."""
    return (expert_outputs[0] - y[:, None]).abs().mean(dim=0).mean()


def entropy_balance(w: torch.Tensor) -> torch.Tensor:
    """L_ent = mean_b E Σ_m w_m log w_m (w clamped at 1e-9, as the authors): a negative entropy times E. w (B, E)."""
    w = w.clamp(min=1e-9)
    return (w.shape[1] * (w * w.log()).sum(dim=1)).mean()


def importance_target(expert_outputs: torch.Tensor, y: torch.Tensor, offset: float) -> torch.Tensor:
    """The weights the router should give: target_m ∝ 1 / ((ŷ_m - y)^2 + offset), normalised over the experts,
    detached. expert_outputs (1, B, E), y (B,) -> (B, E)."""
    inverse = 1.0 / ((expert_outputs[0].detach() - y[:, None]).pow(2) + offset)  # (B, E)
    return inverse / inverse.sum(dim=1, keepdim=True)


def importance_loss(w: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_imp: mean over the batch and the experts of (target - w)^2. (B, E) each."""
    return (target - w).pow(2).mean()


def unimodal_distillation(fused: torch.Tensor, unimodal: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """L_ud: mean over the batch and D of (softmax(p_c) - softmax(Σ_m w_m p_m))^2, the target detached.
    fused (B, D), unimodal (E, B, D), w (B, E)."""
    target = (w.T[..., None] * unimodal).sum(dim=0).detach()  # (B, D)
    return (fused.softmax(dim=-1) - target.softmax(dim=-1)).pow(2).mean()


TERMS = ("task", "unimodal", "entropy", "importance", "distill")


def emoe_objective(config: EMOEConfig, loss: EMOELoss, train_size: int = 0) -> Objective:
    """The five unweighted terms; ``EMOELoss.coefficients`` weights them."""
    def terms(output: EMOEOutput, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "task": task_loss(output.prediction, y),  # Eq. 2 (the authors: L1 as well)
            "unimodal": unimodal_loss(output.expert_outputs, y),
            "entropy": entropy_balance(output.routing),
            "importance": importance_loss(output.routing,
                                          importance_target(output.expert_outputs, y, loss.importance_offset)),
            "distill": unimodal_distillation(output.fused, output.unimodal, output.routing),
        }
    return PureObjective(TERMS, terms)


# The authors' sizes (config/config.json, emoe.datasetParams); the input widths come from the data.
PAPER = {
    "mosi": EMOEConfig(),
    "mosei": EMOEConfig(kernel_audio=1, kernel_vision=3, text_dropout=0.3, embed_dropout=0.0, attn_dropout=0.4,
                        attn_dropout_audio=0.0),
}

KIND = ModelKind(name="emoe", config=EMOEConfig, loss=EMOELoss, build=EMOE, objective=emoe_objective,
                 absent="zeros", experts=lambda cfg: EXPERT_NAMES, paper=PAPER, title="EMOE",
                 note="the original fine-tunes BERT end to end; here its experts and router read the cached frozen "
                      "word features; each expert is read at its last real word, not at the padded last step")
