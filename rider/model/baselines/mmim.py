"""MMIM (Han, Chen and Poria, EMNLP 2021, "Improving Multimodal Fusion with Hierarchical Mutual Information
Maximization for Multimodal Sentiment Analysis"), a baseline of the paper's Tables 1 and 2.

Each modality becomes one vector h_m (text, audio, vision); their concatenation goes through a small fusion
network whose hidden layer Z is the fused representation and whose output is the prediction. Two levels of mutual
information (MI) are maximised beside the task:
- between modalities (text-vision, text-audio): a Gaussian lower bound (MMILB). An estimator predicts the mean
  μ(h_t) and log-variance of h_v (resp. h_a) from h_t; its log-likelihood ``lld`` of the true h_v bounds the MI
  from below up to the entropy of h_v, which is estimated from the covariance of the projected h_v of the
  positive and of the negative samples (labels > 0, < 0) of the batch and a memory of the previous batch:
  H = (log det Σ_pos + log det Σ_neg) / 4 (``entropy``);
- between the fused Z and each input h_m: contrastive predictive coding (CPC). A linear map predicts h_m from Z,
  both are normalised, and the NCE loss is -mean_b(s_bb - logsumexp_j s_bj), s_ij = <h_m,i, pred_j> (``nce``).
Training takes two optimisation stages per epoch (rider.model.stages): first a pass in which only the MMILB
estimators learn, maximising ``lld`` with their own Adam(W); then a pass in which everything else learns on
task + α nce - β lld - β entropy (α = β = 0.1), the estimators held fixed. The entropy term enters from the third
batch of the main pass on (the authors' schedule: the memory holds one batch and is filled by the first), the
memory restarting every epoch. The paper's equation numbers were not at hand while writing this file: the lines
name the quantities.

Reference code: MMSA 2.2.1 (thuiar/MMSA: models/singleTask/MMIM.py, trains/singleTask/MMIM.py,
config/config_regression.json, ported from the authors' declare-lab/Multimodal-Infomax). Its CMU-MOSI and
CMU-MOSEI hyper-parameters are the defaults and ``PAPER`` here. Written from reading the code, not copied.

Where ours differs, and why:
- Text. The authors fine-tune BERT and take its first token ([CLS], 768-d) as h_t; they have no other text path.
  Here the text is the cached, frozen word features (GloVe 300, or frozen BERT-family features of 768 per word,
  without a [CLS] token), so h_t is their mean over the real words: parameter-free like a frozen encoder, of the
  features' own width (the authors' d_tout = the text feature width). With 768-d features our count equals the
  authors' without BERT (tests). The text CPC term then trains only its predictor and the fusion network.
- Stages run as the authors run them: a whole pass of the estimators, then a whole pass of the rest, each pass
  over its own shuffled order (MOSEI: the estimator pass stops halfway, ``estimator_fraction`` 0.5), and not
  alternately per batch. In the estimator pass every gradient is computed and clipped together (the authors clip
  all parameters) but only the estimators step. Their entropy projections learn only from the entropy term, which
  the main pass's optimiser does not step: they keep their initial weights, as in the authors' code.
- The estimators' log-variance network ends on a linear layer: the configured last activation (Tanh) is never
  applied in the authors' code, and is not here. The middle activation is ReLU, CPC's one-layer predictor is
  linear (Tanh would sit between layers of a deeper one), as configured for every dataset; not configurable.
- Entropy: a class (positive or negative) with no more samples than the projection's width has a singular
  covariance (log det = -inf, the authors' loss becomes infinite); here it contributes 0. CPC normalises with a
  floor on the norm (an empty sample's zero text vector would otherwise give NaN); identical for any other vector.
- Audio and vision read the word-aligned features for the word count (the authors' aligned setting uses the text
  lengths too); packed sequences are replaced by padded ones with the same final states (rider.model.recurrent);
  a one-layer bidirectional LSTM in every configuration, so its dropout (dropout_a / dropout_v, used by the
  authors only with more layers) and layer count are not fields. No va estimator (add_va false everywhere).
- Optimisation (the trainer's, configs/paper.yaml): AdamW (decoupled weight decay) for both stages instead of
  Adam with L2; the authors' ReduceLROnPlateau (patience 20, longer than their early stopping of 8) is left out.
  The authors re-initialise every weight matrix with Xavier-normal; so does ours.

Shapes: B batch, L words, D_m a modality's features (h_m), P the fusion width, K = D_y / 4 an entropy projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from rider.config import ConfigSection
from rider.model.kind import ModelKind, check_input_widths
from rider.model.objective import Batch, Objective, task_loss
from rider.model.recurrent import run_backward, run_forward, truncate
from rider.model.stages import TrainingStage

ESTIMATOR_STAGE, MAIN_STAGE = "estimators", "main"
ESTIMATORS = ("mmilb_text_vision", "mmilb_text_audio")  # the submodules the estimator stage steps
PAIRS = ("text_vision", "text_audio")  # (x, y) of each MMILB: h_y predicted from h_x


@dataclass(frozen=True)
class MMIMConfig(ConfigSection):
    """The network and the estimator stage's optimiser. Defaults: MMSA 2.2.1 config_regression.json,
    mmim.datasetParams.mosi (MOSEI in ``PAPER``)."""

    audio_hidden: int = 16  # d_ah: LSTM width per direction (MOSEI 16)
    vision_hidden: int = 16  # d_vh (MOSEI 16)
    audio_out: int = 16  # d_aout: h_a (MOSEI 16)
    vision_out: int = 16  # d_vout: h_v (MOSEI 16)
    bidirectional: bool = True  # (MOSEI true)
    fusion_dim: int = 128  # d_prjh: Z (MOSEI 128)
    fusion_dropout: float = 0.1  # dropout_prj, on the concatenated h (MOSEI 0.1)
    # The estimator stage's Adam(W) (the main stage learns at train.lr / train.weight_decay: lr_main 1e-3,
    # weight_decay_main 1e-4 for both datasets).
    lr_estimators: float = 1e-3  # lr_mmilb (MOSEI 1e-3)
    weight_decay_estimators: float = 1e-4  # weight_decay_mmilb (MOSEI 1e-4)
    estimator_fraction: float = 1.0  # of an epoch's batches the estimator pass sees (MOSEI 0.5, in the trainer)
    # Inputs (set from the cache by the trainer): GloVe text (768 for BERT-family features), COVAREP audio,
    # Facet vision; L words (unused: the LSTMs and the text mean read any length).
    text_dim: int = 300
    audio_dim: int = 74
    vision_dim: int = 35
    max_len: int = 50

    def __post_init__(self):
        for name in ("audio_hidden", "vision_hidden", "audio_out", "vision_out", "fusion_dim", "text_dim",
                     "audio_dim", "vision_dim", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"MMIMConfig: {name} = {value!r} must be an integer >= 1")
        for name in ("audio_out", "vision_out"):
            if getattr(self, name) < 4:  # the entropy projection is D_y // 4 wide
                raise ValueError(f"MMIMConfig: {name} = {getattr(self, name)} must be >= 4 (entropy width D // 4)")
        if not 0.0 <= self.fusion_dropout < 1.0:
            raise ValueError(f"MMIMConfig: fusion_dropout = {self.fusion_dropout} must be in [0, 1)")
        if self.lr_estimators <= 0:
            raise ValueError(f"MMIMConfig: lr_estimators = {self.lr_estimators} must be > 0")
        if self.weight_decay_estimators < 0:
            raise ValueError(f"MMIMConfig: weight_decay_estimators = {self.weight_decay_estimators} must be >= 0")
        if not 0.0 < self.estimator_fraction <= 1.0:
            raise ValueError(f"MMIMConfig: estimator_fraction = {self.estimator_fraction} must be in (0, 1]")


@dataclass(frozen=True)
class MMIMLoss(ConfigSection):
    """The main stage's weights (MMSA mmim, MOSI and MOSEI alike) and the entropy memory."""

    alpha: float = 0.1  # weight of the CPC (NCE) loss
    beta: float = 0.1  # weight of the MMILB terms: -β lld - β entropy
    memory_batches: int = 1  # mem_size: previous main-stage batches in the entropy's covariance

    def __post_init__(self):
        for name in ("alpha", "beta"):
            if getattr(self, name) < 0:
                raise ValueError(f"MMIMLoss: {name} = {getattr(self, name)} must be >= 0")
        if not isinstance(self.memory_batches, int) or isinstance(self.memory_batches, bool) \
                or self.memory_batches < 1:
            raise ValueError(f"MMIMLoss: memory_batches = {self.memory_batches!r} must be an integer >= 1")

    def coefficients(self) -> dict[str, float]:
        """The main stage's loss: task + α nce - β lld - β entropy (lld and entropy are maximised)."""
        return {"task": 1.0, "nce": self.alpha, "lld": -self.beta, "entropy": -self.beta}


