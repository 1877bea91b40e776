"""A tuned design's report sections, from its stored rows: every grid point's validation score
at the tuning seeds and the point chosen, what the tuning cost, and the regularization paths
(each metric against the strength of a one-parameter grid, and sparsity against accuracy).

The choice itself is read from the final rows (`grid_point`: the point they trained), so the
report shows what was trained; the tuning tables show why.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from regbench import stats
from regbench.document import Heading, Para, Table, draw
from regbench.recipe import TECHNIQUES
from regbench.study import SELECT

RULES = {  # design.select -> how the report states it
    "val_xent": "the lowest mean validation cross-entropy over the tuning seeds",
    "val_acc": "the highest mean validation accuracy over the tuning seeds",
}
PATH_METRICS = {  # column -> axis label; the first is what chose
    "val_xent": "validation cross-entropy",
    "test_acc": "test accuracy",
    "gap_acc": "gap (train − test acc)",
    "gap_xent": "gap (test − train xent)",
    "sparsity_lt_1e-3": "share |w| < 1e-3",
}
PARETO_GRIDS = ("l1", "l1_l2")


def split(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tuning rows, the others); no tuning rows for a store of another design. A tuned
    store's rows land in the order its packs finished, so its final rows are put in a fixed
    order: `none`, each technique alone in the registry's order, then combinations."""
    if "role" not in rows:
        return rows.iloc[:0], rows
    tuning = rows["role"] == "tuning"
    final = rows[~tuning]
    if tuning.any():
        order = sorted(final["arm"].unique(), key=_arm_rank)
        rank = {arm: i for i, arm in enumerate(order)}
        final = final.assign(_rank=final["arm"].map(rank)).sort_values(
            ["_rank", "seed"], kind="stable").drop(columns="_rank")
    return rows[tuning], final


def _arm_rank(arm: str) -> tuple:
    kinds = list(TECHNIQUES)
    parts = [] if arm == "none" else arm.split("+")
    return (len(parts), tuple(kinds.index(p) if p in kinds else len(kinds) for p in parts), arm)


def chosen(final: pd.DataFrame) -> dict[str, str]:
    """Grid label -> the point its final cells trained."""
    if "grid_point" not in final:
        return {}
    picked = final.dropna(subset=["grid_point"])
    return dict(zip(picked["grid"], picked["grid_point"]))


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["status"] == "ok"]


def finding_line(tuning: pd.DataFrame, final: pd.DataFrame) -> Para:
    picks = {g: p for g, p in chosen(final).items() if p != g}
    rule = _rule(tuning)
    return Para(f"Each arm at its grid point chosen on the validation split at the tuning seeds "
                f"{_seeds(tuning)} ({RULES.get(rule, rule)}); the comparison below is at the "
                f"final seeds {_seeds(final)}, which played no part in the choice. Chosen: "
                + ", ".join(f"`{p}`" for p in picks.values()) + ".")


def _rule(tuning: pd.DataFrame) -> str:
    rules = sorted(set(tuning["select"].dropna())) if "select" in tuning else []
    return rules[0] if len(rules) == 1 else "val_xent"


def _seeds(rows: pd.DataFrame) -> str:
    seeds = sorted(int(s) for s in rows["seed"].unique())
    contiguous = seeds == list(range(seeds[0], seeds[-1] + 1))
    return f"{seeds[0]}-{seeds[-1]}" if contiguous and len(seeds) > 2 else ", ".join(
        map(str, seeds))


def tuning_blocks(tuning: pd.DataFrame, final: pd.DataFrame) -> list:
    """The rule, a table per grid (every point's validation score with n), what the tuning
    cost, and the path figures."""
    rule = _rule(tuning)
    column, sign = SELECT.get(rule, SELECT["val_xent"])
    picks = chosen(final)
    ok = _ok(tuning)
    base = stats.describe(ok.loc[ok["grid"] == "none", column].astype(float))
    blocks = [Heading("Tuning on the validation split", 2),
              Para(f"Every grid point trained at the tuning seeds {_seeds(tuning)}; the point "
                   f"with {RULES.get(rule, rule)} was chosen (`select = \"{rule}\"`), a tie "
                   "(means equal at 4 decimals) going to the weaker setting; a diverged or "
                   "failed cell scores worst. Only the validation split enters: the test set "
                   "and the final seeds play no part. "
                   f"`none` at the tuning seeds: {column} {_mean_std(base)} (n = {base['n']}).")]
    for grid, part in tuning[tuning["grid"] != "none"].groupby("grid", sort=False):
        lines = []
        for point in point_order(part["grid_point"].unique()):
            cells = part[part["grid_point"] == point]
            d = stats.describe(_ok(cells)[column].astype(float))
            acc = stats.describe(_ok(cells)["val_acc"].astype(float))
            not_ok = len(cells) - d["n"]
            lines.append((f"`{point}`", str(d["n"]) + (f" ({not_ok} not ok)" if not_ok else ""),
                          _mean_std(d), _mean_std(acc),
                          "**chosen**" if picks.get(grid) == point else ""))
        blocks += [Heading(f"`{grid}`", 3),
                   Table(("grid point", "n", f"{column} (mean ± std)", "val acc", ""),
                         tuple(lines))]
    blocks += cost_blocks(tuning)
    blocks += path_blocks(tuning, picks, column)
    return blocks


