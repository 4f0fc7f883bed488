"""The model's and the loss's hyper-parameters, frozen, with the paper's MOSI values as defaults.

config.yaml flows into ``ModelConfig.from_dict`` / ``LossWeights.from_dict``; both reject a key they do not
know, because a misspelt ablation switch would otherwise silently train the full model under the wrong name.
"""

from __future__ import annotations

from dataclasses import dataclass

from rider.config import ConfigSection

MASK_KINDS = ("learned", "zeros")
RELIABILITY_KINDS = ("relative", "absolute")
PRIOR_FEATURES = ("raw", "standardized")


@dataclass(frozen=True)
class ModelConfig(ConfigSection):
    """Everything that shapes the network. Loss coefficients live in ``LossWeights``: they change the
    objective, not the model, and a checkpoint is rebuilt from this config alone."""

    # MoE hidden size and Transformer experts: App. C.5, CMU-MOSI.
    d_model: int = 128
    expert_layers: int = 4
    expert_heads: int = 4
    expert_ff: int = 256
    dropout: float = 0.3  # App. C.5; also used in the encoders (the paper names one dropout rate)
    # Reliability-aware router: App. C.5 (same for MOSI and MOSEI).
    num_classes: int = 7  # K probe classes: round(clip(y, -3, 3)) + 3
    alpha: float = 0.7  # Eq. 28: weight of entropy reliability against fused-context importance
    gamma: float = 1.0  # Eq. 33: consensus temperature
    prior_strength: float = 1.0  # Eq. 38: lambda_p; 0 is the "w/o prior injection" ablation
    eps: float = 1e-8  # Eqs. 24, 31, 38
    # Unimodal encoders g_m: the paper gives no sizes. One layer keeps the encoders a small share of the
    # parameters (the experts carry the capacity) and matches the prototype measured in DESIGN §8.
    encoder_layers: int = 1
    encoder_heads: int = 4  # divides d_model at both the MOSI (128) and MOSEI (512) sizes
    # (the encoders' feed-forward width is expert_ff and their dropout is dropout: no separate knobs)
    # Inputs: word-aligned GloVe text (768 for BERT), COVAREP audio, Facet vision; L = 50 words.
    text_dim: int = 300
    audio_dim: int = 74
    vision_dim: int = 35
    max_len: int = 50
    mask_kind: str = "learned"  # MASK_m: a learned vector per modality, or zeros
    # Table 3 ablation switches.
    use_consensus: bool = True  # False: cons_score leaves the prior's feature vector (Eq. 34 has 3 entries)
    masked_views: bool = True  # False: train on the full view only (no uni/red/syn-off terms)
    single_expert: bool = False  # True: one expert, wider feed-forward, parameter count matched
    # Remedies for a router that does not react (issue "Does the routing react?", README); the paper's Eqs. by default.
    # relative: r_m from Eqs. 25, 28-29, a softmax over modalities (r sums to 1, so r_bar = 1/M always);
    # absolute: a_m = 1 - H_m / log K in [0, 1] replaces Rel_m and Eq. 29's normalisation is dropped, so r_bar falls
    # when every modality degrades (rider.model.rider_moe.router.absolute_reliability).
    reliability: str = "relative"
    # raw: Eq. 34's f = [r, cons_score] enters W_prior as is; standardized: f is standardised with running
    # statistics first, so W_prior sees its variation between samples instead of a narrow band around a constant.
    prior_features: str = "raw"
    # Implementation choice, not a model change: the five experts as stacked weights (fast) or five modules.
    grouped_experts: bool = True

    def __post_init__(self):
        for name in ("d_model", "expert_layers", "expert_heads", "expert_ff", "encoder_layers", "encoder_heads",
                     "text_dim", "audio_dim", "vision_dim", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig: {name} = {getattr(self, name)} must be >= 1")
        for name in ("expert_heads", "encoder_heads"):
            if self.d_model % getattr(self, name):
                raise ValueError(f"ModelConfig: d_model = {self.d_model} is not divisible by {name} = "
                                 f"{getattr(self, name)}")
        if self.num_classes != 7:
            raise ValueError(f"ModelConfig: num_classes = {self.num_classes}; the probe classes are "
                             "round(clip(y, -3, 3)) + 3, which is 7 classes")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig: dropout = {self.dropout} must be in [0, 1)")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"ModelConfig: alpha = {self.alpha} must be in [0, 1] (Eq. 28)")
        if self.gamma <= 0:
            raise ValueError(f"ModelConfig: gamma = {self.gamma} must be > 0 (Eq. 33)")
        if self.prior_strength < 0:
            raise ValueError(f"ModelConfig: prior_strength = {self.prior_strength} must be >= 0 (Eq. 38)")
        if self.eps <= 0:
            raise ValueError(f"ModelConfig: eps = {self.eps} must be > 0")
        for name, allowed in (("reliability", RELIABILITY_KINDS), ("prior_features", PRIOR_FEATURES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"ModelConfig: {name} = {getattr(self, name)!r}, expected one of {allowed}")
        if self.mask_kind not in MASK_KINDS:
            raise ValueError(f"ModelConfig: mask_kind = {self.mask_kind!r}, expected one of {MASK_KINDS}")



@dataclass(frozen=True)
class LossWeights(ConfigSection):
    """Eq. 3's coefficients (App. C.5, MOSI) and the two synergy sub-term switches of Table 3."""

    lambda_cls: float = 0.05
    lambda_pid: float = 0.05
    lambda_syn: float = 0.05
    use_syn_off: bool = True
    use_syn_res: bool = True

    def __post_init__(self):
        for name in ("lambda_cls", "lambda_pid", "lambda_syn"):
            if getattr(self, name) < 0:
                raise ValueError(f"LossWeights: {name} = {getattr(self, name)} must be >= 0")

    def coefficients(self) -> dict[str, float]:
        """Eq. 3: each unweighted term's weight; L_PID = uni + red (Eq. 47), L_syn = off + res (Eq. 52)."""
        return {
            "task": 1.0,
            "cls": self.lambda_cls,
            "uni": self.lambda_pid,
            "red": self.lambda_pid,
            "syn_off": self.lambda_syn * self.use_syn_off,
            "syn_res": self.lambda_syn * self.use_syn_res,
        }



# App. C.5: what changes from the MOSI defaults for CMU-MOSEI (probe/router settings stay the same).
MOSEI_MODEL = dict(d_model=512, expert_layers=8, expert_heads=8, expert_ff=1024)
MOSEI_LOSS = dict(lambda_cls=0.1)


def paper_config(dataset: str) -> tuple[ModelConfig, LossWeights]:
    """The App. C.5 settings for ``"mosi"`` or ``"mosei"``."""
    if dataset == "mosi":
        return ModelConfig(), LossWeights()
    if dataset == "mosei":
        return ModelConfig(**MOSEI_MODEL), LossWeights(**MOSEI_LOSS)
    raise ValueError(f"paper_config: unknown dataset {dataset!r}, expected 'mosi' or 'mosei'")
