"""Ioffe & Szegedy (2015), Figure 1: the report of a sigmoid MLP on MNIST with and without
batch normalization, with its claims: batch norm ends higher and gets there in fewer steps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from regbench import stats
from regbench.document import Heading, Para, Table, draw
from regbench.reproduce.common import (
    DIRECTION_RULE,
    budget_table,
    described,
    direction_verdicts,
    fmt_ci,
    header,
    interval,
    paired_pct,
    pct_interval,
    seeds,
    updates_per_epoch,
)
from regbench.reproduce.registry import Reproduction, study_path
from regbench.study import load_study

THRESHOLDS = (0.95, 0.97)  # test accuracies whose first crossing the report times
ARMS = ("none", "batchnorm")


def steps_to(curve: dict, threshold: float) -> float:
    """The first recorded step with test accuracy >= threshold; NaN if never reached."""
    for step, acc in zip(curve["step"], curve["test_acc"]):
        if acc >= threshold:
            return float(step)
    return math.nan


def ioffe_blocks(repro: Reproduction, rows: pd.DataFrame) -> list:
    blocks = header(repro, rows)
    study = load_study(study_path(repro.studies[0]))
    t = study.training
    steps_per_epoch = updates_per_epoch(study)
    blocks += budget_table(repro, [
        ("network", "784-100-100-100-10, sigmoid; batch norm before each sigmoid"),
        ("steps", f"{steps_per_epoch * t.epochs:,} of {t.batch_size} examples "
                  f"({t.epochs} epochs of {steps_per_epoch})"),
        ("input", "grey levels scaled to [0, 1] (not binarized)"),
        ("optimizer", f"plain SGD, learning rate {t.learning_rate} (chosen, not tuned); "
                      "Glorot-uniform initial weights"),
        ("runs", f"seeds {seeds(study.seeds)}"),
        ("curve", f"validation and test accuracy every ~{t.curve_every} steps")])
    ok = rows[rows["status"] == "ok"] if len(rows) else rows
    per_arm = {arm: _curves(ok[ok["arm"] == arm] if len(ok) else ok) for arm in ARMS}
    lines = [_summary(arm, *per_arm[arm]) for arm in ARMS]
    blocks += [Heading("Final accuracy and steps to 95% and 97% test accuracy", 2),
               Para("The paper reports Figure 1 only (no table). Steps are read off the "
                    "recorded curve (first point at or above the threshold), mean ± "
                    "half-width of the 95% t-interval over seeds."),
               Table(("arm", "final test accuracy %", "steps to 95%", "steps to 97%"),
                     tuple(lines))]
    blocks += [*ioffe_claims(rows, per_arm),
               Para("No paper column and no ranking agreement: the paper gives Figure 1 "
                    "without values, and the one order two arms have is the first claim.")]
    if any(curves for _, curves in per_arm.values()):
        blocks += [Heading("Figure", 2), draw(
            "accuracy_vs_steps", "Test accuracy against training steps, mean over seeds and "
            "the min-max band (the paper's Figure 1a).",
            lambda fig, axes: plot_curves(axes[0, 0], per_arm), size=(7, 4.5))]
    return blocks


def _curves(part: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """An arm's rows and the accuracy curves stored in them."""
    return part, [c for c in part.get("curve", pd.Series([], dtype=object))
                  if isinstance(c, dict)]


def _summary(arm: str, part: pd.DataFrame, curves: list[dict]) -> tuple[str, ...]:
    """An arm's final test accuracy and, per threshold, the steps to reach it."""
    cells = [arm, fmt_ci(pct_interval(part["test_acc"])) if len(part) else "not yet run"]
    for threshold in THRESHOLDS:
        reached = [steps_to(c, threshold) for c in curves]
        missed = sum(math.isnan(s) for s in reached)
        cells.append("–" if not reached else fmt_ci(stats.describe(reached), 0)
                     + (f"; {missed} seed(s) never" if missed else ""))
    return tuple(cells)


def ioffe_claims(rows: pd.DataFrame, per_arm: dict) -> list:
    """Batch norm against none, paired by seed: the final test accuracy and the steps to each
    threshold."""
    final = paired_pct(rows, "batchnorm", "none", "test_acc")
    lines = [("batch norm reaches a higher final test accuracy", interval(final))]
    claims = [(final, 1)]
    budget = max((c["step"][-1] for _, curves in per_arm.values() for c in curves), default=0)
    for threshold in THRESHOLDS:
        steps = {arm: _steps_by_seed(part, threshold) for arm, (part, _) in per_arm.items()}
        common = sorted(set(steps["none"]) & set(steps["batchnorm"]))
        # a seed that never reaches the threshold counts as the whole budget: a lower bound
        d = described([_or(steps["batchnorm"][s], budget) - _or(steps["none"][s], budget)
                       for s in common])
        lines.append((f"batch norm reaches {threshold:.0%} test accuracy in fewer steps",
                      "–" if d["n"] < 2 else
                      f"{d['mean']:+.0f} [{d['ci_low']:+.0f}, {d['ci_high']:+.0f}] steps"))
        claims.append((d, -1))
    lines = [(*line, verdict) for line, verdict in zip(lines, direction_verdicts(claims))]
    return [Heading("Claims", 2),
            Para("Paired by seed, batch norm − none, mean [95% t-interval]; a seed that never "
                 "reaches a threshold counts as the whole run. " + DIRECTION_RULE),
            Table(("claim", "reproduced", "verdict"), tuple(lines))]


def _steps_by_seed(part: pd.DataFrame, threshold: float) -> dict:
    """Seed -> steps to the threshold, over the rows with a stored curve."""
    if not len(part):
        return {}
    return {seed: steps_to(curve, threshold) for seed, curve in
            zip(part["seed"], part.get("curve", [])) if isinstance(curve, dict)}


def _or(value: float, default: float) -> float:
    return default if math.isnan(value) else value


def plot_curves(ax, per_arm: dict):
    colors = {"none": "#4d4d4d", "batchnorm": "#9467bd"}
    for arm, (_, curves) in per_arm.items():
        if not curves:
            continue
        length = min(len(c["step"]) for c in curves)
        steps = np.asarray(curves[0]["step"][:length])
        acc = np.array([c["test_acc"][:length] for c in curves])
        ax.plot(steps, acc.mean(axis=0), color=colors[arm],
                label=f"{'with' if arm == 'batchnorm' else 'without'} BN (n={len(curves)})")
        ax.fill_between(steps, acc.min(axis=0), acc.max(axis=0), color=colors[arm], alpha=0.2,
                        linewidth=0)
    ax.set_ylim(0.7, 1.0)
    ax.set_xlabel("training steps")
    ax.set_ylabel("test accuracy")
    ax.legend(loc="lower right")
