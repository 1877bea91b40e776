"""Zhang et al. (2017), Table 1: the report of the MLPs (and the small AlexNet, where a GPU
trains it) with and without weight decay on CIFAR-10, with its claims: each model fits its
training set, and weight decay moves test accuracy little."""

from __future__ import annotations

import math

import pandas as pd

from regbench.document import Heading, Para, Table, draw
from regbench.reproduce.common import (
    NOT_RUN,
    budget_table,
    figure_errorbars,
    fmt_ci,
    header,
    interval,
    kendall,
    paired_pct,
    pct_interval,
    probe_blocks,
    seeds,
)
from regbench.reproduce.registry import Reproduction, ZhangRow, study_path
from regbench.study import load_study

FITTED = 99.0  # lowest train accuracy (%) that counts as fitting the training set
SMALL_EFFECT = 1.0  # the largest effect of weight decay (pp) the paper's reading allows


def zhang_blocks(repro: Reproduction, rows: pd.DataFrame) -> list:
    blocks = header(repro, rows)
    lines, trained = [], []  # trained: (published row, reproduced test accuracy) trained here
    for row in repro.published.rows:
        part = rows[(rows["study"] == row.study) & (rows["arm"] == row.arm)
                    & (rows["status"] == "ok")] if len(rows) else rows
        train = pct_interval(part["train_acc"]) if len(part) else NOT_RUN
        test = pct_interval(part["test_acc"]) if len(part) else NOT_RUN
        gap = pct_interval(part["gap_acc"]) if len(part) else NOT_RUN
        lines.append((row.model, _yes(row.random_crop), _yes(row.weight_decay),
                      f"{row.train:.2f}", fmt_ci(train), f"{row.test:.2f}", fmt_ci(test),
                      "–" if test["n"] == 0 else f"{test['mean'] - row.test:+.2f}",
                      f"{row.train - row.test:.2f}", fmt_ci(gap)))
        if row.study in repro.studies:
            trained.append((row, test))
    published = [row.test for row, _ in trained]
    reproduced = [test for _, test in trained]
    mlp = load_study(study_path(repro.studies[0]))
    t = mlp.training
    blocks += budget_table(repro, [
        ("training set", f"a random {t.train_subset:,}-image subset per seed (MLPs)"),
        ("preprocessing", "centre crop 28x28, per-image standardization (model layers)"),
        ("optimizer", f"SGD, momentum {t.momentum}, learning rate {t.learning_rate} x "
                      f"{t.lr_decay} per epoch"),
        ("epochs, batch size", f"{t.epochs}, {t.batch_size}"),
        ("weight decay", "factor 5e-4: penalty factor x sum w^2 / 2 on every kernel"),
        ("runs", f"seeds {seeds(mlp.seeds)}")])
    blocks += [Heading("Published and reproduced accuracy (%)", 2),
               Para("Reproduced: mean ± half-width of the 95% t-interval over seeds. Train "
                    "accuracy is re-evaluated in inference mode after training. Difference = "
                    "reproduced − published test accuracy; the MLPs see a tenth of the "
                    "paper's training set here, so their test accuracy is expected lower."),
               Table(("model", "random crop", "weight decay", "train (paper)", "train",
                      "test (paper)", "test", "test difference", "gap (paper)", "gap"),
                     tuple(lines))]
    # after the claims, so that the finding says how the rows' order agrees with the paper's
    blocks += [*zhang_claims(repro, rows),
               Para("Ranking agreement with the paper over the MLP rows (higher test accuracy "
                    "first): " + kendall(published, [d["mean"] for d in reproduced]) + ".")]
    blocks += probe_blocks(repro, rows) if len(rows) else []
    if any(d["n"] for d in reproduced):
        labels = [f"{row.model}, wd {_yes(row.weight_decay)}" for row, _ in trained]
        blocks += [Heading("Figure", 2), draw(
            "test_accuracy", "MLP test accuracy: published (diamond, all 50,000 training "
            "images) and reproduced (mean and 95% CI, training subset).",
            lambda fig, axes: figure_errorbars(axes[0, 0], labels, published, reproduced,
                                               "test accuracy (%)"), size=(10, 3.2))]
    return blocks


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def zhang_claims(repro: Reproduction, rows: pd.DataFrame) -> list:
    """Per trained model: it fits its training set, and weight decay's effect on test
    accuracy is the paper's and small."""
    trained = [row for row in repro.published.rows if row.study in repro.studies]
    fitted = [row.train for row in trained]
    paper_fit = f"{min(fitted):.2f}-{max(fitted):.1f}"
    lines = []
    for study in repro.studies:
        part = rows[(rows["study"] == study) & (rows["status"] == "ok")] if len(rows) else rows
        model = next(row.model for row in trained if row.study == study)
        lowest = part["train_acc"].min() * 100 if len(part) else math.nan
        lines.append((f"{model} fits its training set (train accuracy ≈ 100%)", paper_fit,
                      "–" if math.isnan(lowest) else f"lowest {lowest:.2f}",
                      "not yet run" if math.isnan(lowest) else
                      "reproduced" if lowest >= FITTED else f"not reproduced (< {FITTED:.0f}%)"))
        effect = _weight_decay_effect([row for row in trained if row.study == study])
        d = paired_pct(part, "weight_decay", "none", "test_acc")
        lines.append((f"{model}: weight decay's effect on test accuracy is the paper's",
                      f"{effect:+.2f}", interval(d), _consistent(d, effect)))
        lines.append((f"{model}: weight decay moves test accuracy by at most "
                      f"{SMALL_EFFECT:.0f} point (the paper's reading: explicit regularization "
                      "is not what makes it generalize)", f"within ±{SMALL_EFFECT:.0f}",
                      interval(d), _small(d)))
    return [Heading("Claims", 2),
            Para("Effects are paired by seed (weight decay − none, percentage points), mean "
                 "[95% t-interval]."),
            Table(("claim", "paper", "reproduced", "verdict"), tuple(lines))]


def _weight_decay_effect(rows: list[ZhangRow]) -> float:
    """Published test accuracy with weight decay − without, for one model."""
    test = {row.weight_decay: row.test for row in rows}
    return test[True] - test[False]


def _consistent(d: dict, effect: float) -> str:
    if d["n"] < 2:
        return "not yet run"
    if d["ci_low"] <= effect <= d["ci_high"]:
        return "consistent (published effect inside the CI)"
    return "inconsistent (published effect outside the CI)"


def _small(d: dict) -> str:
    if d["n"] < 2:
        return "not yet run"
    if -SMALL_EFFECT <= d["ci_low"] and d["ci_high"] <= SMALL_EFFECT:
        return f"reproduced (CI within ±{SMALL_EFFECT:.0f})"
    if d["ci_low"] > SMALL_EFFECT or d["ci_high"] < -SMALL_EFFECT:
        return f"not reproduced (CI beyond ±{SMALL_EFFECT:.0f})"
    return f"not resolved (CI crosses ±{SMALL_EFFECT:.0f})"
