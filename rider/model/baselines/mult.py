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

Checked against MMSA 2.2.1 itself (in a scratch environment; MMSA is no dependency): with its weights copied in,
ours gives its outputs to 4e-7 on padded samples of 1-50 words (``readout`` last_step, ``position_embedding``
off: MMSA's MulT; on: MMSA's encoder built with ``position_embedding=True``, the authors' repository), and at
both published sizes on full-length samples, MOSEI's unequal kernels included.

Issue 21: why ours did not learn what theirs learns, and what changed
On the default synthetic MOSI cache, read exactly as our loader reads it, MMSA's MulT trained by MMSA's own
trainer learns the cross-modal part of the label (validation MAE from 0.89 to 0.50 in 8 epochs, test Acc-2
88.8 %, seed 0), while ours stayed at the text-only level (validation MAE about 0.75, Acc-2 about 77 %) even with
MMSA's optimisation. One difference at a time, seed 0, the authors' MOSI size, 8 epochs, MMSA's batch 16, lr 2e-3,
value clipping at 0.6 and plateau schedule; the best validation epoch's test Acc-2 (labels != 0) / MAE / Corr:

    read-out   positions  8 batches per step                            val MAE  test
    MMSA 2.2.1, its own model and trainer                                0.503   88.8 / 0.493 / 0.889
    last_real  on         mean gradient, clipped once                    0.724   76.8 / 0.808 / 0.755
    last_real  off        the same                                       0.745   77.8 / 0.836 / 0.749
    last_step  off        the same                                       0.597   83.8 / 0.648 / 0.839
    last_step  off        the same, last incomplete group dropped        0.508   88.3 / 0.515 / 0.894
    last_step  off        summed, clipped after every batch              0.504   87.5 / 0.538 / 0.889
    last_step  off        summed, clipped after every batch, dropped     0.459   87.7 / 0.484 / 0.890  (MMSA's)
    last_step  on         the same                                       0.486   89.4 / 0.488 / 0.894

The same at seeds 0-3 (mean ± sd; test metrics at each run's best validation epoch; CPU seconds per training
epoch, one thread, the other core busy with other jobs):

    8 epochs, MMSA's optimisation                 val MAE         test Acc-2    MAE    Corr   CPU s/epoch
    MMSA 2.2.1 MulT, its own trainer              0.487 ± 0.015   88.2 ± 0.6   0.488  0.889   38
    ours, readout last_step (the default)         0.476 ± 0.011   88.0 ± 0.8   0.490  0.892   39
    ours, readout last_real (before issue 21)     0.722 ± 0.061   78.1 ± 2.1   0.777  0.775   14

- The read-out is the cause (DESIGN §9). The authors read every target stream at its last step, T - 1 of the
  full padded length, and attend over padded steps like any other (no key-padding mask); under their causal
  mask (``attn_mask``: step i sees source steps <= i + |T_source - T_target|) that step has seen every step.
  On word-aligned data with 6-20 real words of L = 50 it is padding: its own input is exactly zero (bias-free
  convolution of zeros, no position), so it enters the first layer as a query with no content of its own (the
  LayerNorm's bias), the same for every sample, and all it carries out is what it gathered by attention over
  every real step, next to the padded keys (one constant key and value, repeated, whose count says how short
  the sample is): a learned pooling query. Ours before issue 21 read the last *real* step with the padded keys
  masked: that step's query and its residual stream start from the last word's own features (its convolution
  window holds that word and zeros), and it stayed at the text-only level (validation MAE 0.72-0.76) in all
  but one run, which began to leave it at epoch 7 (``last_real``, kept as an option; seeds above). That the
  pooling query is what lets the model find the three-way synergy, and the last word's query what keeps it
  from it, is our reading of the mechanism, not measured further.
  ``readout: last_step`` (the default) is the authors' behaviour: no batch cut (the number of padded steps
  changes the prediction), every step a key. Padding still never carries data: the inputs are zeroed beyond
  ``lengths`` before the convolutions (tested), so what lies there in a cache changes nothing.
- Positional embeddings (Eq. 3) are not the cause (last table row). MMSA 2.2.1 builds its encoders with
  ``position_embedding=False``; the authors' repository adds them and gives a step whose first feature is
  exactly 0 (padding) none, numbering the others from 1. ``position_embedding`` (default off, MMSA's) does
  the same when on: positions on the real steps of the crossmodal transformers' inputs, on every step of the
  self-attention transformers' (no step is zero there), and the equivalence above holds either way.
- Optimisation, in the trainer (rider.train.trainer, options any kind may use): MMSA trains MulT with Adam
  (``weight_decay`` is in its config but never passed to the optimiser), lr 2e-3, batch 16, ``loss.backward()``
  on each batch with the gradients summed over 8 batches per step (``update_epochs``), every gradient element
  clipped to ±0.6 after each backward pass (on the running sum), an epoch's last incomplete group never stepped,
  ReduceLROnPlateau (factor 0.1, patience 5) on the validation loss, and early stopping after 8 epochs without a
  lower one. ``train``: ``accumulate: 8``, ``accumulate_reduction: sum``, ``grad_clip: 0.6``,
  ``grad_clip_mode: value``, ``weight_decay: 0``, ``schedule: plateau``, ``plateau_patience: 5``, ``patience:
  8`` reproduce each (configs/paper.yaml). At one seed the accumulation details move the best validation MAE
  between 0.46 and 0.60 (first table), within the spread between seeds, so they are not separated here; we
  follow MMSA. Summed gradients matter only through the clipping: Adam's step is the same for a sum as for a
  mean, but 0.6 on the sum of 8 batches clips where 0.6 on their mean would not (at initialisation 0.015 % of
  the elements, mostly the first layers' LayerNorm and attention biases and the output weights; none of the
  mean's).
- What still differs: the data order and dropout masks (other random streams); the plateau schedule and early
  stopping follow our validation MAE, MMSA's the mean of its validation batches' L1 (the same but for the last,
  smaller batch's weight); MMSA's trainer keeps each batch's output graph for the epoch's metrics (memory only).
- The default run (config.yaml) trains MulT at a CPU size with MMSA's whole optimisation, 12 epochs. At
  d 16, 2 heads, 1 + 1 layers its 10 steps per epoch did not leave the text-only level (validation MAE 0.75,
  seed 0; without accumulation, 81 steps per epoch, the same size reached 0.50 ± 0.02, test Acc-2 87.4 % at
  seeds 0-2, 4 s per epoch); at d 32, 4 heads, 2 + 2 layers, the size chosen, it reaches validation MAE
  0.49 ± 0.01, test Acc-2 87.9 ± 0.7 %, MAE 0.486, Corr 0.899 (seeds 0-2) at 10 s per epoch.
- Cost on the CPU (1 thread): ``last_step`` computes all L = 50 steps where ``last_real`` cut each batch to
  its longest sample, about 3x the time per epoch at the authors' size on the default cache (second table).

Where ours differs from the authors' code otherwise, and why
- With ``readout: last_real``, a sample of length 0 attends over its first (all-zero) step, which keeps the
  softmax finite, and reads out a zero vector: its prediction is the bias path of the output MLP. With
  last_step it is computed as the authors' code computes it (finite: every step is a key).
- With ``readout: last_real`` only the steps that can matter are computed: each batch is cut to
  ``max(lengths) + max(k_m) - 1`` steps (never below one window), so a sample's prediction does not depend on
  the batch it is in (tested; with last_step neither does it, every batch having all L steps). Skipped under
  ``torch.compile``, where a data-dependent length would recompile each batch.
- The convolution is always applied. MMSA skips it where a feature width equals d (text 30/50 never does here).
- The self-attention transformers have their own depth (``self_layers``); the authors' code builds them with
  ``max(nlevels, 3)`` layers, which is 4 at both published sizes (the defaults).
- Dropout rates as in the authors' ``get_network``: attention over a source uses that source's rate (text
  ``attn_dropout``, audio ``attn_dropout_audio``, vision ``attn_dropout_vision``); self-attention uses
  ``attn_dropout``. Keys and values get separate embedding-dropout masks, as theirs do.

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


READOUTS = ("last_step", "last_real")


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
    position_embedding: bool = False  # Eq. 3 and the authors' repository (true); MMSA 2.2.1 has none (false)
    # last_step: the authors' read-out, every stream at its step T - 1 of the full max_len steps, padding attended
    # like any step; last_real: ours before issue 21, the last real step, padded keys masked, batches cut.
    readout: str = "last_step"
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

        if self.readout not in READOUTS:
            raise ValueError(f"MultConfig: readout = {self.readout!r}, expected one of {list(READOUTS)}")

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
        authors = cfg.readout == "last_step"
        if not authors:  # padding reaches no output: the steps no real window reaches are cut
            L = needed_steps(lengths, L, widest - 1)
        words = (torch.arange(L, device=text.device)[None, :] < lengths[:, None])[..., None]  # (B, L, 1)
        inputs = {m: x[:, :L] * words for m, x in inputs.items()}  # (B, L, D_m), zero beyond lengths
        inputs["text"] = F.dropout(inputs["text"], cfg.text_dropout, self.training)

        # Eq. 2: X_m (B, L, D_m) -> (B, T_m, D), T_m = L - k_m + 1; the real steps are the first min(len, T_m).
        streams = {m: self.conv[m](x.transpose(1, 2)).transpose(1, 2) for m, x in inputs.items()}  # (B, T_m, D)
        steps = {m: lengths.clamp(max=z.shape[1]) for m, z in streams.items()}  # (B,) real steps per modality
        # The keys attention may see: every step with the authors' read-out (padding included, as in their code),
        # else the real steps only.
        real = {m: torch.full_like(lengths, z.shape[1]) for m, z in streams.items()} if authors else steps

        readouts = []
        for target in MODALITY_NAMES:
            z = streams[target]  # (B, T, D), T = T_target
            T = z.shape[1]
            incoming = [self.crossmodal[f"{s}_to_{t}"](z, streams[s],
                                                       self.mask(T, streams[s].shape[1], real[s], z.dtype),
                                                       steps[target], steps[s])
                        for s, t in DIRECTIONS if t == target]  # 2 x (B, T, D), Eq. 4
            # Positions on every step here: the authors' code numbers the steps whose first feature is not 0, and
            # after a crossmodal transformer no step is exactly 0.
            h = self.self_attention[target](torch.cat(incoming, dim=-1), None, self.mask(T, T, real[target], z.dtype),
                                            torch.full_like(lengths, T))  # (B, T, 2D)
            if authors:
                readouts.append(h[:, -1])  # (B, 2D) step T - 1, the one that has seen every step
            else:
                last = (steps[target] - 1).clamp(min=0)  # (B,) the last real step; an empty sample reads zeros
                readouts.append(h[torch.arange(B, device=h.device), last] * (steps[target] > 0)[:, None])  # (B, 2D)
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
