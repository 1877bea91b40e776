"""Srivastava et al. (2014): the reports of Table 9 (regularizers on MNIST, each row's
coefficient chosen on a tuning grid) and Figure 10 (dropout against training-set size), with
their claims.

Selection never looks at the test set: Table 9's coefficients are chosen by mean validation
accuracy on a tuning seed that is not one of the final seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from regbench.document import Heading, Para, Table, draw
from regbench.reproduce.common import (
    DIRECTION_RULE,
    NOT_RUN,
    budget_table,
    direction_verdicts,
    figure_errorbars,
    fmt_ci,
    header,
    interval,
    kendall,
    mean_pct,
    paired_pct,
    pct_interval,
    probe_blocks,
    seeds,
    updates_per_epoch,
)
from regbench.reproduce.registry import Reproduction, study_path
from regbench.study import load_study

LATE_EPOCHS = 3  # the window of `late_val_gain`


Point = tuple[str, float]  # a Table 9 grid point: (arm, learning rate)


def grid_points(rows: pd.DataFrame, arms) -> list[Point]:
    """The (arm, learning rate) points of `arms` in the rows: the arms in grid order, each at
    every learning rate the tuning study sweeps, from the lowest."""
    rates = sorted(set(rows["learning_rate"].astype(float))) if "learning_rate" in rows else []
    return [(arm, rate) for arm in arms for rate in rates or [math.nan]]


def at_point(rows: pd.DataFrame, point: Point) -> pd.DataFrame:
    """The rows trained at a grid point (its arm, at its learning rate where one is known)."""
    arm, rate = point
    chosen = rows["arm"] == arm
    if not math.isnan(rate):
        chosen &= np.isclose(rows["learning_rate"].astype(float), rate, rtol=1e-9, atol=0)
    return rows[chosen]


def chosen_points(rows: pd.DataFrame, grid_rows) -> dict[str, Point]:
    """Method -> the grid point (arm, learning rate) with the highest mean validation accuracy;
    ties go to the first arm listed, then to the lower learning rate.

    Only validation accuracy enters: the test set plays no part in the choice.
    """
    ok = rows[rows["status"] == "ok"]
    out = {}
    for row in grid_rows:
        points = grid_points(ok, row.grid)
        scores = [at_point(ok, p)["val_acc"].mean() for p in points]
        if all(math.isnan(s) for s in scores):
            continue
        out[row.method] = points[int(np.nanargmax(scores))]
    return out


def chosen_arms(rows: pd.DataFrame, grid_rows) -> dict[str, str]:
    """Method -> the arm of its chosen grid point."""
    return {method: arm for method, (arm, _) in chosen_points(rows, grid_rows).items()}


def at_chosen(rows: pd.DataFrame, points: dict[str, Point]) -> pd.DataFrame:
    """The rows trained at one of the chosen points: a final study's rows at a learning rate
    no longer chosen (the tuning changed) are left out."""
    if not len(rows) or not points:
        return rows[:0]
    return pd.concat([at_point(rows, p) for p in points.values()])


def report_study(repro: Reproduction) -> str:
    """The study a report reads: the one trained here, else the one not run here."""
    return (repro.studies + repro.not_run)[0]


# --- Table 9 ---------------------------------------------------------------------------------

def table9_blocks(repro: Reproduction, rows: pd.DataFrame) -> list:
    blocks = header(repro, rows)
    tuning = load_study(study_path(report_study(repro)))
    final_name = tuning.name.removesuffix("_tuning")
    have = not rows.empty
    tune_rows = rows[rows["study"] == tuning.name] if have else rows
    final = rows[rows["study"] == final_name] if have else rows
    points = chosen_points(tune_rows, repro.published.rows) if len(tune_rows) else {}
    chosen = {method: arm for method, (arm, _) in points.items()}
    final = at_chosen(final, points)

    table, errors = [], []
    for row in repro.published.rows:
        arm = chosen.get(row.method)
        part = final[(final["arm"] == arm) & (final["status"] == "ok")] if arm else final[:0]
        d = pct_interval(1 - part["test_acc"].astype(float)) if len(part) else NOT_RUN
        errors.append(d)
        diff = "–" if d["n"] == 0 else f"{d['mean'] - row.error:+.2f}"
        table.append((row.method, f"{row.error:.2f}", fmt_ci(d), diff,
                      mean_pct(part, arm, "train_acc", error=True) if arm else "–",
                      late_val_gain(part), point_label(points[row.method]) if arm
                      else "not yet run"))
    published = [row.error for row in repro.published.rows]
    without_dropout = [(row.error, d["mean"]) for row, d in zip(repro.published.rows, errors)
                       if not row.method.startswith("Dropout")]
    t = tuning.training
    blocks += budget_table(repro, [
        ("network", "784-" + "-".join(map(str, tuning.model.hidden)) + "-10, "
         + tuning.model.activation),
        ("updates", f"{updates_per_epoch(tuning) * t.epochs:,} ({t.epochs} epochs of batch "
                    f"{t.batch_size})"),
        ("validation", f"{t.validation_fraction:.0%} of the training set held out per seed"),
        ("optimizer", f"SGD, learning rate {learning_rates(tuning)} x {t.lr_decay} per "
         f"epoch, momentum {t.momentum_start} to {t.momentum} over {t.momentum_epochs} epochs"),
        ("runs per row", f"tuning: seed {seeds(tuning.seeds)}; final: seeds "
                         f"{seeds(repro.final_seeds)}"),
    ])
    blocks += [Heading("Published and reproduced test error (%)", 2),
               Para("Reproduced: mean ± half-width of the 95% Student-t interval over the final "
                    "seeds, each row at the grid point chosen on the validation split. "
                    "Difference = reproduced − published (percentage points). Train error: "
                    "the training set re-evaluated in inference mode after training (mean). "
                    f"Last-epochs gain: validation accuracy at the last epoch minus "
                    f"{LATE_EPOCHS} epochs earlier (mean, pp): a row still gaining when the "
                    "budget ends is not converged."),
               Table(("method", "published", "reproduced", "difference", "train error",
                      "last-epochs gain", "chosen grid point"), tuple(table))]
    # after the claims, so that the finding says how the rows' order agrees with the paper's
    blocks += [*table9_claims(repro, final, chosen),
               Para("Ranking agreement with the paper's rows (lower error first): "
                    + kendall(published, [d["mean"] for d in errors]) + "; over the rows "
                    "without dropout: " + kendall(*zip(*without_dropout)) + ".")]
    blocks += stretch_blocks(repro, rows, final_name, points) if have else []
    blocks += tuning_blocks(repro, tune_rows, points)
    blocks += probe_blocks(repro, rows) if have else []
    if any(d["n"] for d in errors):
        labels = [row.method for row in repro.published.rows]
        blocks += [Heading("Figure", 2), draw(
            "test_error", "Test error per method: published (diamond) and reproduced (mean "
            "and 95% CI over seeds).",
            lambda fig, axes: figure_errorbars(axes[0, 0], labels, published, errors,
                                               "test error (%)"), size=(10, 3.8))]
    return blocks


def point_label(point: Point) -> str:
    arm, rate = point
    return f"`{arm}`" + ("" if math.isnan(rate) else f" at learning rate {rate:g}")


def learning_rates(study) -> str:
    """The tuning study's learning rate, or the grid its sweep tunes per row."""
    rates = sorted({t.learning_rate for t in study.trainings()})
    if len(rates) == 1:
        return f"{rates[0]:g}"
    return "tuned per row from {" + ", ".join(f"{r:g}" for r in rates) + "}"


