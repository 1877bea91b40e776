"""`bench-compare`: what got slower or faster between two runs of the suite.

Both runs must come from the same machine: only then are the per-round times of a benchmark
two samples of one quantity. Each benchmark is tested on its own and the p-values are
corrected together (Holm), so that a run of a hundred benchmarks does not report chance
differences as regressions.
"""

from __future__ import annotations

import numpy as np

from regbench.bench.results import ratio_of_medians
from regbench.stats import holm


def compare(baseline, new, alpha: float = 0.05):
    """Benchmarks in both runs: ratio of medians new / baseline with a 95% interval, and a
    two-sided Mann-Whitney U test on the per-round times, Holm-corrected over all benchmarks.

    `baseline`, `new`: DataFrames from `load_runs`. Returns one row per common benchmark with
    `change` in {"slower", "faster", "same"}, sorted by ratio (slowest first).
    """
    import pandas as pd
    from scipy import stats as sps

    base = {(r["backend"], r["name"]): r for _, r in baseline.iterrows()}
    rows = []
    for _, r in new.iterrows():
        b = base.get((r["backend"], r["name"]))
        if b is None:
            continue
        ratio, low, high = ratio_of_medians(r["samples"], b["samples"])
        p = sps.mannwhitneyu(r["samples"], b["samples"], alternative="two-sided").pvalue
        rows.append({"backend": r["backend"], "name": r["name"], "baseline_ms": b["median"] * 1e3,
                     "new_ms": r["median"] * 1e3, "ratio": ratio, "ratio_low": low,
                     "ratio_high": high, "baseline_rounds": b["rounds"], "new_rounds": r["rounds"],
                     "p": float(p)})
    out = pd.DataFrame(rows, columns=["backend", "name", "baseline_ms", "new_ms", "ratio",
                                      "ratio_low", "ratio_high", "baseline_rounds", "new_rounds",
                                      "p"])
    out["p_holm"] = holm(out["p"])
    significant = out["p_holm"] < alpha
    out["change"] = np.where(significant & (out["ratio"] > 1), "slower",
                             np.where(significant & (out["ratio"] < 1), "faster", "same"))
    return out.sort_values("ratio", ascending=False, ignore_index=True)


def format_comparison(result, alpha: float, only_in: dict) -> str:
    """What `bench-compare` prints: the significant changes, a count of the rest, and the
    benchmarks `only_in` one run ({"baseline": names, "new": names})."""
    lines = []
    for change in ("slower", "faster"):
        rows = result[result["change"] == change]
        lines.append(f"{change} ({len(rows)}, Holm-corrected Mann-Whitney U p < {alpha}):")
        for _, r in rows.iterrows():
            lines.append(f"  {r['name']} [{r['backend']}]: {r['baseline_ms']:.3g} -> "
                         f"{r['new_ms']:.3g} ms, x{r['ratio']:.3f} "
                         f"[{r['ratio_low']:.3f}, {r['ratio_high']:.3f}], p_holm {r['p_holm']:.2g}")
    lines.append(f"no significant change: {int((result['change'] == 'same').sum())} of "
                 f"{len(result)} compared")
    for side, names in only_in.items():
        if names:
            lines.append(f"only in {side}: {len(names)} ({', '.join(sorted(names)[:5])}"
                         f"{', ...' if len(names) > 5 else ''})")
    return "\n".join(lines)

