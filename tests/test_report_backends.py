"""A study under several backends: the equivalence test, its power, and the report section."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from regbench import report_backends, stats


def test_tost_is_the_larger_of_two_one_sided_welch_tests():
    rng = np.random.default_rng(0)
    a, b = 0.95 + 0.002 * rng.standard_normal(8), 0.951 + 0.003 * rng.standard_normal(6)
    margin = 0.003
    lower = st.ttest_ind(a + margin, b, equal_var=False, alternative="greater").pvalue
    upper = st.ttest_ind(a - margin, b, equal_var=False, alternative="less").pvalue
    result = stats.tost(a, b, margin)
    assert result["p"] == pytest.approx(max(lower, upper), rel=1e-9)
    assert result["diff"] == pytest.approx(a.mean() - b.mean())
    # equivalence at 0.05 exactly when the 90% interval lies inside the margin
    assert (result["p"] < 0.05) == (-margin < result["low"] and result["high"] < margin)


def test_tost_power_is_the_share_of_equivalent_verdicts_when_there_is_no_difference():
    """Over many studies without a difference, the power each one states averages to the
    share of them that declare equivalence (2,000 simulated studies of 10 vs 10 seeds)."""
    rng = np.random.default_rng(1)
    n, sd, margin = 10, 0.003, 0.003
    results = [stats.tost(sd * rng.standard_normal(n), sd * rng.standard_normal(n), margin)
               for _ in range(2000)]
    declared = np.mean([r["p"] < 0.05 for r in results])
    assert 0.3 < declared < 0.5  # a margin of one standard deviation: low power at n = 10
    assert np.mean([r["power"] for r in results]) == pytest.approx(declared, abs=0.04)
    assert stats.tost([0.9, 0.91], [0.9, 0.95], margin)["power"] == 0.0  # too few, too spread


def test_welch_interval_is_scipys():
    a, b = [0.91, 0.93, 0.92, 0.95], [0.90, 0.905, 0.91]
    result = stats.welch(a, b, 0.95)
    scipy = st.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (result["low"], result["high"]) == pytest.approx((scipy.low, scipy.high))


def rows(spread: dict) -> pd.DataFrame:
    """Two arms x two backends x 6 seeds; `spread[(arm, backend)]` = (mean, sd)."""
    rng = np.random.default_rng(2)
    out = []
    for (arm, backend), (mean, sd) in spread.items():
        for seed, acc in enumerate(mean + sd * rng.standard_normal(6)):
            out.append({"arm": arm, "backend": backend, "seed": seed, "status": "ok",
                        "problem": "mnist_mlp", "test_acc": acc,
                        "epoch_s": 2.0 if backend == "jax" else 1.0})
    return pd.DataFrame(out)


def test_each_arm_gets_its_verdict():
    table = report_backends.comparisons(rows({
        ("none", "tensorflow"): (0.95, 0.0005), ("none", "jax"): (0.9502, 0.0005),
        ("l2", "tensorflow"): (0.90, 0.0005), ("l2", "jax"): (0.92, 0.0005),
        ("dropout", "tensorflow"): (0.94, 0.01), ("dropout", "jax"): (0.94, 0.01)}))
    assert dict(zip(table["arm"], table["verdict"])) == {
        "none": "equivalent", "l2": "different", "dropout": "not resolved"}
    assert (table["time_ratio"] == 2.0).all() and (table["backend"] == "jax").all()
    assert table.set_index("arm").loc["dropout", "power"] < 0.1


def test_one_backend_has_no_comparison():
    one = rows({("none", "tensorflow"): (0.95, 0.001)})
    assert report_backends.backend_blocks(one) == []


def test_seeds_needed_give_the_power_asked_for():
    """At the seeds it names, simulated studies without a difference declare equivalence about
    80% of the time (1,000 studies; the spreads of the given samples are exactly 0.003)."""
    rng = np.random.default_rng(3)

    def exact(sd, n=10):
        x = rng.standard_normal(n)
        return 0.95 + sd * (x - x.mean()) / x.std(ddof=1)

    n = stats.tost_seeds_needed(exact(0.003), exact(0.003), 0.003)
    declared = np.mean([stats.tost(0.003 * rng.standard_normal(n), 0.003 * rng.standard_normal(n),
                                   0.003)["p"] < 0.05 for _ in range(1000)])
    assert 15 <= n <= 30 and 0.74 <= declared <= 0.9
    assert stats.tost_seeds_needed([0.9, 0.9], [0.9, 0.9], 0.003) == 2