class MMIMOutput(NamedTuple):
    prediction: torch.Tensor  # (B,)
    text: torch.Tensor  # h_t, (B, Dt)
    audio: torch.Tensor  # h_a, (B, Da)
    vision: torch.Tensor  # h_v, (B, Dv)
    fusion: torch.Tensor  # Z, (B, P)
    predicted: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # CPC's predictions of h_t, h_a, h_v from Z
    mean: tuple[torch.Tensor, torch.Tensor]  # MMILB μ(h_t) of h_v, of h_a: (B, Dv), (B, Da)
    log_variance: tuple[torch.Tensor, torch.Tensor]  # (B, Dv), (B, Da)
    projected: tuple[torch.Tensor, torch.Tensor]  # the entropy projections of h_v, h_a: (B, Dv/4), (B, Da/4)


class SequenceEncoder(nn.Module):
    """The authors' RNNEncoder: a one-layer (bi)LSTM's final states, concatenated, then Linear(-> out)."""

    def __init__(self, in_dim: int, hidden: int, out: int, bidirectional: bool):
        super().__init__()
        self.forward_rnn = nn.LSTM(in_dim, hidden, batch_first=True)
        self.backward_rnn = nn.LSTM(in_dim, hidden, batch_first=True) if bidirectional else None
        self.linear = nn.Linear(hidden * (2 if bidirectional else 1), out)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = truncate(x, lengths)  # (B, L', D)
        states = [run_forward(self.forward_rnn, x, lengths)[1]]  # [(B, H)]
        if self.backward_rnn is not None:
            states.append(run_backward(self.backward_rnn, x, lengths)[1])  # [(B, H), (B, H)]
        return self.linear(torch.cat(states, dim=-1))  # (B, out)


