"""A study trained under several Keras backends, compared: per arm, an equivalence test of test
accuracy (TOST at a stated margin, with its power at the n used), and the ratio of the time
per epoch. Rows of one cell under different backends start from different initial weights
(each backend draws its own random numbers for a seed), so the test is unpaired (Welch)."""

from __future__ import annotations

import pandas as pd

from regbench import stats, summary
from regbench.document import Bullets, Para, Table
from regbench.plots import arms_of

MARGIN = stats.EQUIVALENCE_MARGIN  # test accuracy: equivalence within ±0.3 pp
REFERENCE = "tensorflow"  # the default backend, which the others are compared with


def backend_blocks(rows: pd.DataFrame) -> list:
    """The comparison, per problem and budget; nothing when the rows hold one backend."""
    if "backend" not in rows or rows["backend"].nunique() < 2:
        return []
    keys = [c for c in summary.group_columns(rows) if c not in ("arm", "backend")]
    blocks = [Para(
        f"Each arm's test accuracy under each backend against `{_reference(rows)}`: the "
        f"difference of means, its {1 - 2 * stats.ALPHA:.0%} Welch interval, and two one-sided "
        f"tests (TOST) that it lies within ±{100 * MARGIN:.1f} pp. **Equivalent** means TOST "
        f"p < {stats.ALPHA}; **different** that the {1 - stats.ALPHA:.0%} interval excludes 0; "
        "otherwise **not resolved** at this n. Power is the chance these seeds and spreads "
        "declare equivalence when the true difference is 0: below 0.8, a failure to declare "
        "equivalence is no evidence of a difference; the seeds per backend that would give "
        "0.8 at these spreads stand beside it. Time ratio: median seconds per epoch, "
        "this backend over the reference (a packed cell's epoch is its pack's).")]
    for values, part in rows.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        if len(keys) > 1 or len(rows.groupby(keys)) > 1:
            blocks.append(Para("**" + ", ".join(map(str, values)) + "**"))
        blocks += _comparison(part)
    return blocks


def _reference(rows: pd.DataFrame) -> str:
    backends = list(dict.fromkeys(rows["backend"]))
    return REFERENCE if REFERENCE in backends else backends[0]


def comparisons(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (arm, other backend): the TOST result and the time ratio."""
    ok = rows[rows["status"] == "ok"]
    reference = _reference(rows)
    out = []
    for arm in arms_of(rows):
        mine = ok[ok["arm"] == arm]
        base = mine[mine["backend"] == reference]
        for backend in dict.fromkeys(rows["backend"]):
            if backend == reference:
                continue
            other = mine[mine["backend"] == backend]
            test = stats.equivalence(other["test_acc"], base["test_acc"], MARGIN)
            out.append({
                "arm": arm, "backend": backend, **test,
                "mean": other["test_acc"].mean(), "reference_mean": base["test_acc"].mean(),
                "time_ratio": other["epoch_s"].median() / base["epoch_s"].median()
                if "epoch_s" in rows and len(base) and len(other) else float("nan"),
            })
    return pd.DataFrame(out)


def _comparison(rows: pd.DataFrame) -> list:
    table = comparisons(rows)
    if table.empty:
        return [Para("No arm was trained under two backends.")]
    reference = _reference(rows)
    lines = tuple((
        f"`{r.arm}`", r.backend, f"{r.n_a} / {r.n_b}", f"{r.mean:.4f} / {r.reference_mean:.4f}",
        _pp(r.diff), f"[{_pp(r.low)}, {_pp(r.high)}]", _p(r.p), f"{r.power:.2f}",
        _seeds(r.seeds_needed), f"**{r.verdict}**", f"{r.time_ratio:.2f}x")
        for r in table.itertuples())
    counts = table["verdict"].value_counts()
    return [Table(("arm", "backend", f"n (it / {reference})", "test acc (it / ref)",
                   "difference (pp)", f"{1 - 2 * stats.ALPHA:.0%} interval (pp)", "TOST p",
                   "power", "seeds for power 0.8", "verdict", "time per epoch"), lines),
            Bullets(tuple(f"{counts.get(v, 0)} of {len(table)} arms {v}"
                          for v in ("equivalent", "different", "not resolved")))]


def _seeds(n) -> str:
    return "> 10,000" if n is None or pd.isna(n) else str(int(n))


def _pp(x: float) -> str:
    return "–" if pd.isna(x) else f"{100 * x:+.2f}"


def _p(p: float) -> str:
    return "–" if pd.isna(p) else (f"{p:.3f}" if p >= 0.001 else "< 0.001")
