"""regbench.stats on cases small enough to compute by hand."""

import math

import numpy as np
import pytest

from regbench import stats


def test_describe_gives_mean_sample_std_and_t_interval():
    d = stats.describe([1.0, 2.0, 3.0])
    # std (ddof=1) = 1; t(0.975, 2 df) = 4.302653; half width = 4.302653 / sqrt(3)
    half = 4.302652729749464 / math.sqrt(3)
    assert d == pytest.approx({"n": 3, "mean": 2.0, "std": 1.0, "ci_low": 2.0 - half,
                               "ci_high": 2.0 + half})


def test_describe_drops_nan_and_leaves_spread_undefined_for_one_value():
    d = stats.describe([0.5, float("nan")])
    assert d["n"] == 1 and d["mean"] == 0.5
    assert math.isnan(d["std"]) and math.isnan(d["ci_low"]) and math.isnan(d["ci_high"])
    assert stats.describe([])["n"] == 0


def test_paired_permutation_test_all_positive_differences_hits_the_floor():
    # 5 pairs, all a > b: only the identity and the all-flipped pattern are as extreme,
    # so p = 2/32 = 1/16 two-sided and 1/32 one-sided.
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [0.0] * 5
    assert stats.paired_permutation_test(a, b) == pytest.approx(1 / 16)
    assert stats.paired_permutation_test(a, b, "greater") == pytest.approx(1 / 32)
    assert stats.paired_permutation_test(a, b, "less") == pytest.approx(1.0)
    assert stats.min_p_value(5) == 1 / 16


def test_paired_permutation_test_by_enumeration():
    # d = (3, -1, 1), observed sum 3. The 8 sign patterns of (3, 1, 1) give sums
    # 5, 3, 3, 1, -1, -3, -3, -5: P(S >= 3) = 3/8, so two-sided p = 2 * 3/8.
    assert stats.paired_permutation_test([3, -1, 1], [0, 0, 0]) == pytest.approx(0.75)
    assert stats.paired_permutation_test([3, -1, 1], [0, 0, 0], "greater") == pytest.approx(3 / 8)
    # the test only sees differences: shifting both arms changes nothing
    assert stats.paired_permutation_test([13, 9, 11], [10, 10, 10]) == pytest.approx(0.75)


def test_paired_permutation_test_degenerate_cases():
    assert stats.paired_permutation_test([1, 2], [1, 2]) == 1.0  # all differences zero
    assert stats.paired_permutation_test([0.9], [0.8]) == 1.0  # one pair: 2 patterns
    assert stats.paired_permutation_test([0.9], [0.8], "greater") == 0.5
    assert math.isnan(stats.paired_permutation_test([], []))
    assert stats.paired_permutation_test([1, np.nan, 3], [0, 0, 0]) == pytest.approx(0.5)


def test_paired_permutation_test_is_exact_at_sixteen_pairs():
    # d = 1..15 and -1: sum |d| = 121, observed sum 119. Flipping a set of |d| summing to s
    # gives 121 - 2s, so only s = 0 and the two |d| = 1 reach 119: 3 of 2^16 patterns.
    d = [*range(1, 16), -1]
    assert stats.paired_permutation_test(d, [0] * 16) == pytest.approx(2 * 3 / 2 ** 16)
    assert stats.paired_permutation_test(range(1, 17), [0] * 16) == pytest.approx(2 / 2 ** 16)


def test_the_interval_is_the_student_t_interval_of_the_mean():
    # 0..4: mean 2, sd sqrt(2.5); t(0.975, 4) = 2.7764 (tables): half-width 1.9632
    low, high = stats.interval([0.0, 1.0, 2.0, 3.0, 4.0])
    assert (low, high) == pytest.approx((2 - 1.9632, 2 + 1.9632), abs=1e-4)
    assert stats.interval([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3))
    assert all(math.isnan(v) for v in stats.interval([0.3]))


