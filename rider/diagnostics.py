"""DIR semantic checks (paper App. C.4, Eqs. 55-58) and agreement with the synthetic ground truth.

Inputs are test-time expert outputs on the four views, ``y`` (V=4, N, E) in view order (0, -T, -A, -V) and
expert order (U_T, U_A, U_V, R, S), and the full-view routing weights ``pi`` (N, E).
"""

from __future__ import annotations

import numpy as np

from rider.metrics import pearson
from rider.model.kind import INTERACTION_EXPERTS as EXPERTS

U_EXPERTS = (0, 1, 2)  # U_T, U_A, U_V: their modality m is at view index 1 + m when masked
R, S = EXPERTS.index("R"), EXPERTS.index("S")
PRESENT_VIEWS = {0: (2, 3), 1: (1, 3), 2: (1, 2)}  # P_m \ {0}: Eq. 42 — the masked views where m stays


def dir_diagnostics(y: np.ndarray, pi: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ΔU_avg (Eq. 55), Var(R) (Eq. 56), Off(S) (Eq. 57) and corr(π_S·y_S, δ) (Eq. 58)."""
    if y.shape[0] != 4 or y.shape[2] != len(EXPERTS):
        raise ValueError(f"expert outputs of shape {y.shape}; DIR checks need (4 views, N, {len(EXPERTS)} experts)")
    delta_u = [
        np.mean(np.mean([np.abs(y[0, :, m] - y[p, :, m]) for p in PRESENT_VIEWS[m]], axis=0))  # Eq. 55
        for m in U_EXPERTS
    ]
    var_r = float(np.mean(np.var(y[:, :, R], axis=0, ddof=1)))  # Eq. 56: sample variance over the four views
    off_s = float(np.mean(np.mean(np.abs(y[1:, :, S]), axis=0)))  # Eq. 57
    without_s = (pi * y[0]).sum(axis=1) - pi[:, S] * y[0, :, S]  # Eq. 49: ŷ_\S
    delta = labels - without_s  # Eq. 50 (the stop-gradient is irrelevant at test time)
    return {
        "delta_u_avg": float(np.mean(delta_u)),
        "delta_u": dict(zip(("T", "A", "V"), map(float, delta_u))),
        "var_r": var_r,
        "off_s": off_s,
        "corr_syn_residual": pearson(pi[:, S] * y[0, :, S], delta),  # Eq. 58
    }


def latent_correlations(y_full: np.ndarray, latents: dict[str, np.ndarray],
                        experts: tuple[str, ...] = EXPERTS) -> dict[str, dict[str, float]]:
    """Pearson correlation of every expert's full-view output with every ground-truth latent.

    The intended pairs are U_m ~ u_m, R ~ r and S ~ s; the whole matrix shows where roles leaked.
    """
    columns = {"r": latents["r"], "s": latents["s"],
               **{f"u_{m}": latents["u"][:, i] for i, m in enumerate(("T", "A", "V"))}}
    return {expert: {name: pearson(y_full[:, e], value) for name, value in columns.items()}
            for e, expert in enumerate(experts)}