def late_val_gain(rows: pd.DataFrame) -> str:
    """Validation accuracy gained over the last LATE_EPOCHS epochs, mean over rows, in pp."""
    gains = [h["val_acc"][-1] - h["val_acc"][-1 - LATE_EPOCHS] for h in rows.get("history", [])
             if isinstance(h, dict) and len(h.get("val_acc", [])) > LATE_EPOCHS]
    return f"{100 * float(np.mean(gains)):+.2f}" if gains else "–"


def table9_claims(repro: Reproduction, final: pd.DataFrame, chosen: dict) -> list:
    """Each row against L2, and dropout + max-norm against its neighbours: the paper's
    direction, and whether the paired 95% CI shows it."""
    published = {row.method: row.error for row in repro.published.rows}
    pairs = [(m, "L2") for m in published if m != "L2"]
    pairs += [("Dropout + Max-norm", "Dropout + L2"), ("Dropout + Max-norm", "Max-norm")]
    pairs = [(a, b) for a, b in pairs if a in published and b in published]
    lines, claims = [], []
    for a, b in pairs:
        paper = published[a] - published[b]
        d = error_difference(final, chosen.get(a), chosen.get(b))
        shown = "–" if d["n"] < 2 else (f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, "
                                         f"{d['ci_high']:+.2f}]")
        lines.append((f"{a} has lower error than {b}", f"{paper:+.2f}", shown))
        claims.append((d, -1 if paper < 0 else 1))
    lines = [(*line, verdict) for line, verdict in zip(lines, direction_verdicts(claims))]
    return [Heading("Claims", 2),
            Para("Error difference (percentage points), first method − second, paired by seed; "
                 "reproduced as mean [95% t-interval]. " + DIRECTION_RULE),
            Table(("claim", "paper", "reproduced", "verdict"), tuple(lines))]


