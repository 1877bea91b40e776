"""Results store -> report folder: `README.md` with PNG figures, and one self-contained
`report.html` (figures embedded as data URIs, no external resources).

A report is a list of blocks (headings, paragraphs, tables, figures) rendered twice, to
Markdown and to HTML, so both always say the same thing. Tables are deterministic: the same
store gives byte-identical tables (bootstrap resampling uses a fixed seed, rows keep a fixed
order, no timestamps). Figures are drawn on `matplotlib.figure.Figure` objects, so no display
or global backend is needed.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from regbench import report_tuning, stats, store, summary
from regbench.document import (
    Code,
    Contents,
    Heading,
    Para,
    Table,
    clear_figures,
    write_document,
)
from regbench.errors import RegbenchError
from regbench.plots import arms_of, cost_column
from regbench.report_backends import backend_blocks
from regbench.report_figures import figure_blocks

# metric -> (heading, higher is better); the paired comparisons and their Holm families
COMPARED = {
    "test_acc": ("test accuracy", True),
    "gap_acc": ("gap (train acc − test acc)", False),
    "test_xent": ("test cross-entropy", False),
    "gap_xent": ("gap (test xent − train xent)", False),
}
EFFECT_METRICS = ("test_acc", "gap_acc")
ERROR_CHARS = 160  # of a failed cell's error message in the table


# --- loading and grouping --------------------------------------------------------------------

def load_results(path: str | Path) -> pd.DataFrame:
    """A results store as a DataFrame; a missing or empty store is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise RegbenchError(f"{path}: no such results file")
    rows = store.load(path)
    if rows.empty or "arm" not in rows:
        raise RegbenchError(f"{path}: no result rows")
    if "status" not in rows:
        rows["status"] = "ok"
    finished = rows[rows["status"].isin(store.FINISHED)]
    lacking = [c for c in NEEDED if c not in finished or finished[c].isna().all()]
    if len(finished) and lacking:
        raise RegbenchError(f"{path}: its finished rows lack `{lacking[0]}`; a report reads "
                            "rows as `regbench run` writes them")
    return rows


NEEDED = ("study", "test_acc", "train_acc", "test_xent", "train_xent", "gap_acc", "gap_xent")