def test_seeds_to_resolve_an_observed_effect():
    # mean 1, sd 2, one comparison: t(0.975, n-1) * 2 / sqrt(n) < 1 first at n = 18
    # (t(0.975, 16) = 2.1199: 1.028 at n = 17; t(0.975, 17) = 2.1098: 0.995 at n = 18)
    assert stats.seeds_to_resolve([1 - 2 ** 0.5, 1 + 2 ** 0.5], 1) == 18
    # seeds that all agree exactly: what the exact test needs at all (2/2^n * 8 < 0.05)
    assert stats.seeds_to_resolve([0.01, 0.01, 0.01], 8) == stats.seeds_needed(8) == 9
    assert stats.seeds_to_resolve([0.01, -0.01], 1) is None  # no effect
    assert stats.seeds_to_resolve([0.01], 1) is None
    assert stats.seeds_to_resolve([1e-6, -1e-6 + 2e-9], 1) is None  # past 10,000 seeds


def test_holm_by_hand():
    # sorted p: 0.01, 0.03, 0.04 -> 3*0.01, max(.., 2*0.03), max(.., 1*0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = stats.holm([0.01, float("nan"), 0.02])  # NaN neither adjusted nor counted
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_seeds_needed_for_the_smallest_p_to_survive_holm():
    # the fewest n with m * 2/2^n < alpha, i.e. 2^n > 2m / alpha
    assert stats.seeds_needed(1) == 6  # 2/2^5 = 0.0625 is not < 0.05; 2/2^6 is
    assert stats.seeds_needed(3) == 7  # 2^n > 120
    assert stats.seeds_needed(8) == 9  # 8 * 2/2^8 = 0.0625; 8 * 2/2^9 = 0.031
    assert stats.seeds_needed(27) == 11  # 2^n > 1080
    assert stats.seeds_needed(0) == 6  # no comparison counts as one
    # On the boundary the inequality is strict: 2/2^3 = 0.25 is not < 0.25.
    assert stats.seeds_needed(1, alpha=0.25) == 4
    assert stats.seeds_needed(2, alpha=0.125) == 6  # 2^n > 32
    assert stats.min_p_value(7) == 2 / 128 and stats.min_p_value(7, "greater") == 1 / 128


@pytest.mark.parametrize("mean, p, higher, expected", [
    (+0.01, 0.01, True, "better"), (-0.01, 0.01, True, "worse"),
    (-0.01, 0.01, False, "better"), (+0.01, 0.0625, True, "indistinguishable"),
    (+0.01, float("nan"), True, "indistinguishable"), (0.0, 0.0, True, "indistinguishable"),
])
def test_verdict(mean, p, higher, expected):
    assert stats.verdict(mean, p, higher) == expected


def test_sign_agreement():
    assert stats.sign_agreement([0.1, 0.2, -0.05]) == (2, 3)
    assert stats.sign_agreement([0.0, 0.0]) == (0, 2)


@pytest.mark.parametrize("labels, design", [
    (["none", "a", "b", "a+b"], "factorial"),
    (["none", "a", "b", "c", "a+b", "a+c", "b+c", "a+b+c"], "factorial"),
    (["a+b+c", "b+c", "a+c", "a+b"], "leave_one_out"),
    (["none", "l1", "dropout"], "one_at_a_time"),
    (["none", "l1", "l2+dropout"], "explicit"),
    (["none", "a", "a+b"], "explicit"),
])
def test_infer_design(labels, design):
    assert stats.infer_design(labels) == design


def test_factorial_effects_by_hand():
    # y(none)=1, y(a)=3, y(b)=2, y(a+b)=6:
    # main a = (3+6)/2 - (1+2)/2 = 3; main b = (2+6)/2 - (1+3)/2 = 2;
    # a×b = (1+6)/2 - (3+2)/2 = 1 (half the change in a's effect when b is added: (4-2)/2)
    labels = ["none", "a", "b", "a+b"]
    y = np.array([1.0, 3.0, 2.0, 6.0])
    effects = {name: y @ w for name, w in stats.effect_contrasts(labels).items()}
    assert effects == pytest.approx({"a": 3.0, "b": 2.0, "a×b": 1.0})


def test_leave_one_out_effects_by_hand():
    labels = ["a+b+c", "b+c", "a+c", "a+b"]
    y = np.array([10.0, 7.0, 9.0, 9.5])  # all, without a, without b, without c
    effects = {name: y @ w for name, w in stats.effect_contrasts(labels).items()}
    assert effects == pytest.approx({"a": 3.0, "b": 1.0, "c": 0.5})


def test_no_effects_for_other_designs():
    assert stats.effect_contrasts(["none", "l1", "dropout"]) == {}