def error_difference(rows: pd.DataFrame, a: str | None, b: str | None) -> dict:
    """Test error of arm a − arm b, paired by seed, in pp; no values without both arms."""
    if a is None or b is None:
        return {"n": 0}
    return paired_pct(rows, b, a, "test_acc")  # error a − error b = accuracy b − accuracy a


def stretch_blocks(repro: Reproduction, rows: pd.DataFrame, final_name: str,
                   points: dict[str, Point]) -> list:
    """The budget check: the stretch methods at the final budget and stretched."""
    if not repro.stretch:
        return []
    chosen = {method: arm for method, (arm, _) in points.items()}
    longer = at_chosen(rows[rows["study"] == f"{final_name}_x{repro.stretch}"], points)
    final = at_chosen(rows[rows["study"] == final_name], points)
    lines = []
    for method in repro.stretch_methods:
        arm = chosen.get(method)
        cells = [method]
        for part in (final, longer):
            part = part[(part["arm"] == arm) & (part["status"] == "ok")]
            cells += [fmt_ci(pct_interval(1 - part["test_acc"])) if len(part) else "not yet run",
                      mean_pct(part, arm, "train_acc", error=True)]
        lines.append(tuple(cells))
    epochs = next((int(e) for e in longer.get("epochs", []) if e == e), None)  # e == e: not NaN
    blocks = [Heading(f"Budget check: the schedule stretched {repro.stretch}x", 2),
              Para(f"The chosen grid points of {' and '.join(repro.stretch_methods)} trained "
                   f"again at the final seeds over {repro.stretch} times the epochs"
                   + (f" ({epochs})" if epochs else "")
                   + ", the learning rate decaying to the same final value and the momentum "
                   "ramp stretched alike. Test error % (mean ± 95% CI half-width) and train "
                   "error % (mean)."),
              Table(("method", "test error, 1x", "train error, 1x",
                     f"test error, {repro.stretch}x", f"train error, {repro.stretch}x"),
                    tuple(lines))]
    if len(repro.stretch_methods) == 2:
        first, second = repro.stretch_methods
        diffs = [f"{label}: " + interval(error_difference(part, chosen.get(second),
                                                          chosen.get(first)))
                 for label, part in (("1x", final), (f"{repro.stretch}x", longer))]
        blocks.append(Para(f"Error difference {second} − {first}, paired by seed (pp, mean "
                           "[95% t-interval]): " + "; ".join(diffs) + "."))
    return blocks


