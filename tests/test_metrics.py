"""rider.metrics: every expected value below is worked out by hand in the comments beside it."""

import math

import numpy as np
import pytest

from rider.metrics import HEADLINE, HEADLINE_ACC2, HEADLINE_F1, METRIC_KEYS, nauc, nauc_curves, regression_metrics


# --- a 4-sample case with a zero label -------------------------------------------------------------------------
#   i   pred   label
#   0    1.2    2.0
#   1    0.4   -1.0
#   2   -0.3    0.0    <- the zero label: dropped by non0, counted positive by has0
#   3   -2.0    0.5
PRED4 = [1.2, 0.4, -0.3, -2.0]
LABEL4 = [2.0, -1.0, 0.0, 0.5]


def test_keys_and_types():
    m = regression_metrics(PRED4, LABEL4)
    assert tuple(m) == METRIC_KEYS
    assert all(type(v) is float for v in m.values())


def test_acc2_f1_non0_skips_zero_label():
    # non0 keeps i = 0, 1, 3. label > 0: [T, F, T]; pred > 0: [T, T, F]  -> only i=0 right: acc = 1/3.
    # class T (support 2): TP 1 (i0), FP 1 (i1), FN 1 (i3) -> P = 1/2, R = 1/2, F1 = 1/2
    # class F (support 1): TP 0                            -> F1 = 0
    # weighted F1 = (2 * 1/2 + 1 * 0) / 3 = 1/3   (macro would be 1/4, binary 1/2)
    m = regression_metrics(PRED4, LABEL4)
    assert m["acc2_non0"] == pytest.approx(1 / 3)
    assert m["f1_non0"] == pytest.approx(1 / 3)


def test_acc2_f1_has0_counts_zero_label_positive():
    # label >= 0: [T, F, T, T]; pred >= 0: [T, T, F, F] -> only i=0 right: acc = 1/4.
    # class T (support 3): TP 1 (i0), FP 1 (i1), FN 2 (i2, i3) -> P = 1/2, R = 1/3, F1 = 2*(1/6)/(5/6) = 2/5
    # class F (support 1): TP 0 (i1 predicted T)               -> F1 = 0
    # weighted F1 = (3 * 2/5 + 1 * 0) / 4 = 3/10
    m = regression_metrics(PRED4, LABEL4)
    assert m["acc2_has0"] == pytest.approx(1 / 4)
    assert m["f1_has0"] == pytest.approx(3 / 10)


def test_acc7_acc5_mae_corr_on_four_samples():
    # round(pred) = [1, 0, -0, -2]; round(label) = [2, -1, 0, 0] (0.5 rounds half-to-even to 0)
    # -> only i=2 matches (-0 == 0): acc7 = acc5 = 1/4 (no value reaches the clip bounds)
    # |pred - label| = [0.8, 1.4, 0.3, 2.5], sum 5.0 -> mae = 1.25
    # corr: mean(pred) = -0.175, mean(label) = 0.375
    #   dp = [1.375, 0.575, -0.125, -1.825], dy = [1.625, -1.375, -0.375, 0.125]
    #   sum dp*dy = 2.234375 - 0.790625 + 0.046875 - 0.228125 = 1.2625
    #   sum dp^2 = 5.5675, sum dy^2 = 4.6875   -> r = 1.2625 / sqrt(5.5675 * 4.6875) = 1.2625 / 5.10859 = 0.247133
    m = regression_metrics(PRED4, LABEL4)
    assert m["acc7"] == pytest.approx(1 / 4)
    assert m["acc5"] == pytest.approx(1 / 4)
    assert m["mae"] == pytest.approx(1.25)
    assert m["corr"] == pytest.approx(1.2625 / math.sqrt(5.5675 * 4.6875))
    assert m["corr"] == pytest.approx(0.247133, abs=1e-6)


