"""Pure statistics over per-seed results: intervals, paired tests, multiplicity, effects.

Data convention: a metric for one arm is a 1-D array over seeds; paired arrays are aligned by
seed (element i of both came from the same seed, hence the same split, data order and shared
initial weights). A design is a list of arm labels, each a `+`-joined set of technique labels
(`none` is the empty set). Everything here is deterministic: resampling uses a fixed seed.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95
SEED = 0  # of the permutation test's resampling past 16 pairs: identical tables on rerun
PERMUTATION_RESAMPLES = 100_000  # exact (all 2^n sign flips) up to n = 16 pairs
NONE = "none"


def describe(x, confidence: float = CONFIDENCE) -> dict[str, float]:
    """n, mean, sample std (ddof=1) and Student-t interval of the mean of a 1-D array.

    NaNs are dropped. With n < 2 the std and interval are NaN.
    """
    x = _finite(x)
    n = len(x)
    out = {"n": n, "mean": float(np.mean(x)) if n else math.nan,
           "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    if n >= 2:
        from scipy import stats

        std = float(np.std(x, ddof=1))
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
        out.update(std=std, ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    return out


def interval(x, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Student-t interval of the mean of a 1-D array (NaN with fewer than 2 values).

    The reports' one interval, for paired differences and effects alike. A bootstrap
    interval treats the handful of observed seeds as the population: at n = 5 its BCa form
    excluded 0 where the exact test gave p = 0.25. The t-interval widens with few seeds as it
    should, so it and the paired test seldom disagree; where the exact test after Holm does
    not resolve what the (uncorrected) interval excludes, the report says so.
    """
    d = describe(x, confidence)
    return d["ci_low"], d["ci_high"]


def seeds_to_resolve(x, comparisons: int, alpha: float = ALPHA,
                     most: int = 10_000) -> int | None:
    """About how many seeds would resolve an effect of the mean and spread observed in `x`:
    the fewest n, at least what the exact test needs at all (`seeds_needed`), at which a
    paired t-test at alpha / comparisons (Bonferroni: Holm's first step, so conservative)
    rejects. None for no effect, fewer than 2 values, or more than `most` seeds."""
    d = describe(x)
    if d["n"] < 2 or d["mean"] == 0 or math.isnan(d["mean"]):
        return None
    floor = seeds_needed(comparisons, alpha)
    if d["std"] == 0:
        return floor
    from scipy import stats

    n = np.arange(max(floor, 2), most + 1)
    half = stats.t.ppf(1 - alpha / (2 * max(1, comparisons)), n - 1) * d["std"] / np.sqrt(n)
    resolved = n[half < abs(d["mean"])]
    return int(resolved[0]) if len(resolved) else None


