"""The stressors' draws and operators on hand-made arrays, without a cache or a plan file."""

import numpy as np
import pytest

from rider.stress import conflict, missing, noise


def rng(seed=0):
    return np.random.default_rng(seed)


def toy_arrays(lengths, max_len, dims=(2, 2, 2)):
    """Features whose value names their place: x[i, t, f] = 100 i + t + 1 on real rows, 0 on padding."""
    lengths = np.asarray(lengths, dtype=np.int32)
    n = len(lengths)
    real = np.arange(max_len)[None, :] < lengths[:, None]
    base = (100 * np.arange(n)[:, None] + np.arange(max_len)[None, :] + 1) * real  # (N, L)
    out = {key: np.repeat(base[:, :, None], dim, axis=2).astype(np.float32)
           for key, dim in zip(("text_glove", "audio", "vision"), dims)}
    out.update(lengths=lengths, labels=np.zeros(n, np.float32), ids=np.array([f"s{i}" for i in range(n)], object))
    return out


# --- noise ----------------------------------------------------------------------------------------------------------


def test_position_ranks_permute_real_positions_and_park_padding():
    lengths = np.array([0, 1, 4, 6])
    ranks = noise.position_ranks(rng(), lengths, max_len=6)
    for i, n in enumerate(lengths):
        assert sorted(ranks[i, :n]) == list(range(n))
        assert (ranks[i, n:] == 6).all()


def test_zero_mask_counts_round_half_to_even_and_nests():
    lengths = np.array([5, 5, 10, 15, 3])
    ranks = noise.position_ranks(rng(1), lengths, max_len=15)
    # rho = .1: 0.5 -> 0, 0.5 -> 0, 1.0 -> 1, 1.5 -> 2, 0.3 -> 0
    np.testing.assert_array_equal(noise.zero_mask(ranks, lengths, 0.1).sum(1), [0, 0, 1, 2, 0])
    # rho = .5: 2.5 -> 2, 2.5 -> 2, 5 -> 5, 7.5 -> 8, 1.5 -> 2
    np.testing.assert_array_equal(noise.zero_mask(ranks, lengths, 0.5).sum(1), [2, 2, 5, 8, 2])
    assert not (noise.zero_mask(ranks, lengths, 0.3) & ~noise.zero_mask(ranks, lengths, 0.5)).any()
    assert noise.zero_mask(ranks, lengths, 1.0).sum() == lengths.sum()