def coefficients(rows: pd.DataFrame, arm: str) -> str:
    """The technique settings of an arm as stored in its rows' specs, e.g. `l2 factor=1e-05`."""
    specs = rows.loc[rows["arm"] == arm, "spec"] if len(rows) and "spec" in rows else []
    for spec in specs:
        return "; ".join(f"{kind} " + " ".join(f"{k}={v:g}" if isinstance(v, float) else
                                               f"{k}={v}" for k, v in params.items()
                                               if k != "layers")
                         for kind, params in spec["techniques"].items())
    return "–"


def tuning_blocks(repro: Reproduction, tune_rows: pd.DataFrame,
                  points: dict[str, Point]) -> list:
    """Every grid point's validation accuracy, and which one each row chose."""
    lines = []
    ok = tune_rows[tune_rows["status"] == "ok"] if len(tune_rows) else tune_rows
    for row in repro.published.rows:
        for point in grid_points(ok, row.grid) if len(ok) else []:
            part = at_point(ok, point)
            val = part["val_acc"].astype(float).mean() * 100 if len(part) else math.nan
            lines.append((row.method, f"`{point[0]}`", coefficients(tune_rows, point[0]),
                          "–" if math.isnan(point[1]) else f"{point[1]:g}",
                          "–" if math.isnan(val) else f"{val:.2f}",
                          "chosen" if points.get(row.method) == point else ""))
    return [Heading("Tuning grid (validation split only)", 2),
            Para("Each grid point (an arm at a learning rate) trained once at the tuning seed; "
                 "the point with the highest validation accuracy is each row's choice, ties "
                 "to the first arm listed and then to the lower learning rate. The paper's "
                 "guide tunes the learning rate of a dropout net apart from that of a "
                 "standard one, hence one per row. Coefficients are in the study file's "
                 "`[techniques]` tables (Keras penalties: `l2` factor x sum w^2, `l1_late` "
                 "factor x sum |w| from half-way, `kl_sparsity` weight x sum_j KL(0.1 || mean "
                 "activation of unit j), `max_norm` c)."),
            Table(("method", "arm", "settings", "learning rate", "validation accuracy %", ""),
                  tuple(lines))]


# --- Figure 10 -------------------------------------------------------------------------------

SMALL = 500  # the paper: no gain from dropout at this many training images and fewer
ARMS = ("none", "dropout")


def fig10_blocks(repro: Reproduction, rows: pd.DataFrame) -> list:
    blocks, everything = header(repro, rows), rows
    study = load_study(study_path(report_study(repro)))
    rows = rows[rows["study"] == study.name] if len(rows) else rows
    sizes = [t.train_subset for t in study.trainings()]
    lines, gains, curves = [], {}, {arm: [] for arm in ARMS}
    for training in study.trainings():
        n = training.train_subset
        part = rows[rows["train_subset"] == n] if len(rows) else rows
        per_arm = {arm: error_pct(part, arm) for arm in ARMS}
        for arm in ARMS:
            curves[arm].append(per_arm[arm])
        gains[n] = paired_pct(part, "dropout", "none", "test_acc")
        updates = math.ceil(n / training.batch_size) * training.epochs
        train_error = [mean_pct(part, arm, "train_acc", error=True) for arm in ARMS]
        lines.append((f"{n:,}", f"{updates:,}", fmt_ci(per_arm["none"]),
                      fmt_ci(per_arm["dropout"]), interval(gains[n]), " / ".join(train_error)))
    blocks += budget_table(repro, [
        ("network", "784-" + "-".join(map(str, study.model.hidden)) + "-10, relu"),
        ("training-set sizes", ", ".join(f"{s:,}" for s in sizes)),
        ("updates", "see the table (batch 100)"),
        ("optimizer", f"SGD, learning rate {study.training.learning_rate}, momentum "
                      f"{study.training.momentum}, the same for both arms"),
        ("runs", f"seeds {seeds(study.seeds)} (a different subset per seed)")])
    blocks += [Heading("Test error (%) by training-set size", 2),
               Para("The paper gives Figure 10 as a plot, without a table of values: its "
                    "published content is the shape of the gain, tested below as claims. "
                    "Reproduced: mean ± half-width of the 95% t-interval; gain = error without "
                    "dropout − error with dropout, paired by seed, mean [95% t-interval]."),
               Table(("training images", "updates", "no dropout", "dropout",
                      "gain from dropout", "train error: none / dropout"), tuple(lines)),
               Para("Train error: mean over seeds, the training subset re-evaluated in "
                    "inference mode after training; a dropout net whose train error stays "
                    "near its test error has not fitted its training set in this budget.")]
    blocks += [*fig10_claims(gains),
               Para("No paper column and no ranking agreement: Figure 10 is a plot without "
                    "published values; the claims are its shape.")]
    blocks += probe_blocks(repro, everything) if len(everything) else []
    if any(d["n"] for d in curves["none"]):
        blocks += [Heading("Figure", 2), draw(
            "error_vs_size", "Test error against training-set size, mean and 95% CI over "
            "seeds (the paper's Figure 10 has the same axes).",
            lambda fig, axes: plot_fig10(axes[0, 0], sizes, curves), size=(7, 4.5))]
    return blocks