def paired_permutation_test(a, b, alternative: str = "two-sided") -> float:
    """p-value of the mean paired difference a - b under random swaps within pairs.

    Swapping a pair flips the sign of its difference, so n pairs have 2^n equally likely
    relabellings; the test is exact for n <= 16. `alternative`: "two-sided", "greater"
    (a > b) or "less". Pairs with a NaN are dropped; no pairs give NaN; all differences zero
    give 1.
    """
    d = _finite(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    if len(d) == 0:
        return math.nan
    if not np.any(d):
        return 1.0
    if len(d) == 1:  # two relabellings; scipy wants two or more pairs
        greater = 0.5 if d[0] > 0 else 1.0
        less = 0.5 if d[0] < 0 else 1.0
        return {"greater": greater, "less": less}.get(alternative, 1.0)
    from scipy import stats

    result = stats.permutation_test(
        (d, np.zeros_like(d)), lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples", vectorized=True, alternative=alternative,
        n_resamples=PERMUTATION_RESAMPLES, rng=np.random.default_rng(SEED))
    return float(min(1.0, result.pvalue))


def min_p_value(n: int, alternative: str = "two-sided") -> float:
    """The smallest p the exact sign-flip test can give with n pairs: 2/2^n two-sided."""
    if n < 1:
        return math.nan
    return (2.0 if alternative == "two-sided" else 1.0) / 2 ** n


def seeds_needed(comparisons: int, alpha: float = ALPHA) -> int:
    """Fewest pairs for which the smallest two-sided p survives Holm over `comparisons` tests.

    Holm multiplies the smallest p by the number of tests, so it needs 2/2^n * m < alpha.
    """
    m = max(1, comparisons)
    return math.floor(math.log2(2 * m / alpha)) + 1


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order. NaNs stay NaN and do not count."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def welch(a, b, confidence: float = CONFIDENCE) -> dict[str, float]:
    """mean(a) - mean(b) with its Welch t-interval, standard error and degrees of freedom."""
    from scipy import stats as st

    a, b = _finite(a), _finite(b)
    out = {"diff": math.nan, "low": math.nan, "high": math.nan, "se": math.nan,
           "df": math.nan, "n_a": len(a), "n_b": len(b)}
    if len(a) < 2 or len(b) < 2:
        return out
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff, se = float(a.mean() - b.mean()), math.sqrt(va + vb)
    if se == 0:
        return out | {"diff": diff, "low": diff, "high": diff, "se": 0.0, "df": math.inf}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(st.t.ppf((1 + confidence) / 2, df)) * se
    return out | {"diff": diff, "low": diff - half, "high": diff + half, "se": se,
                  "df": float(df)}


def tost(a, b, margin: float, alpha: float = ALPHA) -> dict[str, float]:
    """Two one-sided Welch t-tests that mean(a) - mean(b) lies within (-margin, +margin).

    Returns `welch`'s fields with the (1 - 2 alpha) interval (equivalence at level alpha is
    that interval inside the margin), the TOST p-value, and `power`: the chance that a study of
    these sizes and spreads declares equivalence when the true difference is 0 (Welch's
    degrees of freedom, central t). A test whose power is low says nothing when it does not
    declare equivalence.
    """
    from scipy import stats as st

    out = welch(a, b, 1 - 2 * alpha) | {"p": math.nan, "power": math.nan}
    diff, se, df = out["diff"], out["se"], out["df"]
    if math.isnan(diff):
        return out
    if se == 0:  # no spread at all: decided by the difference itself
        return out | {"p": 0.0 if abs(diff) < margin else 1.0, "power": 1.0}
    p = max(st.t.sf((diff + margin) / se, df), st.t.cdf((diff - margin) / se, df))
    power = max(0.0, 2 * st.t.cdf(margin / se - st.t.ppf(1 - alpha, df), df) - 1)
    return out | {"p": float(p), "power": float(power)}


def tost_seeds_needed(a, b, margin: float, power: float = 0.8, alpha: float = ALPHA,
                      most: int = 10_000) -> int | None:
    """Seeds per group for a TOST at `margin` to have `power` when the true difference is 0,
    at the spreads of `a` and `b` (None: not within `most`)."""
    from scipy import stats as st

    a, b = _finite(a), _finite(b)
    if len(a) < 2 or len(b) < 2:
        return None
    spread = a.var(ddof=1) + b.var(ddof=1)
    if spread == 0:
        return 2
    for n in range(2, most + 1):
        se, df = math.sqrt(spread / n), 2 * n - 2
        if 2 * st.t.cdf(margin / se - st.t.ppf(1 - alpha, df), df) - 1 >= power:
            return n
    return None


EQUIVALENCE_MARGIN = 0.003  # test accuracy: "the same" within ±0.3 percentage points


def equivalence(a, b, margin: float = EQUIVALENCE_MARGIN, alpha: float = ALPHA) -> dict:
    """Whether mean(a) and mean(b) are the same within `margin`: `tost`'s fields, and
    `verdict`: "equivalent" (TOST p < alpha), "different" (the 1 - alpha Welch interval
    excludes 0) or "not resolved"; `seeds_needed` per group for power 0.8 at these spreads."""
    test = tost(a, b, margin, alpha)
    difference = welch(a, b, 1 - alpha)
    verdict = ("equivalent" if test["p"] < alpha else
               "different" if difference["low"] > 0 or difference["high"] < 0 else
               "not resolved")
    return test | {"verdict": verdict, "seeds_needed": tost_seeds_needed(a, b, margin, 0.8,
                                                                          alpha)}


def verdict(mean_diff: float, p_adjusted: float, higher_is_better: bool,
            alpha: float = ALPHA) -> str:
    """`better`, `worse` or `indistinguishable` from a mean difference and its adjusted p."""
    if not (p_adjusted < alpha) or mean_diff == 0 or math.isnan(mean_diff):
        return "indistinguishable"
    return "better" if (mean_diff > 0) == higher_is_better else "worse"


def sign_agreement(d) -> tuple[int, int]:
    """(pairs whose difference has the sign of the mean difference, pairs)."""
    d = _finite(d)
    if len(d) == 0:
        return 0, 0
    sign = np.sign(np.mean(d))
    return int(np.sum(np.sign(d) == sign)) if sign else 0, len(d)


# --- designs and effects ---------------------------------------------------------------------

def technique_set(label: str) -> frozenset[str]:
    """The technique labels of an arm label: `l2+dropout` -> {l2, dropout}; `none` -> {}."""
    return frozenset() if label == NONE else frozenset(label.split("+"))


def infer_design(labels) -> str:
    """`factorial`, `leave_one_out`, `one_at_a_time` or `explicit`, from the arms present.

    factorial: every subset of the techniques (two or more of them); leave_one_out: all
    techniques, then all but each one in turn (three or more); one_at_a_time: none and each
    technique alone.
    """
    sets = {technique_set(label) for label in labels}
    if len(sets) != len(list(labels)):
        return "explicit"
    factors = frozenset().union(*sets) if sets else frozenset()
    k = len(factors)
    singles = {frozenset()} | {frozenset({t}) for t in factors}
    if k >= 1 and sets == singles:
        return "one_at_a_time"
    if k >= 2 and sets == {frozenset(c) for r in range(k + 1)
                           for c in itertools.combinations(factors, r)}:
        return "factorial"
    if k >= 3 and sets == {factors} | {factors - {t} for t in factors}:
        return "leave_one_out"
    return "explicit"


def factors(labels) -> list[str]:
    """Technique labels in order of first appearance among the arms."""
    return list(dict.fromkeys(t for label in labels for t in label.split("+") if label != NONE))


def effect_contrasts(labels) -> dict[str, np.ndarray]:
    """Effect name -> contrast weights over `labels`; a per-seed effect is `scores @ weights`.

    factorial (Yates convention, ±1 coding): main effect of T = mean(arms with T) - mean(arms
    without T); interaction `A×B` = mean(arms where A and B are both in or both out) -
    mean(arms where exactly one is in), i.e. half the change in A's effect when B is added.
    leave_one_out: effect of T = all techniques - all without T (T's contribution given all
    others); two-way interactions are not identifiable from these arms.
    Other designs have no effects here (their paired comparisons with `none` are the effects).
    """
    labels = list(labels)
    design = infer_design(labels)
    sets = [technique_set(label) for label in labels]
    names = factors(labels)
    out = {}
    if design == "factorial":
        for t in names:
            out[t] = _difference([t in s for s in sets])
        for a, b in itertools.combinations(names, 2):
            out[f"{a}×{b}"] = _difference([(a in s) == (b in s) for s in sets])
    elif design == "leave_one_out":
        full = frozenset(names)
        for t in names:
            w = np.zeros(len(labels))
            w[sets.index(full)] = 1.0
            w[sets.index(full - {t})] = -1.0
            out[t] = w
    return out


def _difference(member) -> np.ndarray:
    member = np.asarray(member, dtype=bool)
    return np.where(member, 1.0 / member.sum(), -1.0 / (~member).sum())


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[~np.isnan(x)]
