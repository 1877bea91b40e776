"""The claims' verdict rules on hand-made rows, one case per outcome: a paired part, a
"generalizes better" part (where a smaller gap with worse test results is underfitting), a
measured part, and the verdict a claim composes from its parts."""

from __future__ import annotations

import pandas as pd
import pytest

from regbench import claims

SIGNIFICANT, FEW = 12, 4  # seeds: 2/2^12 survives Holm over a few tests; 2/2^4 never does


def rows(arm_values: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """`arm -> metric -> value per seed` as ok rows."""
    out = []
    for arm, metrics in arm_values.items():
        seeds = len(next(iter(metrics.values())))
        for seed in range(seeds):
            out.append({"arm": arm, "seed": seed, "status": "ok",
                        **{m: v[seed] for m, v in metrics.items()}})
    return pd.DataFrame(out)


def level(arm: list[float], ref: list[float], sign: int = +1) -> str:
    ev = claims.Evidence(rows({"x": {"m": arm}, "none": {"m": ref}}))
    part = ev.part("x raises m", "x", "none", "m", sign)
    ev.correct()
    return part.level


def steps(n: int, delta: float) -> list[float]:
    """Seed values whose difference from `base(n)` is delta at every seed, with spread."""
    return [0.5 + 0.01 * i + delta for i in range(n)]


def base(n: int) -> list[float]:
    return [0.5 + 0.01 * i for i in range(n)]


@pytest.mark.parametrize("arm, ref, sign, expected", [
    (steps(SIGNIFICANT, +0.02), base(SIGNIFICANT), +1, claims.SUPPORTED),
    (steps(FEW, +0.02), base(FEW), +1, claims.DIRECTION),       # every seed, p >= 0.125
    ([0.52, 0.49, 0.53, 0.48], base(FEW), +1, claims.MIXED),    # the seeds disagree
    (steps(FEW, -0.02), base(FEW), +1, claims.AGAINST),
    (steps(SIGNIFICANT, -0.02), base(SIGNIFICANT), +1, claims.CONTRADICTED),
    (steps(SIGNIFICANT, -0.02), base(SIGNIFICANT), -1, claims.SUPPORTED),  # lower is claimed
    ([0.6], [0.5], +1, claims.TOO_FEW),
])
def test_a_paired_part(arm, ref, sign, expected):
    assert level(arm, ref, sign) == expected


def test_a_paired_part_without_shared_seeds_has_no_data():
    ev = claims.Evidence(pd.concat([rows({"x": {"m": [0.6, 0.6]}}),
                                    rows({"none": {"m": [0.5, 0.5]}}).assign(seed=[5, 6])]))
    part = ev.part("x raises m", "x", "none", "m", +1)
    ev.correct()
    assert part.level == claims.NO_DATA


def generalizes(n: int, acc: float, xent: float, gap: float) -> claims.Generalizes:
    """x against none at n seeds: test accuracy, test cross-entropy and gap moved by the
    given amounts at every seed."""
    ev = claims.Evidence(rows({
        "x": {"test_acc": steps(n, acc), "test_xent": steps(n, xent), "gap_acc": steps(n, gap)},
        "none": {"test_acc": base(n), "test_xent": base(n), "gap_acc": base(n)}}))
    part = ev.generalizes("x generalizes better", "x")
    ev.correct()
    return part


@pytest.mark.parametrize("n, acc, xent, gap, expected", [
    (SIGNIFICANT, +0.01, 0.0, -0.01, claims.SUPPORTED),       # higher test accuracy
    (SIGNIFICANT, 0.0, -0.01, +0.01, claims.SUPPORTED),       # lower test xent, wider gap
    (FEW, +0.01, 0.0, -0.01, claims.DIRECTION),
    (SIGNIFICANT, -0.01, 0.0, -0.02, claims.UNDERFITTING),    # a smaller gap, worse test
    (FEW, -0.01, 0.0, -0.02, claims.UNDERFITTING_DIRECTION),
    (SIGNIFICANT, -0.01, 0.0, +0.01, claims.CONTRADICTED),    # worse test, no smaller gap
    (FEW, -0.01, 0.0, +0.01, claims.AGAINST),
    (SIGNIFICANT, +0.01, +0.01, -0.01, claims.MIXED),         # better accuracy, worse xent
    (SIGNIFICANT, 0.0, 0.0, -0.02, claims.MIXED),             # only the gap moved
])
def test_a_generalizes_part(n, acc, xent, gap, expected):
    assert generalizes(n, acc, xent, gap).level == expected


def test_a_smaller_gap_alone_never_supports_generalization():
    part = generalizes(SIGNIFICANT, 0.0, 0.0, -0.05)
    assert part.gap.level == claims.SUPPORTED and part.level != claims.SUPPORTED


def test_an_unresolved_part_whose_interval_excludes_0_says_so():
    ev = claims.Evidence(rows({"x": {"m": steps(FEW, +0.02)}, "none": {"m": base(FEW)}}))
    part = ev.part("x raises m", "x", "none", "m", +1)
    ev.correct()
    assert part.level == claims.DIRECTION
    assert part.verdict() == (f"{claims.DIRECTION} (the interval excludes 0; the exact test "
                              "after Holm does not)")


@pytest.mark.parametrize("fraction, claim_zero, expected", [
    ([0.05, 0.02], True, claims.SUPPORTED),      # >= 1% exactly zero in every seed
    ([0.0, 0.0], True, claims.CONTRADICTED),     # < 0.1% in every seed
    ([0.05, 0.0], True, claims.MIXED),
    ([0.0, 0.0], False, claims.SUPPORTED),
    ([0.05, 0.02], False, claims.CONTRADICTED),
])
def test_a_measured_part(fraction, claim_zero, expected):
    layers = {"dense": {"shape": [10, 10]}}
    ev = claims.Evidence(rows({"l1": {"sparsity_zero": fraction}}).assign(
        layers=[layers] * len(fraction)))
    assert claims._zero_part(ev, "l1", "zeroes weights", claim_zero).level == expected


@pytest.mark.parametrize("levels, expected", [
    ([claims.SUPPORTED, claims.SUPPORTED, claims.UNTESTABLE], claims.SUPPORTED),
    ([claims.SUPPORTED, claims.DIRECTION], claims.DIRECTION),
    ([claims.CONTRADICTED, claims.UNDERFITTING], claims.CONTRADICTED),
    ([claims.AGAINST, claims.UNDERFITTING_DIRECTION], claims.AGAINST),
    ([claims.SUPPORTED, claims.UNDERFITTING], "partly supported"),
    ([claims.MIXED, claims.AGAINST], "not supported"),
    ([claims.UNTESTABLE], claims.UNTESTABLE),
    ([claims.NO_DATA, claims.UNTESTABLE], claims.NO_DATA),
    ([claims.SUPPORTED, claims.TOO_FEW], "supported (1 of 2 parts without enough data)"),
])
def test_a_claim_composes_its_parts(levels, expected):
    assert claims.compose(levels) == expected
