"""MMA, a Mixture of Multimodal Adapters (Chen, Wang, Ben, Tang and Hao, NAACL 2025, "Mixture of Multimodal
Adapters for Sentiment Analysis", pages 1822-1833), a baseline of the paper's Tables 1 and 2.

No code of the authors' could be found (GitHub, the ACL Anthology, MMSA), and of the paper only its abstract:
MMA inserts adapters into a frozen pre-trained language model (PLM); a "mixture-of-multimodal-experts module
captures and fuses emotional movements from different data", and "a compression parameter for each expert"
keeps the trainable part small (about 6 M parameters against AcFormer's 130 M). The abstract and the title are the
specification; every detail below is our decision, listed so it can be held against the paper once it is at hand.

The network, per sample (Eq. numbers are ours, the paper's are not known):
1. text: either the hidden states of a frozen PLM (``text_encoder: lm``, a local Hugging Face folder read with
   ``AutoModel``; the model tokenises the segment's words itself), or the cached frozen word features
   (``text_encoder: features``, the default run; see "Frozen-feature mode" below);
2. after every PLM layer, an MMA layer adds to each token's hidden state h (D) a routed mixture of three
   bottleneck experts, one per modality:
       z_T = GELU(W_T h),  z_A = GELU(W_A h + U_A a),  z_V = GELU(W_V h + U_V v)   (r = D // compression)  (M1)
       g = softmax(R [h; a; v])                                                  (3 gates per token)      (M2)
       h <- h + sum_m g_m * P_m dropout(z_m)                                                              (M3)
   where a, v are the audio and vision features of the token's word (word-aligned streams; special tokens and
   words past the encoder's limit get zeros);
3. masked mean of the last hidden states over the sample's tokens, then a linear regression head.
Trained on the task loss alone (L1, Eq. 2 of RIDER-MoE), as every regression baseline here.

Decisions (the paper's text was not available)
- Three experts, one per modality (T, A, V): "multimodal experts" read as modality experts. The audio and vision
  experts see the text hidden state as well (their down-projections are summed), so each expert is an adapter of
  the PLM conditioned on one stream, and the text expert is a plain bottleneck adapter (Houlsby et al., 2019).
- "A compression parameter for each expert": the bottleneck width r = D // compression, one ``compression`` for
  all three experts. compression = 8 on BERT-base (D = 768, 12 layers) gives 5,499,769 trainable parameters, the
  abstract's "6M" order (the count test shows the arithmetic).
- The router is dense (softmax over all three experts per token, no top-k: with three experts sparsity saves
  nothing) and conditioned on the token's text, audio and vision features, as the title's "mixture" says; no
  load-balancing loss (none is mentioned).
- Placement: sequentially after each PLM layer's output (Houlsby's position, on the layer's output rather than
  inside its two sub-layers), found generically as the PLM's list of ``num_hidden_layers`` layers.
- Initialisation near the identity (Houlsby): the up-projections P_m start at N(0, 0.01^2), zero bias, so the
  frozen PLM's function is barely changed at the start and every adapter parameter gets a gradient at step 1.
- Read-out: mean over the tokens the attention mask marks (CLS and SEP included, so a segment without words still
  has two tokens), not the [CLS] vector: the frozen PLM's [CLS] was never trained for this task.
- The PLM stays frozen and in eval mode (no dropout); it is kept out of ``parameters()`` and ``state_dict()``
  (the checkpoint holds the adapters and the head; the PLM is loaded again from ``lm_path`` when the model is
  rebuilt), and it follows the adapters' device.

Words (``text_encoder: lm``): the model is called with ``words`` (B, L) strings, the cache's ``/<split>/words``;
'' is padding and the SDK's silence token 'sp' is left out, as in the BERT features (rider.data.bert). A word
the stress plan zeroed (text noise, or a missing text modality) arrives as ``MASKED_WORD`` and reaches the PLM as
its mask token (its unknown token if it has none): the PLM's own "nothing here" marker, the closest analogue of a
zeroed feature vector. The cached text features are then not read.

Frozen-feature mode (``text_encoder: features``, the default run): no PLM on the CPU budget. The cached frozen
word features (GloVe 300, or frozen BERT-family 768, whose encoder already did the PLM's contextualising) stand in
for the PLM's hidden states; ``layers`` MMA layers (M1-M3) are stacked on them directly, the frozen layers between
them being absent. ``hidden`` null keeps the feature width (no projection: at BERT width and 12 layers the count
equals the lm mode's on BERT-base); a number projects the features to that width first (a trainable Linear).

Shapes: B batch, L words, T sub-tokens, D hidden, r bottleneck, M = 3 modalities (experts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rider.config import ConfigSection
from rider.data.cache import MASKED_WORD, PADDING_WORD, SILENCE
from rider.model.kind import ModelKind, check_input_widths
from rider.model.objective import TaskLoss, task_objective

TEXT_ENCODERS = ("features", "lm")


@dataclass(frozen=True)
class MMAConfig(ConfigSection):
    """MMA's hyper-parameters. The paper's are not known (module docstring): the defaults are our decisions."""

    text_encoder: str = "features"  # features: adapters on the cached frozen word features; lm: inside a frozen PLM
    lm_path: str | None = None  # lm: a local folder Hugging Face AutoModel/AutoTokenizer load (save_pretrained)
    layers: int = 12  # features: MMA layers stacked on the features (BERT-base has 12 layers); lm: one per PLM layer
    hidden: int | None = None  # features: width D the features are projected to; null = the feature width
    compression: int = 8  # r = D // compression per expert; 8 on BERT-base: 5.5 M trainable (the abstract's 6M)
    dropout: float = 0.1  # on each expert's bottleneck (Houlsby adapters; BERT's hidden dropout)
    # Inputs, set by the trainer from the cache: GloVe text (768 BERT-family), COVAREP audio, Facet vision.
    text_dim: int = 300
    audio_dim: int = 74
    vision_dim: int = 35
    max_len: int = 50

    def __post_init__(self):
        if self.text_encoder not in TEXT_ENCODERS:
            raise ValueError(f"MMAConfig: text_encoder = {self.text_encoder!r}, expected one of {TEXT_ENCODERS}")
        if self.text_encoder == "lm" and not self.lm_path:
            raise ValueError("MMAConfig: text_encoder = 'lm' needs lm_path, a local folder of a Hugging Face model")
        if self.text_encoder == "lm" and self.hidden is not None:
            raise ValueError(f"MMAConfig: hidden = {self.hidden} is for text_encoder 'features'; with 'lm' the "
                             "width is the language model's")
        for name in ("layers", "compression", "text_dim", "audio_dim", "vision_dim", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"MMAConfig: {name} = {getattr(self, name)} must be >= 1")
        if self.hidden is not None and self.hidden < 1:
            raise ValueError(f"MMAConfig: hidden = {self.hidden} must be >= 1 (or null: the feature width)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MMAConfig: dropout = {self.dropout} must be in [0, 1)")


class MMAOutput(NamedTuple):
    prediction: torch.Tensor  # (B,)
    gates: torch.Tensor  # (B, T, M) the last MMA layer's expert weights


class MultimodalAdapterMixture(nn.Module):
    """One MMA layer (M1-M3): a residual, per-token mixture of a text, an audio and a vision bottleneck adapter."""

    def __init__(self, width: int, audio_dim: int, vision_dim: int, compression: int, dropout: float):
        super().__init__()
        bottleneck = max(1, width // compression)
        self.down = nn.ModuleList(nn.Linear(width, bottleneck) for _ in range(3))  # W_T, W_A, W_V
        self.audio_in = nn.Linear(audio_dim, bottleneck)  # U_A
        self.vision_in = nn.Linear(vision_dim, bottleneck)  # U_V
        self.up = nn.ModuleList(nn.Linear(bottleneck, width) for _ in range(3))  # P_T, P_A, P_V
        self.router = nn.Linear(width + audio_dim + vision_dim, 3)  # R
        self.dropout = nn.Dropout(dropout)
        for up in self.up:  # near the identity at the start (Houlsby et al., 2019)
            nn.init.normal_(up.weight, std=0.01)
            nn.init.zeros_(up.bias)

    def forward(self, h: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor):
        gates = torch.softmax(self.router(torch.cat([h, audio, vision], dim=-1)), dim=-1)  # (B, T, M)  M2
        z = (F.gelu(self.down[0](h)),  # (B, T, r)  M1
             F.gelu(self.down[1](h) + self.audio_in(audio)),
             F.gelu(self.down[2](h) + self.vision_in(vision)))
        experts = torch.stack([up(self.dropout(z_m)) for up, z_m in zip(self.up, z)], dim=-1)  # (B, T, D, M)
        return h + (experts * gates.unsqueeze(-2)).sum(-1), gates  # (B, T, D)  M3


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, D) mean of h (B, T, D) over the positions mask (B, T) marks; zeros for a sample with none."""
    weights = mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
    return (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def language_model_layers(lm: nn.Module) -> nn.ModuleList:
    """The PLM's transformer layers: its first ModuleList of ``num_hidden_layers`` modules (BERT, RoBERTa, MiniLM:
    ``encoder.layer``; DistilBERT: ``transformer.layer``), so no model's name is needed."""
    count = int(getattr(lm.config, "num_hidden_layers", 0))
    for module in lm.modules():
        if isinstance(module, nn.ModuleList) and count and len(module) == count:
            return module
    raise ValueError(f"language model {type(lm).__name__}: no list of its {count} layers to put adapters after")


class MMA(nn.Module):
    def __init__(self, cfg: MMAConfig):
        super().__init__()
        self.cfg = cfg
        self._lm = None  # (tokenizer, frozen PLM, its layers): a tuple, so no parameter of it is registered
        if cfg.text_encoder == "lm":
            from rider.data.bert import load_encoder, token_limit

            tokenizer, lm = load_encoder(cfg.lm_path)
            lm.requires_grad_(False)
            self._lm = (tokenizer, lm, token_limit(tokenizer, lm))
            width, layers = int(lm.config.hidden_size), language_model_layers(lm)
            self.project = nn.Identity()
            for layer in layers:
                layer.register_forward_hook(self._adapt_layer_output)
            count = len(layers)
        else:
            width = cfg.hidden or cfg.text_dim
            self.project = nn.Identity() if cfg.hidden is None else nn.Linear(cfg.text_dim, width)
            count = cfg.layers
        self.adapters = nn.ModuleList(MultimodalAdapterMixture(width, cfg.audio_dim, cfg.vision_dim, cfg.compression,
                                                               cfg.dropout) for _ in range(count))
        self.head = nn.Linear(width, 1)
        self._streams = None  # lm mode, during a forward: (audio, vision) per token, and the next adapter's index

    # The frozen PLM lives outside the module tree: it follows the adapters' device and dtype, and stays in eval mode.
    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self._lm is not None:
            self._lm[1]._apply(fn, recurse)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self._lm is not None:
            self._lm[1].eval()
        return self

    def _adapt_layer_output(self, layer, inputs, output):
        if self._streams is None:  # the PLM called on its own, not through forward: it stays the plain PLM
            return output
        audio, vision, gates = self._streams
        hidden = output[0] if isinstance(output, tuple) else output  # (B, T, D)
        adapter = self.adapters[len(gates)]
        hidden, g = adapter(hidden, audio, vision)
        gates.append(g)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    def lm_inputs(self, words: np.ndarray, lengths: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor):
        """Tokenise a batch's words (B, L) for the PLM: returns its inputs and the audio (B, T, Da) and vision
        (B, T, Dv) of each token's word (zeros for special tokens). Padding ('') and silence ('sp') are left out;
        ``MASKED_WORD`` becomes the PLM's mask token (its unknown token without one)."""
        tokenizer, lm, limit = self._lm
        mask_token = tokenizer.mask_token or tokenizer.unk_token
        words = np.asarray(words, dtype=object)
        kept, texts = [], []
        for b, n in enumerate(lengths.tolist()):
            positions = [j for j in range(n) if words[b, j] not in (PADDING_WORD, SILENCE)]
            kept.append(positions)
            texts.append([mask_token if words[b, j] == MASKED_WORD else str(words[b, j]) for j in positions] or [""])
        device = audio.device
        batch = tokenizer(texts, is_split_into_words=True, padding=True, truncation=True, max_length=limit,
                          return_tensors="pt")
        word_of_token = torch.full(batch["input_ids"].shape, -1, dtype=torch.long)  # (B, T) word position or -1
        for b, positions in enumerate(kept):
            for t, w in enumerate(batch.word_ids(b)):
                if w is not None and positions:
                    word_of_token[b, t] = positions[w]
        word_of_token = word_of_token.to(device)
        real = (word_of_token >= 0).unsqueeze(-1)  # (B, T, 1)
        gather = word_of_token.clamp(min=0).unsqueeze(-1)  # (B, T, 1)
        audio_tokens = torch.gather(audio, 1, gather.expand(-1, -1, audio.shape[-1])) * real  # (B, T, Da)
        vision_tokens = torch.gather(vision, 1, gather.expand(-1, -1, vision.shape[-1])) * real  # (B, T, Dv)
        return {k: v.to(device) for k, v in batch.items()}, audio_tokens, vision_tokens

    def forward(self, text, audio, vision, lengths, words=None) -> MMAOutput:
        check_input_widths("mma", self.cfg, text=text, audio=audio, vision=vision)
        if self._lm is not None:
            if words is None:
                raise ValueError("mma: text_encoder 'lm' reads the segments' words; it was called without them")
            inputs, audio_tokens, vision_tokens = self.lm_inputs(words, lengths, audio, vision)
            gates: list[torch.Tensor] = []
            self._streams = (audio_tokens, vision_tokens, gates)
            try:
                hidden = self._lm[1](**inputs).last_hidden_state  # (B, T, D), adapters applied by the hooks
            finally:
                self._streams = None
            mask = inputs["attention_mask"].bool()  # (B, T)
        else:
            # Every step is per word: padded positions are computed but never reach the read-out.
            mask = torch.arange(text.shape[1], device=text.device)[None, :] < lengths[:, None]  # (B, L)
            hidden = self.project(text)  # (B, L, D)
            gates = []
            for adapter in self.adapters:
                hidden, g = adapter(hidden, audio, vision)
                gates.append(g)
        pooled = masked_mean(hidden, mask)  # (B, D)
        return MMAOutput(prediction=self.head(pooled).squeeze(-1), gates=gates[-1])


PAPER = {  # the authors' sizes are not known: BERT-base's 12 layers at compression 8 (module docstring)
    "mosi": MMAConfig(text_encoder="features", layers=12, hidden=None, compression=8, dropout=0.1, text_dim=768),
    "mosei": MMAConfig(text_encoder="features", layers=12, hidden=None, compression=8, dropout=0.1, text_dim=768),
}

KIND = ModelKind(
    name="mma", config=MMAConfig, loss=TaskLoss, build=MMA, objective=task_objective, absent="zeros", paper=PAPER,
    words=lambda cfg: cfg.text_encoder == "lm", title="MMA",
    note="no code or full text of the paper was available (only its abstract): the adapter mixture is our reading "
         "of it; text_encoder 'features' (the default run) stacks the adapters on the cached frozen word features "
         "instead of inside a frozen language model",
)