def test_apply_noise_by_hand():
    # one sample, L = 3, length 2, every feature dim 2. rho = .5, sigma_audio = (2, 0), z = 1 everywhere:
    # audio real rows get + .5 * 2 * 1 = +1 on feature 0, +0 on feature 1; then row 1 (masked) is zeroed.
    # audio before: [[1, 1], [2, 2], [0, 0]] -> after: [[2, 1], [0, 0], [0, 0]] (padding row untouched)
    a = toy_arrays([2], max_len=3)
    masks = {
        "text": np.array([[True, False, False]]),
        "audio": np.array([[False, True, False]]),
        "vision": np.zeros((1, 3), bool),
    }
    z = {m: np.ones((1, 3, 2), np.float32) for m in ("audio", "vision")}
    sigma = {"audio": np.array([2.0, 0.0], np.float32), "vision": np.array([1.0, 1.0], np.float32)}
    out = noise.apply_noise(a, masks, z, sigma, 0.5)
    np.testing.assert_array_equal(out["audio"][0], [[2, 1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(out["vision"][0], [[1.5, 1.5], [2.5, 2.5], [0, 0]])  # +.5 * 1 * 1, no mask
    np.testing.assert_array_equal(out["text_glove"][0], [[0, 0], [2, 2], [0, 0]])  # token 0 zeroed
    assert out["lengths"] is a["lengths"] and out["labels"] is a["labels"]
    assert a["audio"][0, 0, 0] == 1  # input untouched


def test_apply_noise_at_zero_returns_the_inputs():
    a = toy_arrays([2, 3], max_len=3)
    empty = {m: np.zeros((2, 3), bool) for m in ("text", "audio", "vision")}
    out = noise.apply_noise(a, empty, {}, {}, 0.0)
    assert all(out[k] is a[k] for k in a)


def test_standard_normal_is_per_sample_and_reproducible():
    seeds = np.array([11, 12, 11], dtype=np.uint64)
    z = noise.standard_normal(seeds, 4, 3)
    assert z.dtype == np.float32 and z.shape == (3, 4, 3)
    np.testing.assert_array_equal(z[0], z[2])  # same seed, same draw
    assert not np.array_equal(z[0], z[1])
    assert noise.digest(z) == noise.digest(noise.standard_normal(seeds, 4, 3))


# --- missingness ----------------------------------------------------------------------------------------------------


def test_draw_presence_redraws_only_all_dropped_rows():
    base_u = np.array([[0.1, 0.9, 0.9], [0.1, 0.1, 0.1], [0.9, 0.9, 0.9]])
    presence = missing.draw_presence(base_u, 0.5, rng())
    np.testing.assert_array_equal(presence[0], [False, True, True])  # untouched
    np.testing.assert_array_equal(presence[2], [True, True, True])
    assert presence[1].any()  # was all dropped: redrawn until one stays
    assert missing.draw_presence(base_u, 0.0, rng()).all()


def test_draw_presence_rejects_m_of_one():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        missing.draw_presence(np.zeros((2, 3)), 1.0, rng())


def test_zero_absent_zeroes_every_feature_of_the_absent_modality():
    a = toy_arrays([2, 3, 1], max_len=3)
    a["text_bert"] = a["text_glove"] + 7
    presence = np.array([[True, True, True], [False, True, False], [True, False, True]])
    out = missing.zero_absent(a, presence)
    assert not out["text_glove"][1].any() and not out["text_bert"][1].any()
    np.testing.assert_array_equal(out["text_bert"][[0, 2]], a["text_bert"][[0, 2]])
    assert not out["audio"][2].any() and not out["vision"][1].any()
    np.testing.assert_array_equal(out["audio"][[0, 1]], a["audio"][[0, 1]])
    assert out["lengths"] is a["lengths"]
    assert a["text_glove"][1].any()  # input untouched
    everyone = missing.zero_absent(a, np.ones((3, 3), bool))
    assert all(everyone[k] is a[k] for k in a)
    with pytest.raises(ValueError, match=r"presence has shape \(3, 2\)"):
        missing.zero_absent(a, np.ones((3, 2), bool))


# --- conflict -------------------------------------------------------------------------------------------------------


def test_donors_have_opposite_polarity_and_label_zero_takes_any_sign():
    labels = np.array([2.0, 1.0, -1.0, -2.5, 0.0, 0.0, 3.0, -0.5])
    lengths = np.array([3, 3, 3, 3, 3, 3, 0, 3])  # sample 6 (label 3) has no words: never a donor
    for seed in range(20):
        donor, fallback = conflict.draw_donors(rng(seed), labels, lengths)
        assert not fallback.any()
        assert np.all(labels[donor[labels > 0]] < 0)
        assert np.all(labels[donor[labels < 0]] > 0)
        assert np.all(labels[donor[labels == 0]] != 0)
        assert 6 not in donor


def test_donor_probability_is_proportional_to_label_distance():
    # 4000 receivers labelled +1, two donors labelled -0.5 and -2.5: distances 1.5 and 3.5,
    # so P(donor -2.5) = 3.5 / 5 = 0.7
    labels = np.array([1.0] * 4000 + [-0.5, -2.5])
    donor, _ = conflict.draw_donors(rng(2), labels, np.ones(4002, int))
    share = np.mean(donor[:4000] == 4001)
    assert abs(share - 0.7) < 4 * np.sqrt(0.21 / 4000)


def test_donors_fall_back_when_no_opposite_polarity_exists():
    labels = np.array([1.0, 2.0, 2.0])  # only positives
    donor, fallback = conflict.draw_donors(rng(), labels, np.ones(3, int))
    # still weighted by label distance: receiver 0 (label 1) -> 1 or 2 (distance 1 each);
    # receivers 1 and 2 (label 2) -> sample 0 (distance 1), never each other (distance 0), never themselves
    assert fallback.all()
    assert donor[0] in (1, 2)
    assert donor[1] == 0 and donor[2] == 0
    with pytest.raises(ValueError, match="no other test sample"):
        conflict.draw_donors(rng(), np.array([1.0, -1.0]), np.array([1, 0]))


def test_swaps_at_thresholds_u():
    u = np.array([0.1, 0.6, 0.3])
    choice = np.array([0, 1, 2])  # audio, vision, both
    donor, swapped = conflict.swaps_at(u, choice, np.array([2, 0, 1]), 0.5)
    np.testing.assert_array_equal(donor, [2, -1, 1])
    np.testing.assert_array_equal(swapped, [[False, True, False], [False, False, False], [False, True, True]])
    assert (conflict.swaps_at(u, choice, np.array([2, 0, 1]), 0.0)[0] == -1).all()


def test_apply_conflict_stretches_donor_rows_to_receiver_length():
    # L = 6. x[i, t] = 100 i + t + 1 on real rows.
    #   receiver 0 (len 4) <- donor 1 (len 2): rows t * 2 // 4 = 0, 0, 1, 1 -> 101, 101, 102, 102; rows 4, 5 padding
    #   receiver 2 (len 3) <- donor 3 (len 6): rows t * 6 // 3 = 0, 2, 4     -> 301, 303, 305
    #   receiver 1 (len 2) <- donor 0 (len 4), audio only: rows 0, 2 of the CLEAN donor -> 1, 3
    #   receiver 3 (len 6) <- donor 2 (len 3), vision only: rows 0, 0, 1, 1, 2, 2 -> 201, 201, 202, 202, 203, 203
    a = toy_arrays([4, 2, 3, 6], max_len=6, dims=(2, 1, 1))
    donor = np.array([1, 0, 3, 2])
    swapped = np.array([[False, True, True], [False, True, False], [False, True, True], [False, False, True]])
    out = conflict.apply_conflict(a, donor, swapped)
    audio, vision = out["audio"][..., 0], out["vision"][..., 0]
    np.testing.assert_array_equal(audio[0], [101, 101, 102, 102, 0, 0])
    np.testing.assert_array_equal(audio[1], [1, 3, 0, 0, 0, 0])
    np.testing.assert_array_equal(audio[2], [301, 303, 305, 0, 0, 0])
    np.testing.assert_array_equal(audio[3], a["audio"][3, :, 0])  # vision only
    np.testing.assert_array_equal(vision[0], [101, 101, 102, 102, 0, 0])
    np.testing.assert_array_equal(vision[1], a["vision"][1, :, 0])  # audio only
    np.testing.assert_array_equal(vision[3], [201, 201, 202, 202, 203, 203])
    assert out["text_glove"] is a["text_glove"] and out["labels"] is a["labels"]


def test_apply_conflict_equal_lengths_copy_exactly():
    a = toy_arrays([3, 3], max_len=4)
    out = conflict.apply_conflict(a, np.array([1, 0]), np.array([[False, True, True], [False, True, True]]))
    np.testing.assert_array_equal(out["audio"][0], a["audio"][1])
    np.testing.assert_array_equal(out["vision"][1], a["vision"][0])