def test_exact_halves_round_half_to_even():
    # pred          0.5  -0.5   2.5  -2.5   1.5   2.4
    # round (even)  0    -0     2    -2     2     2       (half away from zero would give 1, -1, 3, -3, 2)
    # label         0     0     2    -2     2     3
    # acc7: i0..i4 match, i5 (2 vs 3) does not -> 5/6
    # acc5: clip to [-2, 2] first: pred i5 -> 2 (round 2), label i5 3 -> 2  -> all 6 match -> 1
    pred = [0.5, -0.5, 2.5, -2.5, 1.5, 2.4]
    label = [0.0, 0.0, 2.0, -2.0, 2.0, 3.0]
    m = regression_metrics(pred, label)
    assert m["acc7"] == pytest.approx(5 / 6)
    assert m["acc5"] == pytest.approx(1.0)


def test_exact_half_labels_round_half_to_even():
    # label 2.5 is class 2 and -0.5 is class -0, so pred 2.0 and 0.0 hit; pred 3.0 would miss 2.5.
    m = regression_metrics([2.0, 0.0, 3.0], [2.5, -0.5, 2.5])
    assert m["acc7"] == pytest.approx(2 / 3)


def test_values_outside_range_are_clipped_for_classes_not_for_mae():
    # pred -7 -> clip -3, pred 4 -> clip 3 (acc7) or -2 / 2 (acc5)
    # label -3 -> -3 / -2, label 2.6 -> round 3 / clip 2
    # acc7: (-3 == -3), (3 == 3) -> 1;  acc5: (-2 == -2), (2 == 2) -> 1
    # mae unclipped: (|-7 + 3| + |4 - 2.6|) / 2 = (4 + 1.4) / 2 = 2.7
    m = regression_metrics([-7.0, 4.0], [-3.0, 2.6])
    assert m["acc7"] == 1.0
    assert m["acc5"] == 1.0
    assert m["mae"] == pytest.approx(2.7)
    assert m["corr"] == pytest.approx(1.0)  # two points always lie on a line with positive slope here


def test_perfect_prediction():
    y = np.array([-3.0, -1.2, 0.0, 0.4, 2.9])
    m = regression_metrics(y, y)
    assert m == pytest.approx(
        {"acc7": 1, "acc5": 1, "acc2_non0": 1, "f1_non0": 1, "acc2_has0": 1, "f1_has0": 1, "mae": 0, "corr": 1}
    )


def test_float32_inputs_give_the_same_numbers():
    m64 = regression_metrics(PRED4, LABEL4)
    m32 = regression_metrics(np.asarray(PRED4, np.float32), np.asarray(LABEL4, np.float32))
    for k in ("acc7", "acc5", "acc2_non0", "f1_non0", "acc2_has0", "f1_has0"):
        assert m32[k] == m64[k]
    assert m32["mae"] == pytest.approx(m64["mae"], rel=1e-6)


def test_corr_is_nan_for_constant_vectors():
    # Pearson's r divides by the spread of each vector; a constant vector has none -> defined as NaN.
    assert math.isnan(regression_metrics([0.7, 0.7, 0.7], [1.0, -2.0, 0.5])["corr"])
    assert math.isnan(regression_metrics([1.0, -2.0, 0.5], [1.0, 1.0, 1.0])["corr"])
    assert math.isnan(regression_metrics([1.0], [2.0])["corr"])  # a single sample


def test_non0_is_nan_when_every_label_is_zero():
    m = regression_metrics([0.3, -0.2], [0.0, 0.0])
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])
    assert m["acc2_has0"] == pytest.approx(0.5)  # label >= 0 both T; pred >= 0: [T, F]


