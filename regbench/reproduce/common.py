"""Report pieces every reproduction uses: intervals and verdicts over seeds, the header, the
two budget tables, the timing of a probe cell and the published-vs-reproduced figure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from regbench import data, stats
from regbench.document import Heading, Para, Table
from regbench.reproduce.registry import PROBE_SUBSET, Reproduction, store_path, study_path
from regbench.study import Cell, Study, load_study

NOT_RUN = {"n": 0, "mean": math.nan}  # stats.describe's shape for no values


def pct_interval(values) -> dict:
    """stats.describe of a fraction, in percent."""
    return stats.describe(np.asarray(values, dtype=float) * 100)


def fmt_ci(d: dict, digits: int = 2) -> str:
    """`mean ± half-width` of a 95% t-interval, with n; `not yet run` without values."""
    if d["n"] == 0:
        return "not yet run"
    if d["n"] == 1:
        return f"{d['mean']:.{digits}f} (n=1)"
    half = (d["ci_high"] - d["ci_low"]) / 2
    return f"{d['mean']:.{digits}f} ± {half:.{digits}f} (n={d['n']})"


def interval(d: dict) -> str:
    """`mean [low, high] pp` of a paired difference; `–` below two seeds."""
    if d["n"] < 2:
        return "–"
    return f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] pp"


def paired(rows: pd.DataFrame, a: str, b: str, metric: str) -> np.ndarray:
    """metric(a) − metric(b) per seed, on seeds where both arms are `ok`."""
    ok = rows[rows["status"] == "ok"]
    wide = ok.pivot_table(index="seed", columns="arm", values=metric, aggfunc="first")
    if a not in wide or b not in wide:
        return np.array([])
    return (wide[a] - wide[b]).dropna().to_numpy(dtype=float)


def paired_pct(rows: pd.DataFrame, a: str, b: str, metric: str) -> dict:
    """stats.describe of `paired` in percentage points, with the differences themselves
    (`diffs`); no values without rows."""
    return described(paired(rows, a, b, metric) * 100) if len(rows) else {"n": 0}


def described(diffs) -> dict:
    """stats.describe of paired differences, keeping them for the exact test."""
    diffs = np.asarray(diffs, dtype=float)
    return stats.describe(diffs) | {"diffs": diffs}


DIRECTION_RULE = ("*Reproduced* / *reversed*: the exact paired permutation test, Holm over this "
                  "table's paired claims, resolves the paper's / the other direction at alpha "
                  f"= {stats.ALPHA}, the standard of the study reports. Otherwise *not resolved* "
                  "(*not resolvable* where no exact test at this n can resolve anything), with "
                  "a note where the 95% t-interval excludes 0 and about how many seeds would "
                  "resolve an effect of the size and spread observed.")


def direction_verdicts(claims: list[tuple[dict, int]]) -> list[str]:
    """The verdict of each paired claim (its differences, the published sign), Holm over
    the claims that have two or more seeds."""
    tested = [i for i, (d, _) in enumerate(claims) if d["n"] >= 2]
    p = [stats.paired_permutation_test(claims[i][0]["diffs"], np.zeros(claims[i][0]["n"]))
         for i in tested]
    holm = dict(zip(tested, stats.holm(p))) if tested else {}
    out = []
    for i, (d, sign) in enumerate(claims):
        if d["n"] < 2:
            out.append("not yet run" if d["n"] == 0 else "too few seeds")
            continue
        if holm[i] < stats.ALPHA and d["mean"] != 0:
            side = "reproduced" if np.sign(d["mean"]) == sign else "reversed"
            out.append(f"{side} (Holm p {holm[i]:.4f})")
            continue
        resolvable = stats.min_p_value(d["n"]) * len(tested) < stats.ALPHA
        words = f"not {'resolved' if resolvable else 'resolvable'} at n = {d['n']}"
        if d["ci_low"] > 0 or d["ci_high"] < 0:
            words += (" (the interval excludes 0; the exact test after Holm does not)"
                      if resolvable else " (the interval excludes 0; no exact test at this n "
                      "can)")
        seeds = stats.seeds_to_resolve(d["diffs"], len(tested))
        out.append(words + (f"; about {seeds} seeds would resolve it" if seeds else ""))
    return out


def kendall(published, reproduced) -> str:
    """Kendall's tau between two orderings of the same rows, as a sentence part."""
    from scipy.stats import kendalltau

    pairs = [(p, r) for p, r in zip(published, reproduced) if not math.isnan(r)]
    if len(pairs) < 2:
        return "Kendall's tau: – (fewer than two rows reproduced)"
    tau, p = kendalltau(*zip(*pairs))
    return f"Kendall's tau = {tau:+.2f} over {len(pairs)} rows (p = {p:.3f})"


def mean_pct(rows: pd.DataFrame, arm: str, metric: str, error: bool = False) -> str:
    """The mean of an accuracy over an arm's `ok` rows, in %, or its error; `–` without."""
    values = rows.loc[(rows["arm"] == arm) & (rows["status"] == "ok"), metric] if len(rows) \
        else []
    if not len(values):
        return "–"
    mean = float(np.mean(values)) * 100
    return f"{100 - mean if error else mean:.2f}"