def point_order(points) -> list[str]:
    """Grid points by their values (`l2@1e-05` before `l2@0.0001`), technique by technique,
    as the study file lists them; stored rows come in the order packs finished."""
    def key(point: str):
        values = []
        for part in point.split("+"):
            suffix = part.partition("@")[2]
            for item in suffix.split(","):
                text = item.partition("=")[2] or item
                try:
                    values.append((0, float(text), ""))
                except ValueError:
                    values.append((1, 0.0, text))
        return values
    return sorted(points, key=key)


def _mean_std(d: dict) -> str:
    if d["n"] == 0:
        return "–"
    return f"{d['mean']:.4f}" + ("" if math.isnan(d["std"]) else f" ± {d['std']:.4f}")


def cost_blocks(tuning: pd.DataFrame) -> list:
    """What the grid cost: cells per pack and the packs' training time. The members of a
    pack share one wall-clock fit time, so a pack is its rows' (seed, fit_s, strategy)."""
    if "fit_s" not in tuning or "pack_size" not in tuning:
        return []
    ok = tuning.dropna(subset=["fit_s"])
    packs = ok.groupby(["fit_s", "strategy"], sort=False).size()  # one fit time per pack
    total = float(sum(fit for (fit, _), _ in packs.items()))
    lines = [(strategy, str(int(n)), str(int(count)), f"{total_s:.0f}",
              f"{total_s / (n * count):.1f}")
             for (strategy, n), count, total_s in _by_size(packs)]
    load = (f" The machine's load average during the run: {ok['load_average_1min'].mean():.1f}"
            f" (mean of the rows' `load_average_1min`), on {_distinct(ok, 'cpu_count')} cores."
            if "load_average_1min" in ok else "")
    return [Heading("What the grid cost", 3),
            Para(f"{len(ok)} tuning cells trained in {len(packs)} packs, {total:.0f} s of "
                 f"training in all ({total / max(len(ok), 1):.1f} s per cell). Grid points of "
                 "one MLP that differ only in coefficients train as one stacked network, whose "
                 "fit time its members share (s per cell = pack time / members). These are "
                 "times of this run, on its machine and under its load, not a benchmark: "
                 "`regbench bench-grid` measures the speed-up against cells trained alone."
                 + load),
            Table(("strategy", "cells per pack", "packs", "fit s", "s per cell"),
                  tuple(lines))]


def _distinct(rows: pd.DataFrame, column: str) -> str:
    return ", ".join(str(v) for v in rows[column].dropna().unique()) if column in rows else "?"


def _by_size(packs: pd.Series):
    sizes: dict[tuple[str, int], list[float]] = {}
    for (fit, strategy), n in packs.items():
        sizes.setdefault((strategy, int(n)), []).append(float(fit))
    return [(key, len(fits), sum(fits)) for key, fits in sorted(sizes.items())]


# --- regularization paths ------------------------------------------------------------------

