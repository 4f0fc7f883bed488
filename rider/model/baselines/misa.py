"""MISA (Hazarika, Zimmermann and Poria, ACM MM 2020, "MISA: Modality-Invariant and -Specific Representations for
Multimodal Sentiment Analysis"), a baseline of the paper's Table 1, trained by the same trainer as every kind.

Each modality's word sequence becomes one utterance vector u_m (a two-layer bidirectional LSTM, the authors'
"sLSTM"), projected to a common width d_h. A shared encoder E_c (one for all modalities) and a private encoder
E_p^m per modality map u_m to h_m^c and h_m^p. The six vectors go through a one-layer Transformer as six tokens,
are concatenated and regressed. Three auxiliary losses shape the subspaces:
L = L_task + α L_sim + β L_diff + γ L_recon, with
- L_sim: central moment discrepancy (CMD, Zellinger et al. 2017) between the shared vectors of each pair of
  modalities, averaged over the three pairs (the modality-invariant subspace);
- L_diff: the squared Frobenius norm of h^T h' between each private vector and its shared one and between each
  pair of private vectors (soft orthogonality, the modality-specific subspace);
- L_recon: the mean squared error of a decoder reconstructing u_m from h_m^c + h_m^p.
The equation numbers of the paper's §3 were not at hand while writing this file: the lines name the quantities.

Reference code: the authors' repository declare-lab/MISA (src/models.py, src/solver.py) and MMSA 2.2.1
(thuiar/MMSA: models/singleTask/MISA.py, trains/singleTask/MISA.py, config/config_regression.json), whose CMU-MOSI
and CMU-MOSEI hyper-parameters are the defaults and ``PAPER`` here. Written from reading them, not copied.

Where ours differs, and why:
- Text. Both implementations fine-tune BERT (mean of its last layer over the tokens -> Linear(768 -> d_h)). Here the
  text is the cached, frozen word features (GloVe 300, or frozen BERT-family features of 768), so the text path is
  the authors' own non-BERT path (declare-lab/MISA, ``use_bert=False``): an sLSTM over the word vectors with hidden
  width = input width, and Linear(4 x width -> d_h). The authors' path looks GloVe up in an ``nn.Embedding`` that
  their solver means to freeze (``embed.requires_grad = False`` on the module, which leaves the weight trainable);
  ours reads fixed vectors. The faithfulness count (tests) leaves this text encoder out, as it leaves BERT out.
- The shared/private discriminator ``sp_discriminator`` (Linear(d_h -> 4)) is computed by both implementations but
  enters no loss (``sp_weight`` is never used), so it never trains: left out. So is the adversarial
  discriminator, which only exists when CMD is switched off (``use_cmd_sim: false``; both use CMD).
- Task loss: the authors use the mean squared error for regression; every model here trains on Eq. 2's absolute
  error (rider.model.objective.task_loss), so that the baselines differ in their models, not in their losses.
- Packed sequences are replaced by padded ones with the same results (rider.model.recurrent: the state after
  lengths[b] steps, the backward direction reversed within each length); a sample of length 0 gets zero states.
  Audio and vision are word-aligned and read for the word count, as in the authors' repository (one length for
  all three); MMSA's MISA reads its unaligned audio and vision for the BERT token count instead.
- Recurrent weights start orthogonal, as the authors' solver sets them (MMSA keeps PyTorch's default).
- Optimisation (the trainer's, configs/paper.yaml): AdamW instead of Adam; MMSA accumulates the gradients of
  ``update_epochs`` = 2 batches before a step (16 x 2 for MOSI, 64 x 2 for MOSEI: batch 32 and 128 here) and
  clips each gradient value to 0.8, where our trainer clips the gradient norm (``train.grad_clip``). MMSA builds
  Adam without weight decay whatever ``weight_decay`` says (0 here).
- The order of the six fusion tokens (the authors: private T, V, A, then shared T, V, A; ours T, A, V for both)
  is a relabelling: the Transformer has no positions, and the head's weights see the same six vectors.
- Hidden widths of the sLSTMs: the authors tie each to its input width; ``*_rnn_dim`` can set them (the CPU-sized
  default run), left at None for the authors' model.

Shapes: B batch, L words, M modalities (text, audio, vision), D_m a modality's features, H_m its sLSTM width,
D hidden (d_h, ``hidden_size``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import NamedTuple

import torch
import torch.nn as nn

from rider.config import ConfigSection
from rider.model.kind import MODALITY_NAMES, ModelKind, check_input_widths
from rider.model.objective import Objective, PureObjective, task_loss
from rider.model.recurrent import run_backward, run_forward, truncate

RNN_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class MISAConfig(ConfigSection):
    """The network. Defaults: MMSA 2.2.1 config_regression.json, misa.datasetParams.mosi (MOSEI in ``PAPER``)."""

    hidden_size: int = 128  # d_h, the width of u_m and of both subspaces (MOSI and MOSEI: 128)
    dropout: float = 0.2  # of the prediction head, the only place the authors use it (MOSEI 0.5)
    rnncell: str = "lstm"  # the sLSTM's cell (authors: lstm; gru is their other option)
    # sLSTM hidden widths; None = the modality's input width, as the authors tie them. Set for the CPU-sized run.
    text_rnn_dim: int | None = None
    audio_rnn_dim: int | None = None
    vision_rnn_dim: int | None = None
    # Fusion: nn.TransformerEncoder(nn.TransformerEncoderLayer(d_h, nhead=2), num_layers=1) in both
    # implementations, so the feed-forward width, dropout, ReLU and post-norm are PyTorch's defaults.
    fusion_layers: int = 1
    fusion_heads: int = 2
    fusion_ff: int = 2048
    fusion_dropout: float = 0.1
    # Inputs (set from the cache by the trainer): GloVe text (768 for BERT-family features), COVAREP audio,
    # Facet vision; L words (unused: the sLSTMs read any length).
    text_dim: int = 300
    audio_dim: int = 74
    vision_dim: int = 35
    max_len: int = 50

    def __post_init__(self):
        for name in ("hidden_size", "fusion_layers", "fusion_heads", "fusion_ff", "text_dim", "audio_dim",
                     "vision_dim", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"MISAConfig: {name} = {value!r} must be an integer >= 1")
        for name in ("text_rnn_dim", "audio_rnn_dim", "vision_rnn_dim"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"MISAConfig: {name} = {value!r} must be null (the input width) or an integer >= 1")
        if self.hidden_size % self.fusion_heads:
            raise ValueError(f"MISAConfig: hidden_size = {self.hidden_size} is not divisible by fusion_heads = "
                             f"{self.fusion_heads}")
        for name in ("dropout", "fusion_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"MISAConfig: {name} = {getattr(self, name)} must be in [0, 1)")
        if self.rnncell not in RNN_CELLS:
            raise ValueError(f"MISAConfig: rnncell = {self.rnncell!r}, expected one of {sorted(RNN_CELLS)}")

    def rnn_dim(self, modality: str) -> int:
        """The sLSTM width of ``modality``: its own setting, else its input width (the authors' choice)."""
        own = getattr(self, f"{modality}_rnn_dim")
        return getattr(self, f"{modality}_dim") if own is None else own



@dataclass(frozen=True)
class MISALoss(ConfigSection):
    """L = L_task + α L_sim + β L_diff + γ L_recon. Defaults: MMSA misa.datasetParams.mosi (MOSEI: ``PAPER_LOSS``)."""

    sim_weight: float = 0.3  # α (MOSEI 0.8)
    diff_weight: float = 0.1  # β (MOSEI 0.3)
    recon_weight: float = 1.0  # γ (MOSI and MOSEI)
    cmd_moments: int = 5  # K: CMD matches the mean and the central moments 2..K (the authors pass 5)

    def __post_init__(self):
        for name in ("sim_weight", "diff_weight", "recon_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"MISALoss: {name} = {getattr(self, name)} must be >= 0")
        if self.cmd_moments < 1:
            raise ValueError(f"MISALoss: cmd_moments = {self.cmd_moments} must be >= 1")

    def coefficients(self) -> dict[str, float]:
        return {"task": 1.0, "sim": self.sim_weight, "diff": self.diff_weight, "recon": self.recon_weight}



class MISAOutput(NamedTuple):
    prediction: torch.Tensor  # ŷ, (B,)
    utterance: torch.Tensor  # u_m projected to d_h: the reconstruction target, (M, B, D)
    private: torch.Tensor  # h_m^p, (M, B, D)
    shared: torch.Tensor  # h_m^c, (M, B, D)
    reconstruction: torch.Tensor  # û_m = D_m(h_m^c + h_m^p), (M, B, D)


class UtteranceEncoder(nn.Module):
    """The authors' sLSTM: a bidirectional RNN, LayerNorm over its outputs, a second bidirectional RNN; u_m is the
    final states of both directions of both layers, (B, 4 H). Each bidirectional layer is a forward and a backward
    RNN over the real words only (rider.model.recurrent), with the parameters of one ``bidirectional=True`` RNN."""

    def __init__(self, in_dim: int, hidden: int, cell: str):
        super().__init__()
        rnn = RNN_CELLS[cell]
        self.forward1, self.backward1 = rnn(in_dim, hidden, batch_first=True), rnn(in_dim, hidden, batch_first=True)
        self.norm = nn.LayerNorm(2 * hidden)
        self.forward2 = rnn(2 * hidden, hidden, batch_first=True)
        self.backward2 = rnn(2 * hidden, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = truncate(x, lengths)  # (B, L', D_m): L' = the longest sample
        out_f, h1_f = run_forward(self.forward1, x, lengths)  # (B, L', H), (B, H)
        out_b, h1_b = run_backward(self.backward1, x, lengths)  # (B, L', H), (B, H)
        x2 = self.norm(torch.cat([out_f, out_b], dim=-1))  # (B, L', 2H)
        _, h2_f = run_forward(self.forward2, x2, lengths)  # (B, H)
        _, h2_b = run_backward(self.backward2, x2, lengths)  # (B, H)
        return torch.cat([h1_f, h1_b, h2_f, h2_b], dim=-1)  # u_m, (B, 4H)


class MISA(nn.Module):
    def __init__(self, cfg: MISAConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.hidden_size
        self.encoders = nn.ModuleList(UtteranceEncoder(getattr(cfg, f"{m}_dim"), cfg.rnn_dim(m), cfg.rnncell)
                                      for m in MODALITY_NAMES)
        # u_m -> d_h: Linear, ReLU, LayerNorm (the authors' project_m).
        self.project = nn.ModuleList(nn.Sequential(nn.Linear(4 * cfg.rnn_dim(m), D), nn.ReLU(), nn.LayerNorm(D))
                                     for m in MODALITY_NAMES)
        self.private = nn.ModuleList(nn.Sequential(nn.Linear(D, D), nn.Sigmoid()) for _ in MODALITY_NAMES)  # E_p^m
        self.shared = nn.Sequential(nn.Linear(D, D), nn.Sigmoid())  # E_c, one for every modality
        self.reconstruct = nn.ModuleList(nn.Linear(D, D) for _ in MODALITY_NAMES)  # decoders D_m
        layer = nn.TransformerEncoderLayer(D, cfg.fusion_heads, dim_feedforward=cfg.fusion_ff,
                                           dropout=cfg.fusion_dropout, batch_first=True)
        self.fusion = nn.TransformerEncoder(layer, cfg.fusion_layers, enable_nested_tensor=False)
        # The six fused vectors, concatenated: 6D -> 3D -> 1 (the authors' fusion head).
        self.head = nn.Sequential(nn.Linear(6 * D, 3 * D), nn.Dropout(cfg.dropout), nn.ReLU(), nn.Linear(3 * D, 1))
        for name, parameter in self.encoders.named_parameters():
            if "weight_hh" in name:  # the authors' solver: orthogonal recurrent weights
                nn.init.orthogonal_(parameter)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                lengths: torch.Tensor) -> MISAOutput:
        """text (B, L, Dt), audio (B, L, Da), vision (B, L, Dv), lengths (B,)."""
        inputs = (text, audio, vision)
        check_input_widths("MISA", self.cfg, text=text, audio=audio, vision=vision)
        u = torch.stack([project(encoder(x, lengths))
                         for encoder, project, x in zip(self.encoders, self.project, inputs)])  # (M, B, D)
        private = torch.stack([E_p(u_m) for E_p, u_m in zip(self.private, u)])  # h_m^p, (M, B, D)
        shared = self.shared(u)  # h_m^c, (M, B, D)
        reconstruction = torch.stack([D_m(p + s) for D_m, p, s in zip(self.reconstruct, private, shared)])  # (M, B, D)
        tokens = torch.cat([private, shared]).transpose(0, 1)  # (B, 2M, D)
        fused = self.fusion(tokens).flatten(1)  # (B, 2M * D)
        prediction = self.head(fused).squeeze(-1)  # (B,)
        return MISAOutput(prediction, u, private, shared, reconstruction)


def cmd(x1: torch.Tensor, x2: torch.Tensor, moments: int) -> torch.Tensor:
    """Central moment discrepancy between two samples (B, D) of bounded features: the distance of the means plus
    the distances of the central moments 2..``moments``. The features are sigmoids, in [0, 1], so Zellinger et al.'s
    1/|b - a|^k scaling is 1, as the authors leave it. ``vector_norm`` (not sqrt of a sum) keeps the gradient finite
    when two moments coincide."""
    mean1, mean2 = x1.mean(dim=0), x2.mean(dim=0)  # (D,)
    total = torch.linalg.vector_norm(mean1 - mean2)
    centred1, centred2 = x1 - mean1, x2 - mean2  # (B, D)
    for k in range(2, moments + 1):
        total = total + torch.linalg.vector_norm(centred1.pow(k).mean(dim=0) - centred2.pow(k).mean(dim=0))
    return total


def similarity_loss(shared: torch.Tensor, moments: int) -> torch.Tensor:
    """L_sim: CMD between the shared vectors of each pair of modalities, averaged over the pairs. shared (M, B, D)."""
    pairs = list(combinations(range(shared.shape[0]), 2))
    return sum(cmd(shared[i], shared[j], moments) for i, j in pairs) / len(pairs)


def orthogonality(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a^T b||_F^2 / D^2 of two (B, D) batches, each centred over the batch and with its rows scaled to unit length
    (the scale detached from the graph, + 1e-6, as the authors' DiffLoss)."""
    a = a - a.mean(dim=0, keepdim=True)  # (B, D)
    b = b - b.mean(dim=0, keepdim=True)  # (B, D)
    a = a / (torch.linalg.vector_norm(a, dim=1, keepdim=True).detach() + 1e-6)  # (B, D)
    b = b / (torch.linalg.vector_norm(b, dim=1, keepdim=True).detach() + 1e-6)  # (B, D)
    return (a.T @ b).pow(2).mean()  # (D, D) -> ()


def difference_loss(private: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """L_diff: each private vector against its shared one, and each pair of private vectors. (M, B, D) each."""
    own = sum(orthogonality(p, s) for p, s in zip(private, shared))
    across = sum(orthogonality(private[i], private[j]) for i, j in combinations(range(private.shape[0]), 2))
    return own + across


def reconstruction_loss(reconstruction: torch.Tensor, utterance: torch.Tensor) -> torch.Tensor:
    """L_recon: the mean squared error of û_m against u_m, averaged over the modalities. (M, B, D) each."""
    return (reconstruction - utterance).pow(2).mean(dim=(1, 2)).mean()


TERMS = ("task", "sim", "diff", "recon")


def misa_objective(config: MISAConfig, loss: MISALoss, train_size: int = 0) -> Objective:
    """The four unweighted terms; ``MISALoss.coefficients`` weights them (α, β, γ)."""
    def terms(output: MISAOutput, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "task": task_loss(output.prediction, y),  # Eq. 2 (the authors: squared error)
            "sim": similarity_loss(output.shared, loss.cmd_moments),
            "diff": difference_loss(output.private, output.shared),
            "recon": reconstruction_loss(output.reconstruction, output.utterance),
        }
    return PureObjective(TERMS, terms)


# The authors' sizes (MMSA config_regression.json, misa.datasetParams); the input widths come from the data.
PAPER = {"mosi": MISAConfig(), "mosei": MISAConfig(dropout=0.5)}
PAPER_LOSS = {"mosi": MISALoss(), "mosei": MISALoss(sim_weight=0.8, diff_weight=0.3)}

KIND = ModelKind(name="misa", config=MISAConfig, loss=MISALoss, build=MISA, objective=misa_objective,
                 absent="zeros", paper=PAPER, title="MISA",
                 note="the original fine-tunes BERT end to end; here it reads the cached frozen word features through "
                      "the authors' non-BERT sLSTM text path, trained with L1 (Eq. 2) instead of MSE")
