"""DIR semantic checks (App. C.4, Eqs. 55-58) on hand-made expert outputs."""

import numpy as np
import pytest

from rider.diagnostics import dir_diagnostics, latent_correlations


def outputs():
    """Two samples, views (0, -T, -A, -V), experts (U_T, U_A, U_V, R, S)."""
    y = np.zeros((4, 2, 5))
    y[:, :, 0] = [[1.0, 2.0], [9.0, 9.0], [1.0, 2.0], [1.5, 2.0]]  # U_T moves only under -V (present views: -A, -V)
    y[:, :, 3] = [[1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 0.0]]  # R: views 1,1,3,3 for sample 0; constant for 1
    y[:, :, 4] = [[2.0, -1.0], [0.3, 0.0], [-0.3, 0.0], [0.0, 0.6]]  # S
    return y


def test_hand_computed_values():
    y = outputs()
    pi = np.full((2, 5), 0.2)
    labels = np.array([1.0, -1.0])
    result = dir_diagnostics(y, pi, labels)
    # Eq. 55: U_T over P_T\{0} = {-A, -V}: sample 0 (|1-1| + |1-1.5|)/2 = 0.25, sample 1 0 -> 0.125; U_A, U_V are 0.
    assert result["delta_u"] == pytest.approx({"T": 0.125, "A": 0.0, "V": 0.0})
    assert result["delta_u_avg"] == pytest.approx(0.125 / 3)
    # Eq. 56: sample variance of (1, 1, 3, 3) is 4/3; of (0, 0, 0, 0) is 0.
    assert result["var_r"] == pytest.approx((4 / 3) / 2)
    # Eq. 57: sample 0 (0.3 + 0.3 + 0)/3 = 0.2, sample 1 0.6/3 = 0.2.
    assert result["off_s"] == pytest.approx(0.2)
    # Eq. 58: pi_S y_S = (0.4, -0.2); delta = y - 0.2 * (sum of the other full-view outputs).
    delta = labels - 0.2 * np.array([1.0 + 1.0, 2.0 + 0.0])
    assert result["corr_syn_residual"] == pytest.approx(np.corrcoef([0.4, -0.2], delta)[0, 1])


def test_shape_is_checked():
    with pytest.raises(ValueError, match="4 views"):
        dir_diagnostics(np.zeros((1, 3, 5)), np.zeros((3, 5)), np.zeros(3))


def test_latent_correlations_pick_out_the_matching_expert():
    rng = np.random.default_rng(0)
    latents = {"r": rng.normal(size=200), "s": rng.choice([-1.0, 1.0], 200), "u": rng.normal(size=(200, 3))}
    y = np.stack([latents["u"][:, 0], latents["u"][:, 1], latents["u"][:, 2], latents["r"], latents["s"]], axis=1)
    corr = latent_correlations(y, latents)
    assert corr["R"]["r"] == pytest.approx(1.0) and corr["S"]["s"] == pytest.approx(1.0)
    assert corr["U_A"]["u_A"] == pytest.approx(1.0) and abs(corr["U_A"]["r"]) < 0.2