def sections(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per problem, and per budget setting where the store holds several."""
    keys = [c for c in summary.group_columns(rows) if c != "arm"]
    out = []
    for values, part in rows.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        title = ", ".join(f"{k}={v}" if k != "problem" else str(v) for k, v in zip(keys, values))
        out.append((title, part))
    return out


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["status"] == "ok"]


def baseline_arm(rows: pd.DataFrame) -> str:
    """`none` when present, else the first arm."""
    return arms_of(rows)[0]


# --- tables ----------------------------------------------------------------------------------

def arm_statistics(rows: pd.DataFrame, metrics) -> pd.DataFrame:
    """Per arm (order of appearance, `none` first) and metric: n, mean, std, t-interval."""
    ok = ok_rows(rows)
    out = []
    for arm in arms_of(rows):
        part = ok[ok["arm"] == arm]
        for metric in metrics:
            values = part[metric] if metric in part else pd.Series(dtype=float)
            out.append({"arm": arm, "metric": metric, **stats.describe(values.astype(float))})
    return pd.DataFrame(out)


def status_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Cells per arm and status: ok, diverged, failed, then any other status stored."""
    counts = rows.groupby("arm")["status"].value_counts().unstack(fill_value=0)
    columns = ["ok", "diverged", "failed"]
    columns += sorted(set(counts.columns) - set(columns))
    return counts.reindex(index=arms_of(rows), columns=columns, fill_value=0)


def paired_comparisons(rows: pd.DataFrame, metric: str, higher_is_better: bool,
                       baseline: str, alpha: float = stats.ALPHA) -> pd.DataFrame:
    """Each arm against `baseline` on seeds where both are `ok`: mean difference (arm −
    baseline), its 95% t-interval, exact paired permutation p, Holm over the arms, verdict,
    and about how many seeds would resolve an effect of its size and spread."""
    ok = ok_rows(rows)
    wide = ok.pivot_table(index="seed", columns="arm", values=metric, aggfunc="first",
                          dropna=False)
    out = []
    for arm in arms_of(rows):
        if arm == baseline:
            continue
        if arm in wide and baseline in wide:
            pair = wide[[arm, baseline]].astype(float).dropna()
        else:
            pair = pd.DataFrame({arm: [], baseline: []}, dtype=float)
        d = (pair[arm] - pair[baseline]).to_numpy()
        low, high = stats.interval(d)
        agree, n = stats.sign_agreement(d)
        out.append({"arm": arm, "metric": metric, "n_pairs": len(d),
                    "mean_diff": float(np.mean(d)) if len(d) else math.nan,
                    "ci_low": low, "ci_high": high,
                    "p": stats.paired_permutation_test(pair[arm], pair[baseline]),
                    "seeds_agreeing": agree, "d": d})
    for r in out:
        r["seeds_to_resolve"] = stats.seeds_to_resolve(r.pop("d"), len(out))
    table = pd.DataFrame(out, columns=["arm", "metric", "n_pairs", "mean_diff", "ci_low",
                                       "ci_high", "p", "seeds_agreeing", "seeds_to_resolve"])
    table["p_holm"] = stats.holm(table["p"]) if len(table) else []
    table["verdict"] = [stats.verdict(m, p, higher_is_better, alpha) if n else "no pairs"
                        for m, p, n in zip(table["mean_diff"], table["p_holm"],
                                           table["n_pairs"])]
    return table


def design_effects(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Main effects and two-way interactions (factorial) or leave-one-out effects of the
    techniques, per seed on seeds where every arm is `ok`, then summarized across seeds."""
    arms = arms_of(rows)
    contrasts = stats.effect_contrasts(arms)
    if not contrasts:
        return pd.DataFrame()
    wide = ok_rows(rows).pivot_table(index="seed", columns="arm", values=metric,
                                     aggfunc="first", dropna=False)
    wide = wide.reindex(columns=arms).astype(float).dropna()
    out = []
    for name, weights in contrasts.items():
        per_seed = wide.to_numpy() @ weights
        low, high = stats.interval(per_seed)
        agree, n = stats.sign_agreement(per_seed)
        out.append({"effect": name, "metric": metric, "n_seeds": n,
                    "mean": float(np.mean(per_seed)) if n else math.nan,
                    "ci_low": low, "ci_high": high,
                    "p": stats.paired_permutation_test(per_seed, np.zeros(n)),
                    "seeds_agreeing": agree})
    table = pd.DataFrame(out)
    table["p_holm"] = stats.holm(table["p"])
    return table


def fmt(x, digits: int = 4, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def fmt_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def fmt_pct(mean: float, std: float) -> str:
    """A fraction as a percentage, with enough digits to show a handful of weights."""
    if math.isnan(mean):
        return "–"
    if mean == 0 and (math.isnan(std) or std == 0):
        return "0"
    if math.isnan(std):
        return f"{100 * mean:.3g} %"
    return f"{100 * mean:.3g} ± {100 * std:.2g} %"


def _mean_std(s: dict, digits: int = 4) -> str:
    if math.isnan(s["mean"]):
        return "–"
    if math.isnan(s["std"]):  # a single seed
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _ci(s: dict, digits: int = 4) -> str:
    if math.isnan(s["ci_low"]):
        return "–"
    return f"[{s['ci_low']:.{digits}f}, {s['ci_high']:.{digits}f}]"


ARM_METRICS = ("test_acc", "train_acc", "gap_acc", "gap_xent", "test_xent", "sparsity_zero",
               "sparsity_lt_1e-3", "sparsity_lt_1e-2", "sparsity_rel_1pct", "l2_norm",
               "epochs_run", "best_epoch", "epoch_s", "fit_s", "cost_epoch_s")


def arm_tables(rows: pd.DataFrame) -> list:
    st = arm_statistics(rows, ARM_METRICS)
    counts = status_counts(rows)

    def get(arm, metric):
        hit = st[(st["arm"] == arm) & (st["metric"] == metric)]
        if hit.empty:
            return {"n": 0, "mean": math.nan, "std": math.nan, "ci_low": math.nan,
                    "ci_high": math.nan}
        return hit.iloc[0].to_dict()

    costed = cost_column(rows) == "cost_epoch_s"
    quality, weights = [], []
    for arm in counts.index:
        c = counts.loc[arm]
        not_ok = ", ".join(f"{c[k]} {k}" for k in counts.columns if k != "ok" and c[k]) or "–"
        quality.append((arm, str(c["ok"]), not_ok, _mean_std(get(arm, "test_acc")),
                        _ci(get(arm, "test_acc")), _mean_std(get(arm, "train_acc")),
                        _mean_std(get(arm, "gap_acc")), _mean_std(get(arm, "gap_xent")),
                        _mean_std(get(arm, "test_xent"))))
        sp = [fmt_pct(get(arm, m)["mean"], get(arm, m)["std"]) for m in
              ("sparsity_zero", "sparsity_lt_1e-3", "sparsity_lt_1e-2", "sparsity_rel_1pct")]
        weights.append((arm, *sp, _mean_std(get(arm, "l2_norm"), 2),
                        _mean_std(get(arm, "epochs_run"), 1), _mean_std(get(arm, "best_epoch"), 1),
                        _mean_std(get(arm, "epoch_s"), 2), fmt(get(arm, "fit_s")["mean"], 1))
                       + ((_mean_std(get(arm, "cost_epoch_s"), 2),) if costed else ()))
    return [
        Para("Mean ± std over seeds (std with ddof=1); the 95% CI of test accuracy is a "
             "Student-t interval of the mean. Only cells with status `ok` enter the "
             "statistics; the others are counted in *not ok*."),
        Table(("arm", "n ok", "not ok", "test acc", "test acc 95% CI", "train acc",
               "gap (acc)", "gap (xent)", "test xent"), tuple(quality)),
        Para("Sparsity: share of all kernel weights (every layer pooled) with |w| exactly 0, "
             "below 1e-3, below 1e-2, and below 1% of its layer's largest |w|. Epochs run and "
             "best epoch (lowest validation cross-entropy) per cell; time per epoch is the "
             "median epoch after the first (which includes tracing); fit is wall-clock "
             "seconds per cell. In a pack both are the pack's, shared by its members"
             + ("; cost / epoch is what each cell's training steps cost alone (timed after "
                "its pack), the number to compare across arms." if costed else ".")),
        Table(("arm", "|w| = 0", "|w| < 1e-3", "|w| < 1e-2", "< 1% of max", "L2 norm",
               "epochs run", "best epoch", "s / epoch", "fit s (mean)")
              + (("cost s / epoch",) if costed else ()), tuple(weights)),
    ]


def comparison_blocks(rows: pd.DataFrame, baseline: str,
                      level: int = 3) -> tuple[list, pd.DataFrame]:
    tables = [paired_comparisons(rows, m, better, baseline)
              for m, (_, better) in COMPARED.items() if m in rows]
    every = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if every.empty:
        return [Para(f"No arm besides `{baseline}`: nothing to compare.")], every
    n = int(every["n_pairs"].max())
    m = int(every.groupby("metric").size().max())
    floor = stats.min_p_value(n)
    blocks = [Para(
        f"Each arm against `{baseline}` on the seeds where both cells are `ok`, paired by seed "
        "(same validation split, data order and initial weights). Difference = arm − "
        f"{baseline}. CI: 95% Student-t interval of the mean difference (a bootstrap interval "
        "treats a handful of seeds as the population: too narrow, it excluded 0 where the "
        "exact test gave p = 0.25). p: exact paired permutation test, two-sided (all 2^n "
        "swaps within pairs, i.e. sign flips of the differences). Holm: correction over the "
        f"{m} arms within each metric. Verdict at alpha = {stats.ALPHA} after Holm; the "
        "interval is not corrected for the arms, so where it excludes 0 and the test after "
        "Holm does not resolve the arm, the verdict says so. An unresolved arm's verdict "
        "gives about how many seeds would resolve an effect of its observed size and spread "
        f"(a paired t-test at alpha / {m}). "
        "*Agree*: seeds whose difference has the sign of the mean difference.")]
    if not math.isnan(floor) and floor * m >= stats.ALPHA:
        blocks.append(Para(
            f"**Resolution limit.** With n = {n} paired seeds the permutation test has "
            f"2^{n} = {2 ** n} equally likely sign patterns, so the smallest two-sided p it can "
            f"give is 2/2^{n} = {floor:.4f}"
            + (f" (after Holm over {m} arms at least {min(1.0, floor * m):.4f})" if m > 1
               else "")
            + f". No arm can be declared better or worse at alpha = {stats.ALPHA} with this "
            "many seeds, however large its effect: *indistinguishable* here means *not "
            "resolvable*, not *equal*. Read the mean differences, their intervals and the "
            "per-seed agreement instead. "
            f"Resolving every arm needs at least {stats.seeds_needed(m)} seeds "
            f"(2/2^n × {m} < {stats.ALPHA})."))
    for metric, (heading, better) in COMPARED.items():
        part = every[every["metric"] == metric]
        if part.empty:
            continue
        blocks.append(Heading(f"{heading} ({'higher' if better else 'lower'} is better)",
                              level))
        blocks.append(Table(
            ("arm", "pairs", f"mean diff vs {baseline}", "95% CI", "p", "p (Holm)",
             "agree", "verdict"),
            tuple((r.arm, str(r.n_pairs), fmt(r.mean_diff, sign=True),
                   "–" if math.isnan(r.ci_low) else
                   f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]",
                   fmt_p(r.p), fmt_p(r.p_holm), f"{r.seeds_agreeing}/{r.n_pairs}",
                   verdict_words(r, n, floor * m < stats.ALPHA, with_p=False))
                  for r in part.itertuples())))
    return blocks, every


def effect_blocks(rows: pd.DataFrame, level: int = 3) -> tuple[list, pd.DataFrame]:
    design = stats.infer_design(arms_of(rows))
    if design not in ("factorial", "leave_one_out"):
        return [], pd.DataFrame()
    tables = [design_effects(rows, m) for m in EFFECT_METRICS if m in rows]
    if not tables:
        return [Para(f"Design: {design}; no metrics stored, no effects.")], pd.DataFrame()
    every = pd.concat(tables, ignore_index=True)
    if design == "factorial":
        text = ("Design: full factorial over the techniques (inferred from the arms). Main "
                "effect of T = mean over arms with T − mean over arms without T; interaction "
                "A×B = mean over arms where A and B are both in or both out − mean over arms "
                "where exactly one is in (Yates convention: half the change in A's effect "
                "when B is added). ")
    else:
        text = ("Design: leave-one-out (inferred from the arms). Effect of T = all "
                "techniques − all but T: what T adds given all the others. Two-way "
                "interactions are not identifiable from these arms (that needs the arms "
                "without each pair). ")
    text += ("Effects are computed per seed on seeds where every arm is `ok`, then averaged; "
             "CI: 95% Student-t interval; p: exact sign-flip test; Holm over the effects of each "
             "metric.")
    blocks = [Para(text)]
    for metric in EFFECT_METRICS:
        part = every[every["metric"] == metric]
        if part.empty:
            continue
        blocks.append(Heading(f"Effects on {COMPARED[metric][0]}", level))
        blocks.append(Table(
            ("effect", "seeds", "mean", "95% CI", "p", "p (Holm)", "agree"),
            tuple((r.effect, str(r.n_seeds), fmt(r.mean, sign=True),
                   "–" if math.isnan(r.ci_low) else f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]",
                   fmt_p(r.p), fmt_p(r.p_holm), f"{r.seeds_agreeing}/{r.n_seeds}")
                  for r in part.itertuples())))
    return blocks, every


def not_ok_blocks(rows: pd.DataFrame) -> list:
    bad = rows[rows["status"] != "ok"]
    if bad.empty:
        return [Para("Every cell finished with status `ok`.")]
    lines = []
    for (arm, status), part in bad.groupby(["arm", "status"], sort=False):
        seeds = ", ".join(str(s) for s in sorted(part["seed"]))
        if status == "diverged" and "diverged_epoch" in part:
            detail = "at epoch " + ", ".join(str(int(e)) for e in part["diverged_epoch"]
                                              if pd.notna(e))
        else:
            errors = part.get("error", pd.Series(dtype=str)).dropna()
            first = str(errors.iloc[0])[:ERROR_CHARS].replace("`", "'") if len(errors) else ""
            detail = f"`{first}`" if first else "no error message stored"
            if errors.nunique() > 1:
                detail += f" (and {errors.nunique() - 1} other messages)"
        lines.append((arm, status, seeds, detail))
    counts = bad["status"].value_counts()
    return [Para(f"{len(bad)} of {len(rows)} cells are not `ok` ("
                 + ", ".join(f"{v} {k}" for k, v in counts.items())
                 + "). They are left out of every statistic above; diverged cells are stored "
                 "with their history, failed cells with their error (first message shown)."),
            Table(("arm", "status", "seeds", "detail"), tuple(lines))]


# --- reproducibility -------------------------------------------------------------------------

def _distinct(rows: pd.DataFrame, column: str) -> str:
    if column not in rows:
        return "–"
    values = rows[column].dropna().map(_plain)
    counts = values.value_counts(sort=False)
    if len(counts) == 0:
        return "–"
    if len(counts) == 1:
        return counts.index[0]
    return "; ".join(f"{v} ({c} cells)" for v, c in counts.items())


def _plain(value) -> str:
    """A stored setting as text; integers that NaN padding turned into floats stay integers."""
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def display_path(path: str | Path) -> str:
    """A path relative to the working directory when inside it, so commands are portable."""
    rel = os.path.relpath(Path(path).resolve(), Path.cwd())
    return str(Path(path).resolve()) if rel.startswith("..") else rel


def reproducibility_blocks(rows: pd.DataFrame, results: str | Path, out_dir: str | Path,
                           regenerate: str) -> list:
    studies = sorted(rows["study"].dropna().unique()) if "study" in rows else []
    settings = ["model", "model_hidden", "model_activation", "model_filters", "optimizer",
                "learning_rate", "momentum", "batch_size", "epochs", "validation_fraction",
                "train_subset", "deterministic"]
    technique_cols = sorted(c for c in rows.columns if "." in c)
    seeds = sorted({int(s) for s in rows["seed"].dropna()})
    blocks = [Heading("Reproducibility", 2),
              Para("Regenerate this report (no training) from the stored results:"),
              Code(regenerate)]
    if studies:
        blocks += [Para("Train the cells again into this store (cells already stored are "
                        "skipped; the budget flags restate the stored cells' settings):"),
                   Code("\n".join(_run_command(rows, s, results) for s in studies))]
    blocks += [
        Heading("Selection rule", 3),
        Para(_selection_rule(rows)),
        Heading("Settings", 3),
        Table(("setting", "value"), tuple((c, _distinct(rows, c)) for c in
                                          [*settings, *technique_cols] if c in rows)),
        Para(f"Seeds: {', '.join(map(str, seeds))} ({len(seeds)}). At one seed every arm "
             "shares the validation split, the per-epoch data order and the initial weights "
             "of every shared layer."),
        Heading("Data", 3),
    ]
    hashes = []
    if "dataset_sha256" in rows:
        for dataset, part in rows.groupby("dataset", sort=False):
            seen = {json.dumps(h, sort_keys=True) for h in part["dataset_sha256"]
                    if isinstance(h, dict)}
            for h in sorted(seen):
                for array, digest in json.loads(h).items():
                    hashes.append((str(dataset), array, f"`{digest}`"))
    blocks.append(Table(("dataset", "array", "sha256"), tuple(hashes)) if hashes
                  else Para("No dataset hashes stored."))
    blocks += [Para(line) for line in _user_datasets(rows)]
    blocks += [
        Heading("Software and hardware", 3),
        Table(("field", "value"), tuple(
            (c, _distinct(rows, c)) for c in ("regbench_version", "git_commit", "keras_version",
                                              "backend", "backend_version", "python_version",
                                              "device", "cpu_count", "host") if c in rows)),
    ]
    if "fit_s" in rows:
        fit = rows["fit_s"].dropna().astype(float)
        epochs = rows["epochs_run"].dropna().astype(int).sum() if "epochs_run" in rows else 0
        blocks.append(Para(
            f"Total compute: {fit.sum():.0f} s ({fit.sum() / 3600:.2f} h) of training "
            f"(sum of `fit_s` over {len(fit)} trained cells, {epochs} epochs; evaluation and "
            "start-up not included). Times per epoch were measured on the device above and "
            "compare only within this store."))
    if "finished_at" in rows:
        finished = rows["finished_at"].dropna().sort_values()
        if len(finished):
            blocks.append(Para(f"Cells finished between {finished.iloc[0]} and "
                               f"{finished.iloc[-1]}."))
    blocks.append(Para(f"Source: `{display_path(results)}` ({len(rows)} cells, newest attempt "
                       "per cell)."))
    return blocks


def _run_command(rows: pd.DataFrame, study: str, results: str | Path) -> str:
    """`regbench run` for a study's cells, with the budget they were trained at."""
    mine = rows[rows["study"] == study]
    seeds = sorted({int(s) for s in mine["seed"].dropna()})
    flags = [f"--seeds {len(seeds)}"] if seeds == list(range(len(seeds))) else []
    for column, flag in (("epochs", "--epochs"), ("train_subset", "--train-subset")):
        values = mine[column].dropna().unique() if column in mine else []
        if len(values) == 1 and not (column == "train_subset" and values[0] == 0):
            flags.append(f"{flag} {int(values[0])}")
    return " ".join([f"regbench run ablations/{study}.toml", *flags,
                     f"--store {display_path(results)}"])


def _selection_rule(rows: pd.DataFrame) -> str:
    text = ("The validation set is carved from the training set per seed (`validation_fraction` "
            "above); the test set is evaluated once, after training, and never used for any "
            "choice. Arms without early stopping keep the weights after the last epoch "
            "(their best epoch by validation cross-entropy is recorded, not used).")
    if "early_stopping.patience" in rows and rows["early_stopping.patience"].notna().any():
        stopping = rows[rows["early_stopping.patience"].notna()]
        restore = _distinct(stopping, "early_stopping.restore_best_weights")
        text += (" Arms with early stopping stop when the validation cross-entropy (not the "
                 "penalized `val_loss`) has not improved for "
                 f"{_distinct(stopping, 'early_stopping.patience')} epochs (`patience`), and ")
        text += {"True": "restore the weights of their best epoch.",
                 "False": "keep the weights of the epoch they stopped at "
                          "(`restore_best_weights = false`, Keras's default)."}.get(
            restore, f"restore_best_weights = {restore}.")
    return text


# --- the finding, first ------------------------------------------------------------------

def _user_datasets(rows: pd.DataFrame) -> list[str]:
    """A line per user dataset (npz file or tfds dataset): what it is and its split sizes."""
    if "dataset_source" not in rows:
        return []
    seen = {json.dumps(s, sort_keys=True) for s in rows["dataset_source"] if isinstance(s, dict)}
    lines = []
    for source in map(json.loads, sorted(seen)):
        what = (f"tensorflow-datasets `{source.get('name')}` version {source.get('version')}"
                if source.get("kind") == "tfds" else
                f"`{source.get('path')}`, file sha256 `{source.get('sha256')}`")
        lines.append(f"{what}: {source.get('train')} training examples (validation carved "
                     f"from them), {source.get('test')} test examples.")
    return lines


def finding_blocks(rows: pd.DataFrame, out_dir: str | Path) -> list:
    """What a reader came for, before any detail: each arm's test accuracy against the
    baseline's, with its interval and whether the paired test resolved it, then the
    hand-written findings (`FINDINGS.md` beside the report) where there are any."""
    blocks = [Heading("Finding", 2)]
    for title, part in sections(rows):
        baseline = baseline_arm(part)
        if ok_rows(part).empty or "test_acc" not in part:
            blocks.append(Para(f"{title}: no `ok` cells; nothing to compare."))
            continue
        compare = paired_comparisons(part, "test_acc", True, baseline)
        if compare.empty:
            blocks.append(Para(f"{title}: only `{baseline}`; nothing to compare."))
            continue
        ok = ok_rows(part)
        base = stats.describe(ok.loc[ok["arm"] == baseline, "test_acc"].astype(float))
        n = int(compare["n_pairs"].max())
        counts = compare["verdict"].value_counts()
        tally = ", ".join(f"{counts[v]} {v}" for v in ("better", "worse") if v in counts)
        unresolved = int(counts.get("indistinguishable", 0))
        floor = stats.min_p_value(n) * len(compare)
        resolvable = floor < stats.ALPHA
        blocks.append(Para(
            f"**{title}**: test accuracy of each arm against `{baseline}` "
            f"({_mean_std(base)}), paired by seed, n = {n}: "
            + (tally or "no arm resolved")
            + (f", {unresolved} not resolved at n = {n}" if unresolved and tally else "")
            + f" (exact paired test, Holm over {len(compare)} arms, alpha {stats.ALPHA})."
            + ("" if resolvable else
               f" At n = {n} no arm can be resolved, whatever its effect: the smallest p the "
               f"exact test can give, {stats.min_p_value(n):.4f}, is {min(1.0, floor):.2f} "
               f"after Holm; {stats.seeds_needed(len(compare))} seeds would let the test "
               "resolve an arm whose seeds all agree.")))
        blocks.append(Table(
            ("arm", f"test acc − {baseline} (pp)", "95% CI (pp)", "verdict"),
            tuple((r.arm, _pp(r.mean_diff), "–" if math.isnan(r.ci_low) else
                   f"[{_pp(r.ci_low)}, {_pp(r.ci_high)}]", verdict_words(r, n, resolvable))
                  for r in compare.itertuples())))
    findings = Path(out_dir) / "FINDINGS.md"
    if findings.is_file():
        paragraphs = [" ".join(p.split()) for p in findings.read_text().split("\n\n")]
        blocks += [Heading("Findings, written by hand", 3),
                   *(Para(p) for p in paragraphs if p)]
    return blocks


def _pp(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:+.2f}"


def verdict_words(r, n: int, resolvable: bool, with_p: bool = True) -> str:
    """A paired comparison's verdict as a reader takes it: resolved (with its Holm p), or
    why not, with about how many seeds would resolve it."""
    if r.verdict != "indistinguishable":
        return f"{r.verdict} (Holm p {fmt_p(r.p_holm)})" if with_p else r.verdict
    words = f"not {'resolved' if resolvable else 'resolvable'} at n = {n}"
    if r.ci_low > 0 or r.ci_high < 0:
        words += (" (the interval excludes 0; the exact test after Holm does not)" if resolvable
                  else " (the interval excludes 0; no exact test at this n can)")
    seeds = r.seeds_to_resolve
    if seeds is not None and not (isinstance(seeds, float) and math.isnan(seeds)):
        words += f"; about {int(seeds)} seeds would resolve it"
    return words


# --- the report ------------------------------------------------------------------------------

def build_report(rows: pd.DataFrame, results: str | Path, out_dir: str | Path) -> list:
    """All blocks of a study report; writes nothing. A tuned design's tuning cells get their
    own sections; everything else reads the final cells."""
    studies = sorted(rows["study"].dropna().unique()) if "study" in rows else []
    name = ", ".join(studies) or Path(results).stem
    counts = rows["status"].value_counts()
    regenerate = f"regbench report {display_path(results)} --out {display_path(out_dir)}"
    tuning, rows = report_tuning.split(rows)
    design = ("tuned (each arm at its grid point chosen on validation; "
              f"{len(tuning)} tuning cells)" if len(tuning)
              else stats.infer_design(arms_of(rows)))
    if rows.empty:  # a tuned design whose tuning is still running: its grids so far
        finding = [Heading("Finding", 2), Para(
            f"No final cell is stored yet: {len(tuning)} tuning cells so far. The final cells "
            "train once every grid's tuning cells are stored; rerun `regbench run`.")]
        rows = tuning.iloc[:0]
    else:
        finding = finding_blocks(rows, out_dir)
    if len(tuning) and len(rows):
        finding.insert(1, report_tuning.finding_line(tuning, rows))
    blocks = [
        Heading(f"Report: {name}", 1),
        Para(f"{len(rows) + len(tuning)} cells: "
             + ", ".join(f"{v} {k}" for k, v in counts.items())
             + (f"; {rows['arm'].nunique()} arms × {rows['seed'].nunique()} seeds"
                + (f" on {', '.join(rows['problem'].unique())}" if "problem" in rows else "")
                if len(rows) else "")
             + f". Design: {design}. Generated by `{regenerate}`; edit nothing here by hand."),
        *finding,
        Para("**Contents**"),
        Contents(),
    ]
    if len(tuning):
        blocks += report_tuning.tuning_blocks(tuning, rows)
    parts = sections(rows)
    for title, part in parts:
        level = 2
        prefix = ""
        if len(parts) > 1:
            blocks.append(Heading(title, 2))
            level = 3
            prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", title) + "_"
        baseline = baseline_arm(part)
        compare, _ = comparison_blocks(part, baseline, level + 1)
        effect, _ = effect_blocks(part, level + 1)
        blocks += [Heading("Per arm", level), *arm_tables(part),
                   Heading(f"Paired comparisons with `{baseline}`", level), *compare]
        if effect:
            blocks += [Heading("Technique effects", level), *effect]
        blocks += [Heading("Figures", level), *figure_blocks(part, baseline, prefix),
                   Heading("Cells not ok", level), *not_ok_blocks(part)]
    compared = backend_blocks(rows)
    if compared:
        blocks += [Heading("Backends compared", 2), *compared]
    blocks += reproducibility_blocks(rows if len(rows) else tuning, results, out_dir,
                                     regenerate)
    return blocks


def write_report(results: str | Path, out_dir: str | Path) -> Path:
    """Read a store, write README.md, report.html, figures/ and CSV tables into `out_dir`."""
    rows = load_results(results)
    out_dir = Path(out_dir)
    with np.errstate(all="ignore"), warnings.catch_warnings():  # an inf in a stored metric:
        warnings.simplefilter("ignore", RuntimeWarning)            # its statistics say so
        blocks = build_report(rows, results, out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        clear_figures(out_dir)
        write_document(blocks, out_dir, f"regbench report: {_title(blocks)}")
        _write_csv(rows, out_dir)
    return out_dir


def _title(blocks: list) -> str:
    return next((b.text for b in blocks if isinstance(b, Heading)), "")


def _write_csv(rows: pd.DataFrame, out_dir: Path) -> None:
    """Machine-readable tables: per-arm statistics and paired comparisons, all sections; a
    tuned design's grid points (at the tuning seeds) in tuning.csv."""
    tuning, rows = report_tuning.split(rows)
    if len(tuning):
        arm_statistics(tuning.assign(arm=tuning["grid_point"]), ARM_METRICS).to_csv(
            out_dir / "tuning.csv", index=False, float_format="%.6g")
    stats_parts, compare_parts = [], []
    for title, part in sections(rows) if len(rows) else []:
        stats_parts.append(arm_statistics(part, ARM_METRICS).assign(section=title))
        baseline = baseline_arm(part)
        for metric, (_, better) in COMPARED.items():
            if metric in part:
                compare_parts.append(paired_comparisons(part, metric, better, baseline)
                                     .assign(section=title, baseline=baseline))
    if stats_parts:
        pd.concat(stats_parts).to_csv(out_dir / "arms.csv", index=False, float_format="%.6g")
    if compare_parts:
        pd.concat(compare_parts).to_csv(out_dir / "comparisons.csv", index=False,
                                        float_format="%.6g")


# --- where a report goes ------------------------------------------------------------------

def default_out(results: str | Path) -> Path:
    """Where a store's report goes: beside `results.jsonl`, else reports/<its study>/."""
    path = Path(results)
    if path.name == "results.jsonl":
        return path.parent
    from regbench.study import check_name

    rows = load_results(path)
    studies = rows["study"].dropna().unique() if "study" in rows else []
    if len(studies) != 1:
        raise RegbenchError(f"{path}: rows of {len(studies)} studies; give --out")
    check_name(studies[0], f"{path}: the rows' study name (it names reports/<study>/)")
    return Path("reports") / studies[0]
