"""Missingness (m): modality dropout (paper App. C.2, DESIGN §5).

Each modality of each sample is dropped independently with probability m; a sample that loses all three is
redrawn (all three modalities afresh) until it keeps at least one. The result is a presence mask (N, 3) in the
order T, A, V. RIDER-MoE replaces h_m by MASK_m where a modality is absent; baselines get ``zero_absent``.

Because of the redraw, the per-modality drop rate is m (1 - m^2) / (1 - m^3), not m: 0.194 at m = .2,
0.59 at m = .8. That is what "redrawn if all three drop" implies; tests check this rate.

Common random numbers across severities: one uniform u per (sample, modality), dropped where u < m, so a
modality dropped at m = .2 is dropped at .4 too, except where a redraw intervened. Redraws use a stream keyed by
the severity's value, so the plan at one severity does not depend on which other severities are in the grid.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rider.data.cache import MASKED_WORD
from rider.stress.inputs import FEATURE_KEYS, MODALITIES


def expected_drop_rate(m: float) -> float:
    """Per-modality drop probability once samples with all three dropped are redrawn."""
    return m * (1 - m**2) / (1 - m**3) if m > 0 else 0.0


def draw_presence(base_u: np.ndarray, m: float, redraw_rng: np.random.Generator) -> np.ndarray:
    """(N, 3) bool presence at severity m from base uniforms (N, 3); never all three False.

    Raises:
        ValueError: m outside [0, 1) (at m = 1 every redraw drops all three).
    """
    if not 0 <= m < 1:
        raise ValueError(f"missingness severity must lie in [0, 1), got {m}")
    dropped = base_u < m  # (N, 3)
    while True:
        redo = np.flatnonzero(dropped.all(axis=1))
        if redo.size == 0:
            return ~dropped
        dropped[redo] = redraw_rng.random((redo.size, len(MODALITIES))) < m


def zero_absent(arrays: Mapping[str, np.ndarray], presence: np.ndarray) -> dict[str, np.ndarray]:
    """Zero every feature of absent modalities (the baselines' view of a missing modality); with ``words``, an
    absent text's real words become ``MASKED_WORD``.

    Args:
        arrays: test arrays, never modified; ``lengths`` is kept (the padding mask is not a modality).
        presence: (N, 3) bool, order T, A, V.

    Returns:
        A new dict; arrays of a modality absent somewhere are new copies, the others are the input objects.
    """
    presence = np.asarray(presence, dtype=bool)
    n = np.asarray(arrays["lengths"]).shape[0]
    if presence.shape != (n, len(MODALITIES)):
        raise ValueError(f"presence has shape {presence.shape}, expected ({n}, {len(MODALITIES)})")
    out = dict(arrays)
    for j, modality in enumerate(MODALITIES):
        absent = ~presence[:, j]  # (N,)
        if not absent.any():
            continue
        for key in FEATURE_KEYS[modality]:
            if key in arrays:
                y = arrays[key].copy()
                y[absent] = 0
                out[key] = y
        if modality == "text" and "words" in arrays:  # every real word of an absent text is masked
            real = np.arange(arrays["words"].shape[1])[None, :] < np.asarray(arrays["lengths"])[:, None]  # (N, L)
            words = np.array(arrays["words"], dtype=object)
            words[absent[:, None] & real] = MASKED_WORD
            out["words"] = words
    return out
