"""The claims report's first section on hand-made rows: each claim's verdict, then each tested
part with its verdict and its paired effect, mean [95% t-interval], numbers worked by hand."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regbench import claims
from regbench.claims_finding import difference, finding_blocks


@pytest.mark.parametrize("diffs, metric, expected", [
    # +1, +2, +3 pp: mean 2, t(0.975, 2) x 1 / sqrt(3) = 2.48 either side
    ([0.01, 0.02, 0.03], "test_acc", "+2.00 pp [-0.48, +4.48]"),  # fractions in pp
    ([0.01, 0.02, 0.03], "sparsity_lt_1e-3", "+2.00 pp [-0.48, +4.48]"),
    ([-0.49, -0.50, -0.51], "l2_norm", "-0.500 [-0.525, -0.475]"),  # 3 significant digits
    ([-51.79, -51.80, -51.81], "l2_norm", "-51.8 [-51.8, -51.8]"),   # the mean's decimals
    ([0.01], "test_acc", "+1.00 pp"),  # one seed: no interval
    ([], "test_acc", "no seed where both are ok"),
])
def test_a_difference_is_its_mean_and_t_interval(diffs, metric, expected):
    assert difference(np.array(diffs), metric) == expected


def rows(values: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """`arm -> metric -> value per seed` as ok rows."""
    return pd.DataFrame([{"arm": arm, "seed": seed, "status": "ok",
                          **{m: v[seed] for m, v in metrics.items()}}
                         for arm, metrics in values.items()
                         for seed in range(len(next(iter(metrics.values()))))])


def claim(values: dict, with_sparsity: bool = True) -> claims.Claim:
    """One claim of four parts: x generalizes better than none (test accuracy and
    cross-entropy), x has more near-zero weights (a paired part), a measurement, and a part
    nothing here tests."""
    ev = claims.Evidence(rows(values))
    parts = [ev.generalizes("`x` generalizes better than `none`", "x")]
    if with_sparsity:
        parts.append(ev.part("more near-zero weights", "x", "none", "sparsity_lt_1e-3", +1))
    parts += [claims.Part("stops in time", fixed=claims.SUPPORTED, evidence="every seed"),
              claims.Part("reduces co-adaptation", fixed=claims.UNTESTABLE)]
    ev.correct()
    return claims.Claim(1, "x helps", "X helps.", parts)


NONE = {"test_acc": [0.90, 0.91, 0.92], "test_xent": [0.30, 0.31, 0.32],
        "gap_acc": [0.05, 0.05, 0.05], "sparsity_lt_1e-3": [0.10, 0.10, 0.10]}
X = {"test_acc": [0.91, 0.93, 0.95], "test_xent": [0.29, 0.30, 0.31],  # +1, +2, +3 pp; -0.01
     "gap_acc": [0.04, 0.04, 0.04], "sparsity_lt_1e-3": [0.60, 0.61, 0.62]}


def test_the_finding_lists_each_claim_then_its_tested_parts_with_their_effects():
    first = claim({"x": X, "none": NONE})
    second = claim({"x": X, "none": NONE}, with_sparsity=False)
    heading, _, table = finding_blocks([("A", [first]), ("B", [second])],
                                       claims.METRIC_NAMES)
    assert heading.text == "Finding"
    assert table.headers == ("#", "claim, then each part tested", "at A", "effect [95% CI]",
                             "at B", "effect [95% CI]")
    generalizes = ("`x` − `none`: test accuracy +2.00 pp [-0.48, +4.48]; test cross-entropy "
                   "-0.0100 [-0.0100, -0.0100]")
    assert table.rows == (
        ("1", "x helps", f"**{first.verdict}**", "", f"**{second.verdict}**", ""),
        ("", "`x` generalizes better than `none`", "supported in direction", generalizes,
         "supported in direction", generalizes),
        ("", "more near-zero weights", "supported in direction",
         "`x` − `none`: +51.00 pp [+48.52, +53.48]", "–", "–"),  # not tested at B
        ("", "stops in time", "supported", "–", "supported", "–"),  # a measurement
    )  # the untestable part is left to the claim's section


def test_the_committed_claims_report_opens_on_the_effects():
    text = (Path(__file__).resolve().parents[1] / "reports" / "claims" / "README.md").read_text()
    finding = text[text.index("## Finding"):text.index("**Contents**")]
    assert re.search(r"^\| 6 \| dropout prevents overfitting \| \*\*[a-z ]+\*\* \|", finding,
                     re.M)
    effects = re.findall(r"`dropout` − `none`: test accuracy ([-+]\d+\.\d\d) pp "
                         r"\[([-+]\d+\.\d\d), ([-+]\d+\.\d\d)\]", finding)
    assert len(effects) == 4  # claims 1 and 6, at both strengths
    for mean, low, high in effects:
        assert float(low) <= float(mean) <= float(high)