def error_pct(rows: pd.DataFrame, arm: str) -> dict:
    """The test error of an arm's `ok` rows, in %, over seeds."""
    if not len(rows):
        return NOT_RUN
    return pct_interval(1 - rows.loc[(rows["arm"] == arm) & (rows["status"] == "ok"),
                                     "test_acc"].astype(float))


def fig10_claims(gains: dict) -> list:
    """No gain at small sizes, a gain at the others, and its peak inside the range."""
    sizes = sorted(gains)
    small = [s for s in sizes if s <= SMALL]
    lines = []
    for s in small:
        d = gains[s]
        verdict = ("not yet run" if d["n"] < 2 else
                   "reproduced (CI includes 0 or lies below)" if d["ci_low"] <= 0 else
                   "not reproduced (dropout helps: CI above 0)")
        lines.append((f"no improvement from dropout at {s:,} images", interval(d), verdict))
    means = {s: gains[s]["mean"] for s in sizes if gains[s]["n"] >= 2}
    if len(means) == len(sizes):
        peak = max(means, key=means.get)
        interior = sizes[0] < peak < sizes[-1] and peak not in small
        verdict = ("reproduced" if interior and means[peak] > means[sizes[-1]] else
                   "not reproduced")
        text = (f"largest mean gain at {peak:,} images ({means[peak]:+.2f} pp); at "
                f"{sizes[-1]:,}: {means[sizes[-1]]:+.2f} pp")
    else:
        verdict, text = "not yet run", "–"
    lines.append(("the gain grows with data up to a sweet spot, then shrinks (shape only)",
                  text, verdict))
    larger = [s for s in sizes if s not in small]
    for s, verdict in zip(larger, direction_verdicts([(gains[s], 1) for s in larger])):
        lines.append((f"dropout lowers the test error at {s:,} images (the paper's curves)",
                      interval(gains[s]), verdict))
    return [Heading("Claims", 2),
            Para("Gain = error without dropout − error with dropout (percentage points), "
                 "paired by seed, mean [95% t-interval]. " + DIRECTION_RULE),
            Table(("claim", "reproduced", "verdict"), tuple(lines))]


def plot_fig10(ax, sizes, curves):
    colors = {"none": "#4d4d4d", "dropout": "#d62728"}
    for arm, ds in curves.items():
        mean = np.array([d["mean"] for d in ds])
        low = np.array([d.get("ci_low", math.nan) for d in ds])
        high = np.array([d.get("ci_high", math.nan) for d in ds])
        ax.plot(sizes, mean, "o-", color=colors[arm], label=arm)
        ax.fill_between(sizes, low, high, color=colors[arm], alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel("training-set size (images)")
    ax.set_ylabel("test error (%)")
    ax.legend()
