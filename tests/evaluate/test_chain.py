"""The signal-chain statistics (rider.chain, rider.metrics.auroc, rider.stress.corrupted_modalities) on hand-made
cases whose answers are worked out in the comments."""

import math

import numpy as np
import pytest

from rider.chain import latent_diagonality, quality_tracking, separation, signal_means
from rider.metrics import auroc, spearman
from rider.model.kind import ModelKind, Signal
from rider.model.rider_moe.rider_moe import KIND as RIDER_MOE
from rider.stress import build_plan, corrupted_modalities, read_plan

MODALITIES = ("text", "audio", "vision")
R = Signal("reliability", "modality", "falls")
H = Signal("entropy", "modality", "rises")
CONS = Signal("consensus", "sample", "falls")
PRIOR = Signal("expert_prior", "expert")
INTENDED = {"U_T": "u_T", "U_A": "u_A", "U_V": "u_V", "R": "r", "S": "s"}


def test_auroc_counts_pairs_and_half_ties():
    # positives 2, 3 against negatives 1, 4: 2 > 1, 2 < 4, 3 > 1, 3 < 4 -> 2 of 4 pairs
    assert auroc([1, 2, 3, 4], [False, True, True, False]) == 0.5
    # every positive above every negative
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, True, False, True]) == 1.0
    # positive 1 against negatives 1 (tie: 1/2) and 2 (loses: 0) -> 0.5 / 2
    assert auroc([1, 1, 2], [True, False, False]) == 0.25
    assert auroc([5, 5, 5, 5], [True, False, True, False]) == 0.5  # a constant score separates nothing
    assert math.isnan(auroc([1, 2], [True, True]))  # no negatives
    with pytest.raises(ValueError, match="score has shape"):
        auroc([1, 2, 3], [True, False])


def test_spearman_on_ranks():
    # ranks of q: 3.5, 3.5, 2, 1; of r: 4, 2, 3, 1; deviations (1, 1, -.5, -1.5) and (1.5, -.5, .5, -1.5):
    # cov 1.5 - .5 - .25 + 2.25 = 3, sums of squares 4.5 and 5 -> 3 / sqrt(22.5)
    assert spearman(np.array([0.4, 0.3, 0.35, 0.1]), np.array([1, 1, 0.5, 0.2])) == pytest.approx(3 / 22.5 ** 0.5)


def presence_router(presence: np.ndarray) -> dict[str, np.ndarray]:
    """A router whose r_m is exactly the presence mask and whose consensus is 1 unless a modality is absent."""
    r = presence.astype(np.float64)  # (N, 3)
    return {"reliability": r, "entropy": 1 - r, "consensus": presence.all(axis=1).astype(np.float64),
            "expert_prior": np.full((presence.shape[0], 2), 0.5)}


def test_a_router_whose_reliability_is_the_presence_mask_separates_perfectly():
    rng = np.random.default_rng(0)
    present = rng.random((200, 3)) > 0.3  # (N, 3)
    present[:, 0] = True  # text never dropped: nothing to separate there
    clean = (presence_router(np.ones_like(present)), np.zeros_like(present))
    stressed = (presence_router(present), ~present)
    got = separation([clean, stressed], (R, H, CONS, PRIOR), MODALITIES)
    assert set(got) == {"reliability", "entropy", "consensus"}  # the prior claims no direction
    assert math.isnan(got["reliability"]["text"])
    assert got["reliability"]["audio"] == got["reliability"]["vision"] == 1.0
    assert got["entropy"]["audio"] == 1.0 and got["consensus"] == 1.0


def test_a_shuffled_signal_separates_nothing():
    rng = np.random.default_rng(1)
    n = 4000
    corrupted = rng.random((n, 3)) < 0.5
    shuffled = {"reliability": rng.permutation(np.where(corrupted, 0.0, 1.0) + rng.normal(0, 0.1, (n, 3)))}
    got = separation([(shuffled, corrupted)], (R,), MODALITIES)
    # the AUROC's std under no separation is sqrt((n+1)/(12 n_pos n_neg)) ~ 0.009 for n_pos = n_neg = 2000
    for value in got["reliability"].values():
        assert value == pytest.approx(0.5, abs=0.04)


def test_a_signal_that_moves_the_wrong_way_scores_below_a_half():
    corrupted = np.array([[False, True, False], [False, False, False]])
    wrong = {"reliability": np.array([[0.3, 0.5, 0.2], [0.3, 0.4, 0.3]])}  # the corrupted audio's r_A is higher
    assert separation([(wrong, corrupted)], (R,), MODALITIES)["reliability"]["audio"] == 0.0


def test_separation_pools_levels_and_reads_the_kinds_modalities():
    # Two levels of two samples; only audio and vision read. Level 1: nothing corrupted; level 2: sample 0's audio.
    clean = ({"reliability": np.array([[0.5, 0.5], [0.6, 0.4]])}, np.zeros((2, 3), dtype=bool))
    noisy = ({"reliability": np.array([[0.45, 0.55], [0.2, 0.8]])}, np.array([[False, True, False]] + [[False] * 3]))
    got = separation([clean, noisy], (R,), ("audio", "vision"))
    # audio (column 0 here): corrupted -0.45 against the others -0.5, -0.6, -0.2 -> beats two of three
    assert got["reliability"]["audio"] == pytest.approx(2 / 3)
    assert math.isnan(got["reliability"]["vision"])