def one_parameter_grids(tuning: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Grid label -> {point: its value}, for grids of one technique over one numeric
    parameter (`l2@0.0001`): the grids a path can be drawn for."""
    out = {}
    for grid, part in tuning[tuning["grid"] != "none"].groupby("grid", sort=False):
        values = {}
        for point in part["grid_point"].unique():
            label, _, value = point.partition("@")
            if "+" in point or "," in value or label != grid:
                break
            try:
                values[point] = float(value)
            except ValueError:
                break
        else:
            out[grid] = values
    return out


def path_blocks(tuning: pd.DataFrame, picks: dict, column: str) -> list:
    grids = one_parameter_grids(tuning)
    if not grids:
        return []
    ok = _ok(tuning)
    metrics = {c: label for c, label in PATH_METRICS.items() if c in ok}
    metrics = {column: PATH_METRICS.get(column, column)} | metrics
    blocks = [Heading("Regularization paths", 3), draw(
        "paths", "Each metric against the strength of each one-parameter grid, at the tuning "
        "seeds (dots: seeds; line and band: mean and 95% t-interval; star: the point chosen on "
        f"{metrics[column]}; dashed: `none` at the same seeds). Test accuracy is shown here, "
        "not used: the choice reads the validation split only.",
        lambda fig, axes: plot_paths(axes, ok, grids, picks, list(metrics)),
        size=(3.0 * len(metrics), 2.4 * len(grids) + 0.4), ncols=len(metrics),
        nrows=len(grids), prefix="")]
    pareto = [g for g in PARETO_GRIDS if g in set(ok["grid"])]
    if pareto and "sparsity_lt_1e-3" in ok:
        blocks.append(draw(
            "sparsity_accuracy", "Sparsity against test accuracy of every grid point of "
            + " and ".join(f"`{g}`" for g in pareto) + " (mean over the tuning seeds), with "
            "`none`; the line joins the points no other point beats on both.",
            lambda fig, axes: plot_pareto(axes[0, 0], ok, pareto, picks), size=(7, 4.2)))
    return blocks


def plot_paths(axes, ok: pd.DataFrame, grids: dict, picks: dict, metrics: list[str]) -> None:
    none = ok[ok["grid"] == "none"]
    for row, (grid, values) in enumerate(grids.items()):
        part = ok[ok["grid"] == grid]
        xs = np.array([values[p] for p in part["grid_point"]])
        log = min(values.values()) > 0 and max(values.values()) / min(values.values()) >= 10
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            ys = part[metric].astype(float).to_numpy()
            ax.scatter(xs, ys, s=10, color="#1f77b4", alpha=0.6, zorder=3)
            order = sorted(values.values())
            described = [stats.describe(ys[xs == x]) for x in order]
            means = [d["mean"] for d in described]
            ax.plot(order, means, color="#1f77b4", lw=1.2)
            ax.fill_between(order, [_or(d["ci_low"], d["mean"]) for d in described],
                            [_or(d["ci_high"], d["mean"]) for d in described],
                            color="#1f77b4", alpha=0.15, lw=0)
            if grid in picks and picks[grid] in values:
                x = values[picks[grid]]
                ax.plot([x], [means[order.index(x)]], marker="*", ms=13, color="#d62728",
                        zorder=4, ls="none")
            if metric in none and len(none):
                ax.axhline(float(none[metric].astype(float).mean()), color="#555555",
                           ls="--", lw=1)
            if log:
                ax.set_xscale("log")
            ax.tick_params(labelsize=7)
            if row == 0:
                ax.set_title(PATH_METRICS.get(metric, metric), fontsize=9)
            if col == 0:
                parameter = _parameter(ok, grid)
                ax.set_ylabel(f"{grid}\n{parameter}", fontsize=9)


def _parameter(ok: pd.DataFrame, grid: str) -> str:
    """The name of the parameter a one-parameter grid varies, from the rows' settings."""
    part = ok[ok["grid"] == grid]
    for column in part.columns:
        if column.startswith(f"{grid}.") and part[column].nunique() > 1:
            return column.split(".", 1)[1]
    return ""


def _or(x: float, default: float) -> float:
    return default if math.isnan(x) else x


def plot_pareto(ax, ok: pd.DataFrame, grids: list[str], picks: dict) -> None:
    colors = {"l1": "#1f77b4", "l1_l2": "#ff7f0e", "none": "#555555"}
    points = []
    for grid in [*grids, "none"]:
        part = ok[ok["grid"] == grid]
        for point, cells in part.groupby("grid_point", sort=False):
            x = float(cells["sparsity_lt_1e-3"].mean())
            y = float(cells["test_acc"].mean())
            points.append((x, y))
            chosen_here = picks.get(grid) == point
            ax.scatter([x], [y], color=colors.get(grid, "#2ca02c"), s=60 if chosen_here else 25,
                       marker="*" if chosen_here else "o", zorder=3,
                       label=grid if point == part["grid_point"].iloc[0] else None)
    front = sorted(p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p
                                                for q in points))
    ax.plot([p[0] for p in front], [p[1] for p in front], color="#999999", lw=1, zorder=2)
    ax.set_xlabel("share of kernel weights with |w| < 1e-3")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