@pytest.mark.parametrize(
    ("pred", "label", "match"),
    [
        ([1.0, 2.0], [1.0], "pred has 2 samples but label has 1"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "pred must be 1-D"),
        ([1.0, 2.0], [[1.0, 2.0]], "label must be 1-D"),
        ([], [], "pred is empty"),
        ([1.0, float("nan")], [1.0, 2.0], "pred holds 1 non-finite value.*index 1"),
        ([1.0, 2.0], [float("inf"), 2.0], "label holds 1 non-finite value.*index 0"),
    ],
)
def test_bad_inputs_raise(pred, label, match):
    with pytest.raises(ValueError, match=match):
        regression_metrics(pred, label)


def test_headline_is_non0():
    assert HEADLINE_ACC2 == "acc2_non0" and HEADLINE_F1 == "f1_non0"
    assert HEADLINE["acc2"] == "acc2_non0" and HEADLINE["f1"] == "f1_non0"
    assert set(HEADLINE.values()) <= set(METRIC_KEYS)


# --- nAUC (Eqs. 53-54) -----------------------------------------------------------------------------------------


def test_nauc_linear_curve():
    # M(s) = 1 - s on s = 0, .1, ..., .5: the trapezoid rule is exact on a line -> mean over [0, .5] = 1 - .25
    s = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert nauc(s, [1 - x for x in s]) == pytest.approx(0.75)


def test_nauc_uniform_grid_is_mean_with_half_weight_ends():
    # s = 0, .25, .5, .75, 1; M = 1, 0, 1, 0, 1
    # AUC = .25 * (.5 + .5 + .5 + .5) = .5; range 1 -> .5  (plain mean would be .6)
    assert nauc([0, 0.25, 0.5, 0.75, 1.0], [1, 0, 1, 0, 1]) == pytest.approx(0.5)


def test_nauc_non_uniform_grid():
    # s = 0, .1, .4, 1; M = 1, .8, .5, .2
    # AUC = .1 * .9 + .3 * .65 + .6 * .35 = .09 + .195 + .21 = .495; range 1 -> .495
    assert nauc([0.0, 0.1, 0.4, 1.0], [1.0, 0.8, 0.5, 0.2]) == pytest.approx(0.495)
    # a grid that does not start at 0: s = .2, .3, .8; M = .6, .4, .9
    # AUC = .1 * .5 + .5 * .65 = .375; range .6 -> .625
    assert nauc([0.2, 0.3, 0.8], [0.6, 0.4, 0.9]) == pytest.approx(0.625)


def test_nauc_curves_is_nauc_of_each_curve():
    """The bootstrap's many-curves form (Eqs. 53-54 along the last axis) equals nauc curve by curve."""
    severities = [0.0, 0.1, 0.4, 1.0]
    values = np.random.default_rng(1).uniform(size=(2, 7, len(severities)))
    values[1, 3, 2] = np.nan
    got = nauc_curves(severities, values)
    assert got.shape == (2, 7)
    expected = [[nauc(severities, curve) for curve in block] for block in values]
    assert got == pytest.approx(np.array(expected), nan_ok=True) and np.isnan(got[1, 3])
    with pytest.raises(ValueError, match="4 severities but 3 values"):
        nauc_curves(severities, values[..., :3])


def test_nauc_nan_propagates():
    assert math.isnan(nauc([0.0, 0.5, 1.0], [0.8, float("nan"), 0.6]))


@pytest.mark.parametrize(
    ("s", "v", "match"),
    [
        ([0.0], [1.0], "at least 2 severities"),
        ([0.0, 0.5], [1.0], "2 severities but 1 values"),
        ([0.0, 0.5, 0.5], [1.0, 0.9, 0.8], "strictly increasing"),
        ([0.5, 0.0], [1.0, 0.9], "strictly increasing"),
        ([0.0, float("nan")], [1.0, 0.9], "finite"),
        ([0.0, 1.0], [1.0, float("inf")], "infinite"),
        ([[0.0, 1.0]], [[1.0, 0.9]], "1-D"),
    ],
)
def test_nauc_bad_inputs(s, v, match):
    with pytest.raises(ValueError, match=match):
        nauc(s, v)
