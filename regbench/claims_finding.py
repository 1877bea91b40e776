"""The claims report's first section: each claim's verdict at each store and, under it, each
tested part with its verdict and the effect it rests on (first arm − second, paired by seed:
mean and 95% t-interval), so the numbers behind a verdict come before the rules and the
detail. It reads the evaluated claims (`claims.evaluate`) and computes no statistic of its own.
"""

from __future__ import annotations

import math

import numpy as np

from regbench import document, stats

# Metrics that are fractions (accuracies, shares of weights or pixels): shown in percentage
# points, as every accuracy in the reports; the others (cross-entropies, norms, epochs) as is.
FRACTIONS = ("test_acc", "gap_acc", "sparsity_", "dead_inputs_")


def finding_blocks(stores: list[tuple[str, list]], names: dict[str, str]) -> list:
    """`stores`: (label, claims) per store, its claims (`claims.Claim`) the same ones in the
    same order for every store; `names`: metric -> what a reader calls it."""
    headers = ["#", "claim, then each part tested"]
    for label, _ in stores:
        headers += [f"at {label}", "effect [95% CI]"]
    lines = []
    for same in zip(*(claims for _, claims in stores)):
        lines.append((str(same[0].number), same[0].short,
                      *(cell for c in same for cell in (f"**{c.verdict}**", ""))))
        lines += [_part_line(parts, names) for parts in _aligned(same)]
    return [document.Heading("Finding", 2),
            document.Para("Each claim's verdict in bold, then each part of it this study can "
                          "test, with the part's verdict and its effect: first arm − "
                          "second, paired by seed, mean [95% t-interval]; accuracies and shares in "
                          "percentage points. A part without an effect is a measurement "
                          "every seed must pass; its numbers are in the claim's section. "
                          "The rules are in [How verdicts are reached]"
                          "(#how-verdicts-are-reached)."),
            document.Table(tuple(headers), tuple(lines))]


def _aligned(same: tuple) -> list[list]:
    """The tested parts of one claim at each store, matched by what they compare (a
    measurement by its text), in order of first appearance; None where a store lacks one."""
    keyed = [{_key(p): p for p in claim.tested()} for claim in same]
    keys = dict.fromkeys(k for parts in keyed for k in parts)
    return [[parts.get(k) for parts in keyed] for k in keys]


def _key(part) -> tuple:
    return tuple((c.test.arm, c.test.ref, c.test.metric) for c in part.comparisons) or (
        part.text,)


def _part_line(parts: list, names: dict[str, str]) -> tuple[str, ...]:
    found = [p for p in parts if p is not None]
    text = " / ".join(dict.fromkeys(p.text for p in found))  # a target may differ per store
    cells = []
    for part in parts:
        cells += ["–", "–"] if part is None else [part.level, effect(part, names)]
    return ("", text, *cells)


def effect(part, names: dict[str, str]) -> str:
    """The part's paired effect, e.g. "`l1` − `none`: -11.59 pp [-11.90, -11.28]"; a part
    with two comparisons of one pair of arms (test accuracy and cross-entropy) names each
    metric. "–": a measurement, not a paired effect."""
    comparisons = part.comparisons
    if not comparisons:
        return "–"
    test = comparisons[0].test
    named = len(comparisons) > 1
    return f"`{test.arm}` − `{test.ref}`: " + "; ".join(
        (f"{names.get(c.test.metric, c.test.metric)} " if named else "")
        + difference(c.test.diffs, c.test.metric) for c in comparisons)


def difference(diffs: np.ndarray, metric: str) -> str:
    """Mean [95% t-interval] of paired differences, the interval to the mean's decimals; the
    mean alone at one seed."""
    if len(diffs) == 0:
        return "no seed where both are ok"
    scale, unit = (100, " pp") if metric.startswith(FRACTIONS) else (1, "")
    mean = scale * float(np.mean(diffs))
    low, high = (scale * x for x in stats.interval(diffs))
    places = 2 if unit else _places(mean)
    text = f"{mean:+.{places}f}{unit}"
    return text if math.isnan(low) else f"{text} [{low:+.{places}f}, {high:+.{places}f}]"


def _places(x: float) -> int:
    """Decimals that give `x` three significant digits."""
    return 3 if x == 0 or not math.isfinite(x) else max(0, 2 - math.floor(math.log10(abs(x))))
