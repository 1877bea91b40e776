"""Per-arm summaries of stored rows: n and mean ± std of the headline metrics."""

from __future__ import annotations

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
GROUP = ["problem", "arm"]
BUDGET = ["backend", "epochs", "train_subset", "batch_size", "learning_rate"]  # split groups
# where they vary


def summarize(rows: pd.DataFrame, columns=tuple(HEADLINE)) -> pd.DataFrame:
    """One row per (problem, arm) in order of first appearance: n, mean and std per column.

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
    return out


def group_columns(rows: pd.DataFrame) -> list[str]:
    """(problem, arm), plus any budget setting that differs between rows of the store."""
    return GROUP + [c for c in BUDGET if c in rows and rows[c].nunique(dropna=False) > 1]


def _mean_std(mean: float, std: float, digits: int) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.{digits}f} ± {0.0 if pd.isna(std) else std:.{digits}f}"


def format_table(summary: pd.DataFrame, columns=tuple(HEADLINE)) -> str:
    """A plain-text table: mean ± std per metric, one line per arm."""
    if summary.empty:
        return "no results yet"
    group = summary.columns[:list(summary.columns).index("n")].tolist()
    headers = [*group, "n", *[HEADLINE.get(c, c) for c in columns], "notes"]
    body = []
    for _, r in summary.iterrows():
        row = [str(r[g]) for g in group] + [str(r["n"])]
        row += [_mean_std(r[f"{c}_mean"], r[f"{c}_std"], 1 if c == "epochs_run" else 4)
                for c in columns]
        row.append(", ".join(f"{r[k]} {k}" for k in ("diverged", "failed") if r[k]))
        body.append(row)
    return text_table(headers, body)
