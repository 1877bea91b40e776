"""Per-arm summaries of stored rows: n and mean ± std of the headline metrics, and each arm's
test accuracy against `none` at the same seeds; the terminal's table after a run and `show`."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd

from regbench.document import text_table

HEADLINE = {  # column -> heading
    "test_acc": "test acc",
    "gap_acc": "gap (acc)",
    "gap_xent": "gap (xent)",
    "sparsity_lt_1e-3": "|w|<1e-3",
    "sparsity_zero": "w==0",
    "epochs_run": "epochs",
}
TERMINAL = ("test_acc", "gap_acc", "sparsity_lt_1e-3", "sparsity_zero", "epochs_run")
BASELINE = "none"
DIGITS = {"test_acc": 4, "epochs_run": 1, "sparsity_lt_1e-3": 2, "sparsity_zero": 2}
# (the others 3), so that the table fits 100 columns; epochs run: the mean only
WIDTH = 100  # terminal columns the table fits in
GROUP = ["problem", "arm"]
BUDGET = ["backend", "epochs", "train_subset", "batch_size", "learning_rate"]  # split groups
# where they vary


def summarize(rows: pd.DataFrame, columns=tuple(HEADLINE), arms=None) -> pd.DataFrame:
    """One row per (problem, arm): n, mean and std per column, and `diff_*`: test accuracy
    minus `none`'s at the same seeds (mean and 95% t-interval). Groups in order of first
    appearance; within a problem, arms in the order `arms` gives (a study's), else `none`
    first and the others as they appear.

    Only cells with status `ok` count; the others are tallied in `diverged` and `failed`.
    """
    if rows.empty:
        return pd.DataFrame()
    # Failed rows have no metrics: a store of failed cells only lacks the columns.
    rows = rows.assign(**{c: float("nan") for c in columns if c not in rows})
    group = group_columns(rows)
    # A setting that older rows lack is a group of its own ("-"): groupby drops NaN keys.
    rows = rows.assign(**{c: rows[c].astype(object).where(rows[c].notna(), "-")
                          for c in group if c not in GROUP})
    status = rows.get("status", pd.Series("ok", index=rows.index))
    ok = rows[status == "ok"]
    order = rows[group].drop_duplicates()
    stats = ok.groupby(group, sort=False)[list(columns)].agg(["mean", "std"])
    stats.columns = [f"{c}_{s}" for c, s in stats.columns]
    counts = rows.assign(status=status).groupby(group, sort=False)["status"].value_counts()
    counts = counts.unstack(fill_value=0)
    out = order.merge(stats.reset_index(), on=group, how="left")
    out.insert(len(group), "n", [int(counts.loc[tuple(g)].get("ok", 0)) for g in order.values])
    for name in ("diverged", "failed"):
        out[name] = [int(counts.loc[tuple(g)].get(name, 0)) for g in order.values]
    diffs = [_paired(ok, dict(zip(group, g))) for g in order.values]
    out["diff_mean"], out["diff_low"], out["diff_high"] = (list(v) for v in zip(*diffs))
    return _ordered(out, group, arms)


def _paired(ok: pd.DataFrame, where: dict) -> tuple[float, float, float]:
    """Test accuracy of the group `where` minus `none`'s in the same problem and budget, at
    the seeds where both are ok: mean and 95% t-interval (NaN for `none` itself)."""
    from regbench import stats

    if where["arm"] == BASELINE or "seed" not in ok or "test_acc" not in ok:
        return math.nan, math.nan, math.nan
    same = np.ones(len(ok), bool)
    for column, value in where.items():
        if column != "arm":
            same &= (ok[column] == value).to_numpy()
    part = ok[same]
    arm = part[part["arm"] == where["arm"]].groupby("seed")["test_acc"].first()
    base = part[part["arm"] == BASELINE].groupby("seed")["test_acc"].first()
    d = stats.describe((arm - base).dropna().astype(float))
    return d["mean"], d["ci_low"], d["ci_high"]


def _ordered(out: pd.DataFrame, group: list[str], arms) -> pd.DataFrame:
    seen = list(dict.fromkeys(out["arm"]))
    ranked = [*(arms or []), *sorted(seen, key=lambda a: a != BASELINE)]
    rank = {arm: ranked.index(arm) for arm in seen}
    keys = [c for c in group if c != "arm"]
    first = {k: i for i, k in enumerate(dict.fromkeys(map(tuple, out[keys].values)))}
    order = sorted(range(len(out)), key=lambda i: (first[tuple(out[keys].values[i])],
                                                     rank[out["arm"].iloc[i]]))
    return out.iloc[order].reset_index(drop=True)


def group_columns(rows: pd.DataFrame) -> list[str]:
    """(problem, arm), plus any budget setting that differs between rows of the store."""
    return GROUP + [c for c in BUDGET if c in rows and rows[c].nunique(dropna=False) > 1]


def _mean_std(mean: float, std: float, digits: int) -> str:
    """`mean±std`; the mean alone where `std` is NaN."""
    if pd.isna(mean):
        return "-"
    return f"{mean:.{digits}f}" + ("" if pd.isna(std) else f"±{std:.{digits}f}")


def format_table(summary: pd.DataFrame, columns=TERMINAL) -> str:
    """Plain-text tables, one per problem and budget (named above it: `mnist_mlp, backend
    jax:`), one line per arm: n, mean ± std per metric and the difference from `none` with its
    interval; columns that say nothing (all zero, all empty) left out. A table wider than
    WIDTH states the columns every arm shares above it and its cells not ok below it."""
    if summary.empty:
        return "no results yet"
    keys = summary.columns[:list(summary.columns).index("n")].drop("arm").tolist()
    columns = [c for c in columns if c == "test_acc" or f"{c}_mean" in summary
               and not (summary[f"{c}_mean"].fillna(0).abs() < 5e-5).all()]  # all 0: left out
    with_diff = summary["diff_mean"].notna().any() if "diff_mean" in summary else False
    with_notes = (summary[["diverged", "failed"]] > 0).any().any()
    tables = []
    for values, part in summary.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        title = ", ".join([str(values[0])] + [f"{k} {v}" for k, v in zip(keys[1:], values[1:])])
        tables.append(f"{title}:\n" + _table(part, columns, with_diff, with_notes))
    return "\n\n".join(tables)


def _table(part: pd.DataFrame, columns, with_diff: bool, with_notes: bool) -> str:
    """One table; narrowed, step by step, only where it is wider than WIDTH: first its cells
    not ok listed under it rather than in a column, then the columns whose cell is the same
    for every arm (`n`, `epochs`) stated once above it."""
    headers, body = _cells(part, columns, with_diff, with_notes)
    above, below = [], []
    if with_notes and _too_wide(headers, body):
        headers, body, below = _notes_below(headers, body)
    if _too_wide(headers, body) and len(body) > 1:
        headers, body, above = _shared_above(headers, body)
    return "\n".join([*above, text_table(headers, body), *below])


def _notes_below(headers: list[str], body: list[list[str]]):
    """The last column, the cells not ok, as a line under the table."""
    notes = [f"{row[0]}: {row[-1]}" for row in body if row[-1]]
    lines = [textwrap.fill("not ok: " + "; ".join(notes), WIDTH, subsequent_indent="  ",
                           break_on_hyphens=False)] if notes else []
    return headers[:-1], [row[:-1] for row in body], lines


def _shared_above(headers: list[str], body: list[list[str]]):
    """The columns (but the arm's) whose cell is the same for every arm, as a line above."""
    shared = [i for i in range(1, len(headers)) if len({row[i] for row in body}) == 1]
    keep = [i for i in range(len(headers)) if i not in shared]
    lines = ["every arm: " + ", ".join(f"{headers[i]} {body[0][i]}" for i in shared)
             ] if shared else []
    return [headers[i] for i in keep], [[row[i] for i in keep] for row in body], lines


def _too_wide(headers: list[str], body: list[list[str]]) -> bool:
    return max(map(len, text_table(headers, body).splitlines())) > WIDTH


def _cells(part: pd.DataFrame, columns, with_diff: bool, with_notes: bool):
    """The headers and one row of cells per arm."""
    headers = ["arm", "n", *[HEADLINE.get(c, c) for c in columns]]
    if with_diff:
        headers.insert(3, f"vs {BASELINE} (pp, 95% CI)")
    if with_notes:
        headers.append("not ok")
    body = []
    for _, r in part.iterrows():
        row = [str(r["arm"]), str(r["n"])]
        row += [_mean_std(r[f"{c}_mean"], math.nan if c == "epochs_run" else r[f"{c}_std"],
                          DIGITS.get(c, 3)) for c in columns]
        if with_diff:
            row.insert(3, _diff(r))
        if with_notes:
            row.append(", ".join(f"{r[k]} {k}" for k in ("diverged", "failed") if r[k]))
        body.append(row)
    return headers, body


def _diff(r) -> str:
    if pd.isna(r["diff_mean"]):
        return "-"
    if pd.isna(r["diff_low"]):  # one pair: no interval
        return f"{100 * r['diff_mean']:+.2f}"
    return (f"{100 * r['diff_mean']:+.2f} [{100 * r['diff_low']:+.1f},"
            f"{100 * r['diff_high']:+.1f}]")