def test_signal_means_per_axis():
    values = {"reliability": np.array([[0.2, 0.3, 0.5], [0.4, 0.3, 0.3]]), "consensus": np.array([0.9, 0.7]),
              "expert_prior": np.array([[0.25, 0.75], [0.75, 0.25]])}
    got = signal_means(values, (R, CONS, PRIOR), MODALITIES, ("R", "S"))
    assert got == {"reliability": pytest.approx({"text": 0.3, "audio": 0.3, "vision": 0.4}),
                   "consensus": pytest.approx(0.8), "expert_prior": {"R": 0.5, "S": 0.5}}
    with pytest.raises(ValueError, match="signal reliability: shape"):
        signal_means({"reliability": np.zeros((2, 2))}, (R,), MODALITIES, ())


def test_quality_tracking_on_hand_worked_values():
    quality = np.array([[1, 1, 1], [1, 0.4, 1], [0.5, 1, 1], [0.2, 1, 1]])
    r = np.array([[0.4, 0.3, 0.3], [0.3, 0.1, 0.6], [0.35, 0.35, 0.3], [0.1, 0.5, 0.4]])
    got = quality_tracking({"reliability": r}, quality, (R, CONS), MODALITIES)
    assert set(got) == {"reliability"}  # per-modality signals only
    text = {k: v["text"] for k, v in got["reliability"].items()}
    # degraded text (q < 1): r = .35, .1 against clean .4, .3; negated: -.35 > -.4, -.35 < -.3, -.1 > both -> 3/4
    assert text["auroc"] == 0.75
    assert text["spearman"] == pytest.approx(3 / 22.5 ** 0.5)  # the case of test_spearman_on_ranks
    assert got["reliability"]["auroc"]["audio"] == 1.0  # the one degraded audio has the lowest r_A
    assert math.isnan(got["reliability"]["auroc"]["vision"])  # no degraded vision
    assert math.isnan(got["reliability"]["pearson"]["vision"])  # constant q_V
    with pytest.raises(ValueError, match="quality latent of shape"):
        quality_tracking({"reliability": r}, quality[:, :2], (R,), MODALITIES)


def matrix(on: float, off: float) -> dict[str, dict[str, float]]:
    return {e: {z: on if z == INTENDED[e] else off for z in INTENDED.values()} for e in INTENDED}


def test_latent_diagonality_of_identity_uniform_and_swapped_roles():
    assert latent_diagonality(matrix(1.0, 0.0), INTENDED) == 1.0  # identity
    assert latent_diagonality(matrix(0.3, 0.3), INTENDED) == pytest.approx(0.0)  # uniform
    assert latent_diagonality(matrix(-0.9, 0.1), INTENDED) == pytest.approx(0.8)  # |corr|: the sign is a role too
    # the RIDER-MoE: U_T ~ s .45, U_A ~ r .71 off the diagonal; only R ~ r .58, S ~ s .42 on it
    leaked = matrix(0.0, 0.0)
    leaked["U_T"]["s"], leaked["U_A"]["r"], leaked["R"]["r"], leaked["S"]["s"] = 0.45, 0.71, 0.58, 0.42
    assert latent_diagonality(leaked, INTENDED) == pytest.approx((0.58 + 0.42) / 5 - (0.45 + 0.71) / 20)
    assert math.isnan(latent_diagonality({"single": {"r": 0.2}}, INTENDED))


def test_signals_are_declared_with_an_axis_and_a_direction():
    assert [s.field for s in RIDER_MOE.signals] == ["entropy", "relative_reliability", "importance", "reliability",
                                                     "mean_reliability", "consensus", "expert_prior"]
    with pytest.raises(ValueError, match="signal r: axis = 'time'"):
        Signal("r", "time")
    with pytest.raises(ValueError, match="corrupted = 'down'"):
        Signal("r", "modality", "down")
    with pytest.raises(ValueError, match="a signal over experts"):
        ModelKind(name="x", config=object, loss=object, build=None, objective=None, signals=(PRIOR,))


def test_corrupted_modalities_follow_the_plan(tiny_dataset, tmp_path):
    grids = {"noise": [0.0, 0.1, 0.5], "missing": [0.0, 0.6], "conflict": [0.0, 1.0]}
    plan = read_plan(build_plan(tiny_dataset["cache"], tmp_path / "plan.h5", grids=grids, seed=0))
    for stressor in grids:
        assert not corrupted_modalities(plan, stressor, 0.0).any()  # severity 0 changes nothing
    assert np.array_equal(corrupted_modalities(plan, "missing", 0.6), ~plan.levels["missing"][1]["presence"])
    assert np.array_equal(corrupted_modalities(plan, "conflict", 1.0), plan.levels["conflict"][1]["swapped"])
    noised = corrupted_modalities(plan, "noise", 0.1)
    real = plan.lengths > 0
    assert np.array_equal(noised[:, 1], real) and np.array_equal(noised[:, 2], real)  # Gaussian noise everywhere
    # text: corrupted iff round(.1 * length) > 0 tokens are zeroed, i.e. length >= 6 (round(.5) = 0, half to even)
    assert np.array_equal(noised[:, 0], plan.lengths >= 6)
