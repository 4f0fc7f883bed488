"""MulT, the Multimodal Transformer (Tsai et al., ACL 2019, "Multimodal Transformer for Unaligned Multimodal
Language Sequences", arXiv 1906.00295, whose equation numbers we cite), a baseline of the paper's Table 1.

Read against the authors' code (github.com/yaohungt/Multimodal-Transformer, ``src/models.py`` and
``modules/transformer.py``) and its packaging in MMSA 2.2.1 (``MMSA/models/singleTask/MULT.py``, whose
``config_regression.json`` gives the sizes we use as defaults). The network, per sample:

1. temporal convolutions (§3.2, Eq. 2): a bias-free Conv1d per modality, kernel k_m, no padding, projects
   each stream to d channels; T_m = L - k_m + 1 steps remain;
2. positional embedding (Eq. 3): sqrt(d) * X + sinusoidal PE, then embedding dropout;
3. six crossmodal transformers (Eqs. 1, 4), one per direction source -> target (A->L, V->L, L->A, V->A, L->V,
   A->V): pre-norm layers whose queries come from the target stream and whose keys and values are the
   (layer-normed) embedded source stream, each followed by a ReLU feed-forward of width 4d;
4. per target, the two streams that reach it concatenated (2d) and passed through a self-attention
   transformer (§3.3), read out at one time step;
5. the three read-outs concatenated (6d), a residual two-layer MLP and a linear output (§3.3).
It is trained on the task loss alone (MMSA's regression setting: L1, Eq. 2 of RIDER-MoE). The text is the
cached word features (GloVe, or frozen BERT-family features) fed straight to the convolution, as MMSA's MulT
does by default (``use_bert`` false): nothing here is fine-tuned.

Checked once against MMSA 2.2.1 itself (in a scratch environment; MMSA is no dependency): with its weights
copied in, ``position_embedding`` off and every sample full-length (where the two read-outs and masks
coincide), ours gives its outputs to 3e-7 at both published sizes, MOSEI's unequal kernels included.

Where ours differs from the authors' code, and why
- Read-out and padding (DESIGN §9). The authors read every target stream at its last time step. Their code
  masks attention causally (``attn_mask``: step i sees source steps <= i + |T_source - T_target|), so the last
  step is the one that has seen the whole sequence; on our word-aligned data padded to L = 50, with 6-20 real
  words, that last step is padding. Ours reads the last *real* step, ``min(lengths, T_m) - 1`` (the
  convolution shortens each stream by k_m - 1, and a real word near the end still reaches step T_m - 1), keeps
  the causal mask (so that step has seen every real step before it), and masks padded keys in every attention.
  The inputs are zeroed beyond ``lengths`` before the convolutions, so a window that reaches past the last word
  sees zeros, as a convolution over the real words alone with zero padding would. Together: nothing at a padded
  position reaches the prediction (tested), and the parameter count is unchanged.
- A sample of length 0 attends over its first (all-zero) step, which keeps the softmax finite, and reads out a
  zero vector: its prediction is the bias path of the output MLP.
- Only the steps that can matter are computed: each batch is cut to ``max(lengths) + max(k_m) - 1`` steps
  (never below one window). Every real step sees exactly the same inputs, masks and positions as with the full
  L steps, so a sample's prediction does not depend on the batch it is in (tested). On the synthetic 6-20-word
  data it about halves a CPU training step. Skipped under ``torch.compile``, where a data-dependent length
  would recompile each batch (the compiled, uncut graph gives the same predictions).
- Positional embeddings: the authors' code and the paper add them (Eq. 3); MMSA 2.2.1 builds its encoders
  with ``position_embedding=False`` and so has none. We follow the paper (``position_embedding``). The
  authors number positions from 1 and give a step whose first feature is exactly 0 the zero embedding (they
  take it for padding); ours numbers every step 1..T and masks padding instead.
- The convolution is always applied. MMSA skips it where a feature width equals d (text 30/50 never does here).
- The self-attention transformers have their own depth (``self_layers``); the authors' code builds them with
  ``max(nlevels, 3)`` layers, which is 4 at both published sizes (the defaults).
- Dropout rates as in the authors' ``get_network``: attention over a source uses that source's rate (text
  ``attn_dropout``, audio ``attn_dropout_audio``, vision ``attn_dropout_vision``); self-attention uses
  ``attn_dropout``. Keys and values get separate embedding-dropout masks, as theirs do.
- Training (not the network): MMSA trains MulT with Adam, lr 2e-3, batch 16 with gradients accumulated over
  8 batches (``update_epochs``), element-wise gradient clipping at 0.6 and ReduceLROnPlateau; its
  ``weight_decay`` is never passed to the optimiser. Our one trainer uses AdamW, norm clipping (``grad_clip``)
  and the best-validation checkpoint; the paper configuration sets lr, batch size and clipping from theirs.

Shapes: B batch, L words, T_m steps of modality m after its convolution, D = d_model, 2D the concatenated
streams, 6D the fused read-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from rider.config import ConfigSection
from rider.model.kind import MODALITY_NAMES, ModelKind
from rider.model.objective import TaskLoss, task_objective
from rider.model.crossmodal import DIRECTIONS, Transformer
from rider.model.padding import needed_steps


@dataclass(frozen=True)
class MultConfig(ConfigSection):
    """MulT's hyper-parameters; defaults are MMSA 2.2.1's CMU-MOSI values (config_regression.json, mult)."""

    d_model: int = 50  # dst_feature_dim_nheads[0]: width d of every crossmodal stream
    heads: int = 10  # dst_feature_dim_nheads[1]: attention heads (crossmodal d, self-attention 2d)
    layers: int = 4  # nlevels: layers of each crossmodal transformer
    self_layers: int = 4  # layers of each self-attention transformer: the authors' max(nlevels, 3)
    kernel_text: int = 5  # conv1d_kernel_size_l
    kernel_audio: int = 5  # conv1d_kernel_size_a
    kernel_vision: int = 5  # conv1d_kernel_size_v
    text_dropout: float = 0.5  # text_dropout: on the text features, before the convolution
    embed_dropout: float = 0.2  # embed_dropout: on each transformer's embedded inputs
    attn_dropout: float = 0.3  # attn_dropout: attention over text, and every self-attention
    attn_dropout_audio: float = 0.2  # attn_dropout_a: attention over audio
    attn_dropout_vision: float = 0.0  # attn_dropout_v: attention over vision
    relu_dropout: float = 0.0  # relu_dropout: inside the feed-forward
    res_dropout: float = 0.0  # res_dropout: on each sub-layer's output before the residual sum
    output_dropout: float = 0.5  # output_dropout: inside the residual output MLP
    causal: bool = True  # attn_mask: step i attends to source steps <= i + |T_source - T_target|
    position_embedding: bool = True  # Eq. 3 and the authors' code; MMSA 2.2.1 leaves it out (false)
    # Inputs, set by the trainer from the cache: GloVe text (768 BERT-family), COVAREP audio, Facet vision.
    text_dim: int = 300
    audio_dim: int = 74
    vision_dim: int = 35
    max_len: int = 50

    def __post_init__(self):
        for name in ("d_model", "heads", "layers", "self_layers", "kernel_text", "kernel_audio", "kernel_vision",
                     "text_dim", "audio_dim", "vision_dim", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"MultConfig: {name} = {getattr(self, name)} must be >= 1")
        if self.d_model % self.heads:
            raise ValueError(f"MultConfig: d_model = {self.d_model} is not divisible by heads = {self.heads}")
        for name in ("kernel_text", "kernel_audio", "kernel_vision"):
            if getattr(self, name) > self.max_len:
                raise ValueError(f"MultConfig: {name} = {getattr(self, name)} is longer than max_len = "
                                 f"{self.max_len}: the unpadded convolution would leave no step")
        for name in ("text_dropout", "embed_dropout", "attn_dropout", "attn_dropout_audio", "attn_dropout_vision",
                     "relu_dropout", "res_dropout", "output_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"MultConfig: {name} = {getattr(self, name)} must be in [0, 1)")

    def kernel(self, modality: str) -> int:
        return getattr(self, f"kernel_{modality}")

    def input_dim(self, modality: str) -> int:
        return getattr(self, f"{modality}_dim")

    def source_attn_dropout(self, modality: str) -> float:
        return {"text": self.attn_dropout, "audio": self.attn_dropout_audio,
                "vision": self.attn_dropout_vision}[modality]



class MultOutput(NamedTuple):
    prediction: torch.Tensor  # (B,)
    fused: torch.Tensor  # (B, 6D): the three streams read at their last real step


class MulT(nn.Module):
    def __init__(self, cfg: MultConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.d_model
        # 1. Temporal convolutions (Eq. 2), bias-free: a window of zeros (padding) stays exactly zero.
        self.conv = nn.ModuleDict({m: nn.Conv1d(cfg.input_dim(m), D, cfg.kernel(m), bias=False)
                                   for m in MODALITY_NAMES})
        # 2. Six crossmodal transformers, "<source>_to_<target>", attention dropout of their source.
        self.crossmodal = nn.ModuleDict({f"{s}_to_{t}": Transformer(D, cfg.layers, cfg, cfg.source_attn_dropout(s))
                                         for s, t in DIRECTIONS})
        # 3. A self-attention transformer per target over its two incoming streams (2D).
        self.self_attention = nn.ModuleDict({m: Transformer(2 * D, cfg.self_layers, cfg, cfg.attn_dropout)
                                             for m in MODALITY_NAMES})
        # 4. Residual output MLP on the fused read-out (6D) and the regression output.
        self.proj1, self.proj2 = nn.Linear(6 * D, 6 * D), nn.Linear(6 * D, 6 * D)
        self.out = nn.Linear(6 * D, 1)

    def mask(self, steps_q: int, steps_k: int, real_k: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, 1, Tq, Tk) additive attention mask, 0 where query i may see key j: j is a real step of the
        source (its first step for an empty sample, so that no softmax row is empty) and, with ``causal``,
        j <= i + |Tk - Tq| (the authors' mask); -inf elsewhere. Built once per transformer, used by every layer."""
        key = torch.arange(steps_k, device=real_k.device)
        allowed = (key[None, :] < real_k.clamp(min=1)[:, None])[:, None, None, :]  # (B, 1, 1, Tk)
        if self.cfg.causal:
            query = torch.arange(steps_q, device=real_k.device)
            allowed = allowed & (key[None, :] <= query[:, None] + abs(steps_k - steps_q))  # (B, 1, Tq, Tk)
        return torch.zeros(allowed.shape, dtype=dtype, device=real_k.device).masked_fill(~allowed, float("-inf"))

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                lengths: torch.Tensor) -> MultOutput:
        """text (B, L, Dt), audio (B, L, Da), vision (B, L, Dv), lengths (B,) real words."""
        cfg = self.cfg
        inputs = {"text": text, "audio": audio, "vision": vision}
        for m, x in inputs.items():
            if x.shape[-1] != cfg.input_dim(m):
                raise ValueError(f"MulT: {m} has {x.shape[-1]} features, the config expects {cfg.input_dim(m)}")
        B, L, _ = text.shape
        if L > cfg.max_len:
            raise ValueError(f"MulT: sequences of {L} words, the config has max_len = {cfg.max_len}")
        widest = max(cfg.kernel(m) for m in MODALITY_NAMES)
        if L < widest:
            raise ValueError(f"MulT: sequences of {L} words are shorter than the widest kernel ({widest})")
        L = needed_steps(lengths, L, widest - 1)  # later steps: padding no real step's window reaches
        words = (torch.arange(L, device=text.device)[None, :] < lengths[:, None])[..., None]  # (B, L, 1)
        inputs = {m: x[:, :L] * words for m, x in inputs.items()}  # (B, L, D_m), zero beyond lengths
        inputs["text"] = F.dropout(inputs["text"], cfg.text_dropout, self.training)

        # Eq. 2: X_m (B, L, D_m) -> (B, T_m, D), T_m = L - k_m + 1; the real steps are the first min(len, T_m).
        streams = {m: self.conv[m](x.transpose(1, 2)).transpose(1, 2) for m, x in inputs.items()}  # (B, T_m, D)
        real = {m: lengths.clamp(max=z.shape[1]) for m, z in streams.items()}  # (B,) per modality

        readouts = []
        for target in MODALITY_NAMES:
            z = streams[target]  # (B, T, D), T = T_target
            T = z.shape[1]
            incoming = [self.crossmodal[f"{s}_to_{t}"](z, streams[s],
                                                       self.mask(T, streams[s].shape[1], real[s], z.dtype))
                        for s, t in DIRECTIONS if t == target]  # 2 x (B, T, D), Eq. 4
            h = self.self_attention[target](torch.cat(incoming, dim=-1), None,
                                            self.mask(T, T, real[target], z.dtype))  # (B, T, 2D)
            last = (real[target] - 1).clamp(min=0)  # (B,) the last real step; an empty sample reads zeros
            readouts.append(h[torch.arange(B, device=h.device), last] * (real[target] > 0)[:, None])  # (B, 2D)
        fused = torch.cat(readouts, dim=-1)  # (B, 6D)
        hidden = self.proj2(F.dropout(F.relu(self.proj1(fused)), cfg.output_dropout, self.training))  # (B, 6D)
        return MultOutput(self.out(hidden + fused).squeeze(-1), fused)  # (B,), (B, 6D)


# The authors' sizes (MMSA 2.2.1 config_regression.json, datasetParams), for the faithfulness counts.
PAPER = {
    "mosi": MultConfig(),
    "mosei": MultConfig(d_model=30, heads=6, layers=4, self_layers=4, kernel_text=5, kernel_audio=1,
                        kernel_vision=3, text_dropout=0.3, embed_dropout=0.0, attn_dropout=0.4,
                        attn_dropout_audio=0.0, attn_dropout_vision=0.0, relu_dropout=0.0, res_dropout=0.0,
                        output_dropout=0.5),
}

KIND = ModelKind(name="mult", config=MultConfig, loss=TaskLoss, build=MulT, objective=task_objective,
                 absent="zeros", paper=PAPER, title="MulT")
