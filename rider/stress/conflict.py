"""Cross-modal conflict (c): audio and/or vision from another test sample of opposite polarity (App. C.2, DESIGN §5).

With probability c a sample (the receiver) gets its audio, its vision, or both (uniform over the three choices)
from a donor; its text, length and label stay. Donors:

- polarity is the label's sign. A positive receiver draws from the negative samples, a negative one from the
  positive ones, and a receiver labelled exactly 0 (no polarity) from every non-zero sample, either sign;
- within that pool, donor j is drawn with probability proportional to |label_i - label_j| (never 0 there);
- only samples with at least one real word can donate (a length-0 donor carries no signal);
- if a receiver's pool is empty (a test set without one polarity), it falls back to every other sample with
  length > 0, still weighted by label distance (uniform if all distances are 0); the plan counts these.

Fitting the donor's rows to the receiver's length: the receiver keeps its own length (its text defines the
words), and its real positions t = 0..len_i-1 take the donor's real row ``t * len_d // len_i`` (nearest-row
time-stretch of the donor's whole real span). Rows >= len_i stay the receiver's padding. Copying donor rows as is
would leave zero rows inside the receiver's span when the donor is shorter (a disguised timestep dropout that
dilutes the donor signal in masked mean pooling) and cut off the donor's content when it is longer; stretching
keeps the donor's full signal and the invariant that rows >= length are padding. Equal lengths copy exactly.

Common random numbers across severities: each sample draws, once, a uniform u, a choice of modalities and a donor;
at severity c the samples with u < c are swapped. What is swapped at c = .25 is swapped, identically, at .5.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rider.stress.inputs import FEATURE_KEYS, MODALITIES

# Rows: the three swap choices, drawn uniformly; columns T, A, V (text is never swapped).
SWAP_CHOICES = np.array(
    [
        [False, True, False],  # audio only
        [False, False, True],  # vision only
        [False, True, True],  # audio and vision
    ]
)


def draw_donors(rng: np.random.Generator, labels: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One donor per sample: (donor (N,) int64, fallback (N,) bool where no opposite-polarity donor existed).

    Raises:
        ValueError: a sample that has no other sample with length > 0 to draw from.
    """
    y = np.asarray(labels, dtype=np.float64)
    n = y.shape[0]
    usable = np.asarray(lengths) > 0
    pools = {
        1: np.flatnonzero(usable & (y < 0)),  # for positive receivers
        -1: np.flatnonzero(usable & (y > 0)),  # for negative receivers
        0: np.flatnonzero(usable & (y != 0)),  # for receivers labelled 0
    }
    u = rng.random(n)  # (N,) one uniform per receiver, inverted through the weights' CDF
    donor = np.empty(n, dtype=np.int64)
    fallback = np.zeros(n, dtype=bool)
    for i in range(n):
        cand = pools[int(np.sign(y[i]))]
        if cand.size == 0:
            fallback[i] = True
            cand = np.flatnonzero(usable & (np.arange(n) != i))
            if cand.size == 0:
                raise ValueError(f"sample {i}: no other test sample with length > 0 to take audio/vision from")
        weights = np.abs(y[i] - y[cand])
        if weights.sum() == 0:
            weights = np.ones_like(weights)
        cdf = np.cumsum(weights)
        pick = min(int(np.searchsorted(cdf, u[i] * cdf[-1], side="right")), cand.size - 1)
        donor[i] = cand[pick]
    return donor, fallback


def swaps_at(u: np.ndarray, choice: np.ndarray, donor: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Donor (N,) int32 (-1 where not swapped) and swapped (N, 3) bool (T, A, V) at severity c."""
    hit = u < c  # (N,)
    donor_at = np.where(hit, donor, -1).astype(np.int32)
    swapped = SWAP_CHOICES[choice] & hit[:, None]  # (N, 3)
    return donor_at, swapped


def apply_conflict(arrays: Mapping[str, np.ndarray], donor: np.ndarray, swapped: np.ndarray) -> dict[str, np.ndarray]:
    """Swap in donors' audio/vision, stretched to each receiver's length (see the module docstring).

    Donor rows always come from the clean inputs, even when the donor is itself a receiver. Returns a new dict;
    swapped modalities are new arrays, the others are the input objects (text, lengths, labels, ids always).
    """
    out = dict(arrays)
    lengths = np.asarray(arrays["lengths"]).astype(np.int64)
    for j, modality in enumerate(MODALITIES):
        rows = np.flatnonzero(swapped[:, j])  # (R,) receivers of this modality
        if rows.size == 0:
            continue
        if modality == "text":
            raise ValueError("conflict never swaps text, but the plan marks text as swapped")
        src_rows = donor[rows].astype(np.int64)  # (R,)
        if np.any(src_rows < 0):
            raise ValueError(f"a sample marked swapped for {modality} has no donor")
        len_r = lengths[rows][:, None]  # (R, 1)
        len_d = lengths[src_rows][:, None]  # (R, 1)
        t = np.arange(arrays[FEATURE_KEYS[modality][0]].shape[1])[None, :]  # (1, L)
        src_t = t * len_d // np.maximum(len_r, 1)  # (R, L) donor row for each receiver position
        r_idx, t_idx = np.nonzero(t < len_r)  # real positions of the receivers
        for key in FEATURE_KEYS[modality]:
            if key not in arrays:
                continue
            x = arrays[key]  # (N, L, F)
            y = x.copy()
            y[rows[r_idx], t_idx] = x[src_rows[r_idx], src_t[r_idx, t_idx]]
            out[key] = y
    return out