class GaussianEstimator(nn.Module):
    """MMILB's estimator of p(y | x): mean and log-variance MLPs, and the projection of y whose class
    covariances give the entropy."""

    def __init__(self, x_dim: int, y_dim: int):
        super().__init__()
        self.mean = nn.Sequential(nn.Linear(x_dim, y_dim), nn.ReLU(), nn.Linear(y_dim, y_dim))
        self.log_variance = nn.Sequential(nn.Linear(x_dim, y_dim), nn.ReLU(), nn.Linear(y_dim, y_dim))
        self.entropy_projection = nn.Sequential(nn.Linear(y_dim, y_dim // 4), nn.Tanh())

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.mean(x), self.log_variance(x), self.entropy_projection(y)  # (B, Dy), (B, Dy), (B, Dy/4)


class FusionNetwork(nn.Module):
    """Dropout, Linear(-> P), tanh, Linear(P -> P), tanh: Z; then Linear(P -> 1): the prediction."""

    def __init__(self, in_dim: int, dim: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(in_dim, dim)
        self.represent = nn.Linear(dim, dim)
        self.predict = nn.Linear(dim, 1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.tanh(self.represent(torch.tanh(self.hidden(self.dropout(h)))))  # (B, P)
        return z, self.predict(z).squeeze(-1)  # (B, P), (B,)


class MMIM(nn.Module):
    def __init__(self, cfg: MMIMConfig):
        super().__init__()
        self.cfg = cfg
        self.audio_encoder = SequenceEncoder(cfg.audio_dim, cfg.audio_hidden, cfg.audio_out, cfg.bidirectional)
        self.vision_encoder = SequenceEncoder(cfg.vision_dim, cfg.vision_hidden, cfg.vision_out, cfg.bidirectional)
        self.mmilb_text_vision = GaussianEstimator(cfg.text_dim, cfg.vision_out)
        self.mmilb_text_audio = GaussianEstimator(cfg.text_dim, cfg.audio_out)
        # CPC: Z predicts each h_m (one linear layer, the authors' cpc_layers = 1).
        self.cpc_text = nn.Linear(cfg.fusion_dim, cfg.text_dim)
        self.cpc_audio = nn.Linear(cfg.fusion_dim, cfg.audio_out)
        self.cpc_vision = nn.Linear(cfg.fusion_dim, cfg.vision_out)
        self.fusion = FusionNetwork(cfg.text_dim + cfg.audio_out + cfg.vision_out, cfg.fusion_dim,
                                    cfg.fusion_dropout)
        for parameter in self.parameters():  # the authors re-initialise every weight matrix so
            if parameter.dim() > 1:
                nn.init.xavier_normal_(parameter)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                lengths: torch.Tensor) -> MMIMOutput:
        """text (B, L, Dt), audio (B, L, Da), vision (B, L, Dv), lengths (B,)."""
        check_input_widths("MMIM", self.cfg, text=text, audio=audio, vision=vision)
        valid = (torch.arange(text.shape[1], device=text.device)[None, :] < lengths[:, None]).to(text.dtype)  # (B, L)
        h_t = (text * valid[..., None]).sum(dim=1) / valid.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, Dt)
        h_a = self.audio_encoder(audio, lengths)  # (B, Da)
        h_v = self.vision_encoder(vision, lengths)  # (B, Dv)
        mean_tv, log_var_tv, projected_v = self.mmilb_text_vision(h_t, h_v)  # (B, Dv) x 2, (B, Dv/4)
        mean_ta, log_var_ta, projected_a = self.mmilb_text_audio(h_t, h_a)  # (B, Da) x 2, (B, Da/4)
        z, prediction = self.fusion(torch.cat([h_t, h_a, h_v], dim=-1))  # (B, P), (B,)
        predicted = (self.cpc_text(z), self.cpc_audio(z), self.cpc_vision(z))  # (B, Dt), (B, Da), (B, Dv)
        return MMIMOutput(prediction, h_t, h_a, h_v, z, predicted, (mean_tv, mean_ta), (log_var_tv, log_var_ta),
                          (projected_v, projected_a))


# The MI terms, as pure functions of tensors.

def gaussian_log_likelihood(mean: torch.Tensor, log_variance: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MMILB's lld: mean over the batch of Σ_d -(μ_d - y_d)² / (2 exp(logvar_d)), the log-likelihood of y under
    N(μ, exp(logvar)) without its normalising terms. (B, D) x 3 -> ()."""
    return (-(mean - y) ** 2 / 2.0 / log_variance.exp()).sum(dim=-1).mean()


def cpc_nce(target: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """CPC's NCE loss: both (B, D) normalised, s = target @ predictedᵀ (B, B); -mean_b (s_bb - logsumexp_j s_bj)."""
    target, predicted = F.normalize(target, dim=-1), F.normalize(predicted, dim=-1)  # (B, D)
    scores = target @ predicted.t()  # (B, B)
    return -(scores.diagonal() - scores.logsumexp(dim=-1)).mean()


def class_entropy(projected: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MMILB's entropy estimate: (log det Σ_pos + log det Σ_neg) / 4, Σ_c the covariance (divided by the count) of
    the projections (N, K) of the samples of class c (labels > 0, labels < 0). A class with at most K samples (a
    singular Σ) contributes 0."""
    total = projected.new_zeros(())
    K = projected.shape[-1]
    for members in (labels > 0, labels < 0):
        weight = members.to(projected.dtype)  # (N,)
        count = weight.sum()
        centre = (weight @ projected) / count.clamp(min=1.0)  # (K,)
        centred = projected - centre  # (N, K)
        covariance = (centred * weight[:, None]).t() @ centred / count.clamp(min=1.0)  # (K, K)
        full = count > K
        eye = torch.eye(K, dtype=projected.dtype, device=projected.device)
        total = total + torch.where(full, torch.logdet(torch.where(full, covariance, eye)), 0.0)
    return total / 4.0


class MMIMObjective(Objective):
    """task, nce, lld and entropy of an output. The entropy's memory holds the projections and labels of the last
    ``memory_batches`` main-stage batches (detached), restarts with every main stage (every epoch), and the term
    enters once more than ``memory_batches`` batches of the stage have passed (the authors' i_batch > mem_size).
    The estimator stage neither reads nor fills it."""

    terms = ("task", "nce", "lld", "entropy")

    def __init__(self, loss: MMIMLoss):
        self.memory_batches = loss.memory_batches
        self.stage = MAIN_STAGE
        self.start_stage(MAIN_STAGE)

    def start_stage(self, name: str) -> None:
        self.stage, self.step = name, 0
        self.memory: list[tuple[tuple[torch.Tensor, ...], torch.Tensor]] = []  # (projections per pair, labels)

    def __call__(self, output: MMIMOutput, batch: Batch) -> dict[str, torch.Tensor]:
        modalities = (output.text, output.audio, output.vision)
        nce = sum(cpc_nce(h, predicted) for h, predicted in zip(modalities, output.predicted))
        lld = sum(gaussian_log_likelihood(mean, log_var, y) for mean, log_var, y
                  in zip(output.mean, output.log_variance, (output.vision, output.audio)))
        entropy = output.prediction.new_zeros(())
        if self.stage != ESTIMATOR_STAGE and self.step > self.memory_batches:
            labels = torch.cat([stored for _, stored in self.memory] + [batch.labels])  # (N,)
            for pair in range(len(PAIRS)):
                projected = torch.cat([stored[pair] for stored, _ in self.memory] + [output.projected[pair]])
                entropy = entropy + class_entropy(projected, labels)  # (N, K) -> ()
        return {"task": task_loss(output.prediction, batch.labels), "nce": nce, "lld": lld, "entropy": entropy}

    def after_step(self, output: MMIMOutput, batch: Batch) -> None:
        if self.stage == ESTIMATOR_STAGE:
            return
        entry = (tuple(p.detach() for p in output.projected), batch.labels.detach())
        if len(self.memory) < self.memory_batches:
            self.memory.append(entry)
        else:  # replace the oldest
            self.memory[self.step % self.memory_batches] = entry
        self.step += 1


def mmim_objective(config: MMIMConfig, loss: MMIMLoss, train_size: int = 0) -> MMIMObjective:
    return MMIMObjective(loss)


def mmim_stages(config: MMIMConfig, loss: MMIMLoss) -> tuple[TrainingStage, ...]:
    """The authors' two passes per epoch: the estimators maximise lld alone; then the rest learns on the loss."""
    return (TrainingStage(ESTIMATOR_STAGE, {"lld": -1.0}, modules=ESTIMATORS, lr=config.lr_estimators,
                          weight_decay=config.weight_decay_estimators, fraction=config.estimator_fraction),
            TrainingStage(MAIN_STAGE, loss.coefficients()))


PAPER = {
    "mosi": MMIMConfig(),
    "mosei": MMIMConfig(estimator_fraction=0.5),  # every other size and rate as MOSI's
}

KIND = ModelKind(
    name="mmim", config=MMIMConfig, loss=MMIMLoss, build=MMIM, objective=mmim_objective, absent="zeros",
    paper=PAPER, stages=mmim_stages, title="MMIM",
    note="the original fine-tunes BERT end to end and reads its [CLS] vector; here the text is the mean of the "
         "cached frozen word features (the authors have no non-BERT path)",
)