def updates_per_epoch(study: Study) -> int:
    """Batches in one epoch over the full training set less the validation split."""
    return math.ceil(_fit_size(study.datasets[0], study.training.validation_fraction)
                     / study.training.batch_size)


def _fit_size(dataset: str, validation_fraction: float) -> int:
    return round(data.info(dataset).train_size * (1 - validation_fraction))


def seeds(values) -> str:
    """Seeds as the budget tables list them: `0, 1, 2`."""
    return ", ".join(map(str, values))


def header(repro: Reproduction, rows: pd.DataFrame) -> list:
    """Title, citation, what is stored, and a warning when the budget is not the paper's."""
    ran = len(rows[rows["status"] == "ok"]) if len(rows) else 0
    blocks = [Heading(f"Reproduction: {repro.title}", 1),
              Para(f"Paper: {repro.published.citation}."),
              Para(f"{ran} trained cells with status `ok` in `{store_path(repro.name)}`. "
                   f"Generated by `regbench reproduce {repro.name} --report-only`; edit "
                   "nothing here by hand.")]
    if repro.variant:
        blocks.append(Para(f"**Reduced variant** ({repro.variant}). The numbers below come "
                           "from this budget, not the paper's; compare orderings and effect "
                           "sizes, not absolute values."))
    blocks += [Para(n) for n in repro.notes]
    return blocks


def budget_table(repro: Reproduction, here: list[tuple[str, str]]) -> list:
    """The paper's settings beside this reproduction's."""
    return [Heading("Budget: the paper's and this reproduction's", 2),
            Table(("setting", "paper"), tuple(repro.published.budget.items())),
            Table(("setting", "here"), tuple(here))]


def probe_blocks(repro: Reproduction, rows: pd.DataFrame) -> list:
    """The CPU time a study that is not run here would take, from its probe cell."""
    out = []
    for probe in repro.probes:
        estimate = probe_estimate(repro, probe, rows)
        if estimate is None:
            out.append(Para(f"`{probe.study}`: not yet run; no timing probe stored."))
            continue
        probe_row, per_image, total, what, first = estimate
        out.append(Para(
            f"`{probe.study}`: **not yet run here**: `regbench reproduce {repro.name}` trains "
            "it only where the Keras backend sees a GPU. A probe cell "
            f"({probe.epochs} epochs of `{first}` on {PROBE_SUBSET} images, seed "
            f"0) took {per_image * 1e3:.2f} ms per training image in its last epoch on this "
            f"machine ({probe_row.get('device', '?')}, {probe_row.get('cpu_count', '?')} "
            f"cores), so its {what} would need about {total / 3600:.1f} h of training here "
            "(an upper estimate at this rate: the probe's epoch includes a pass over the "
            f"validation images, {probe_row.get('n_val', '?')} of them)."))
    return out


def probe_estimate(repro: Reproduction, probe, rows: pd.DataFrame):
    """(probe row, seconds per training image, estimated seconds of the whole study, what
    the estimate covers, the probed arm) from a study's stored probe cell, or None."""
    study = load_study(study_path(probe.study))
    part = rows[(rows["study"] == f"{probe.study}_probe")
                & (rows["train_subset"] == PROBE_SUBSET)] if len(rows) else rows
    if part.empty or "epoch_s" not in part:
        return None
    probe_row = part.iloc[-1]
    per_image = float(probe_row["history"]["epoch_s"][-1]) / PROBE_SUBSET
    cells = study.cells()
    total = sum(per_image * _images(c) * c.training.epochs for c in cells)
    finals = len(repro.published.rows) * len(repro.final_seeds)  # Table 9's chosen points
    if finals:
        total *= 1 + finals / len(cells)
    what = f"{len(cells)} cells" + (f" and {finals} final cells" if finals else "")
    return probe_row, per_image, total, what, cells[0].arm.label


def _images(cell: Cell) -> int:
    """Training images per epoch of a cell."""
    return cell.training.train_subset or _fit_size(cell.dataset,
                                                   cell.training.validation_fraction)


def figure_errorbars(ax, labels, published, reproduced: list[dict], xlabel: str):
    """Published values (diamonds) beside reproduced means and 95% CIs, one row per label."""
    y = np.arange(len(labels))
    means = [d["mean"] for d in reproduced]
    low = [d["mean"] - d["ci_low"] if d["n"] > 1 else 0 for d in reproduced]
    high = [d["ci_high"] - d["mean"] if d["n"] > 1 else 0 for d in reproduced]
    ax.errorbar(means, y, xerr=[low, high], fmt="o", color="#1f77b4", capsize=4,
                label="reproduced (mean, 95% CI)")
    ax.plot(published, y, "D", color="#d62728", label="published")
    ax.set_yticks(y, labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel(xlabel)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
