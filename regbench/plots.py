"""Figures of stored results: `plot_*(df, ax=None, ...) -> Axes`, one fixed colour per arm.

`df` is a results DataFrame (`store.load`) of one problem; only rows with status `ok` are
drawn. Nothing here selects a backend: with `ax=None` a function draws on `pyplot.gca()`; the
report draws on `matplotlib.figure.Figure` objects, which need no display.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from regbench import stats

# Technique labels keep their colour in every figure and every report; other arms (combinations,
# custom labels) take the remaining colours in order of appearance.
ARM_COLORS = {
    "none": "#4d4d4d",
    "l1": "#1f77b4",
    "l2": "#ff7f0e",
    "l1_l2": "#2ca02c",
    "dropout": "#d62728",
    "batchnorm": "#9467bd",
    "augmentation": "#8c564b",
    "early_stopping": "#e377c2",
    "max_norm": "#bcbd22",
}
JITTER_SEED = 0
SPARE_COLORS = ["#17becf", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
                "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31"]
SPARSITY_COLUMNS = {  # column -> tick label
    "sparsity_zero": "= 0",
    "sparsity_lt_1e-3": "< 1e-3",
    "sparsity_lt_1e-2": "< 1e-2",
    "sparsity_rel_1pct": "< 1% of\nlayer max",
}
MAGNITUDE_BINS = ("= 0", "(0, 1e-3)", "[1e-3, 1e-2)", "≥ 1e-2")
LABELS = {
    "test_acc": "test accuracy",
    "train_acc": "train accuracy",
    "gap_acc": "generalization gap (train acc − test acc)",
    "gap_xent": "generalization gap (test xent − train xent)",
    "test_xent": "test cross-entropy",
    "epoch_s": "time per epoch (s, median after the first)",
    "cost_epoch_s": "cost per epoch (s, each cell timed alone)",
    "fit_s": "training time per cell (s, all epochs run)",
}


def arms_of(df: pd.DataFrame) -> list[str]:
    """Arm labels in order of first appearance, `none` first when present."""
    arms = list(dict.fromkeys(df["arm"])) if "arm" in df else []
    return sorted(arms, key=lambda a: a != stats.NONE)


def arm_palette(arms) -> dict[str, str]:
    """Arm label -> colour: the fixed colour of a known technique, else the next spare one."""
    spare = iter(SPARE_COLORS * (1 + len(list(arms)) // len(SPARE_COLORS)))
    return {arm: ARM_COLORS.get(arm) or next(spare) for arm in arms}


def plot_metric(df: pd.DataFrame, metric: str = "test_acc", ax=None, palette=None):
    """Every seed as a point, and the mean with its 95% t-interval, one line per arm."""
    ax = _axes(ax)
    ok = _ok(df)
    arms = arms_of(df)  # arms without an `ok` cell keep their row, labelled with the count
    palette = palette or arm_palette(arms)
    _strip(ax, ok, metric, arms, palette)
    _label_not_ok(ax, df, arms)
    for i, arm in enumerate(arms):
        d = stats.describe(ok.loc[ok["arm"] == arm, metric])
        if d["n"] >= 2:
            ax.errorbar(d["mean"], i, xerr=[[max(0.0, d["mean"] - d["ci_low"])],
                                            [max(0.0, d["ci_high"] - d["mean"])]],
                        fmt="none", ecolor="black", elinewidth=1.5, capsize=4, zorder=3)
        ax.plot(d["mean"], i, marker="|", color="black", markersize=16, mew=2.5, zorder=4)
    ax.set_xlabel(LABELS.get(metric, metric))
    ax.set_ylabel("")
    ax.set_title("seeds (dots), mean (tick) and 95% CI (bar)", fontsize="medium")
    return ax


def plot_test_accuracy(df: pd.DataFrame, ax=None, palette=None):
    return plot_metric(df, "test_acc", ax=ax, palette=palette)


def plot_gap(df: pd.DataFrame, ax=None, metric: str = "gap_acc", palette=None):
    """The generalization gap per arm (`gap_acc` or `gap_xent`), zero marked."""
    ax = plot_metric(df, metric, ax=ax, palette=palette)
    ax.axvline(0.0, color="grey", linewidth=0.8, zorder=0)
    return ax


def plot_paired_differences(df: pd.DataFrame, metric: str = "test_acc", baseline: str = "none",
                            ax=None, palette=None):
    """Per seed: metric(arm) − metric(baseline) at the same seed; the mean as a bar."""
    ax = _axes(ax)
    ok = _ok(df)
    wide = ok.pivot_table(index="seed", columns="arm", values=metric, aggfunc="first")
    arms = [a for a in arms_of(df) if a != baseline]
    palette = palette or arm_palette(arms_of(df))
    diffs = pd.DataFrame({"arm": pd.Series(dtype=str), "diff": pd.Series(dtype=float)})
    present = [a for a in arms if a in wide]
    if present and baseline in wide:
        diffs = (wide[present].sub(wide[baseline], axis=0)
                 .melt(value_name="diff", ignore_index=True).dropna())
    _strip(ax, diffs, "diff", arms, palette)
    _label_not_ok(ax, df, arms)
    for i, arm in enumerate(arms):
        values = diffs.loc[diffs["arm"] == arm, "diff"].to_numpy(dtype=float)
        if not len(values):
            continue
        mean = values.mean()
        low, high = stats.interval(values)
        if not np.isnan(low):
            ax.errorbar(mean, i, xerr=[[max(0.0, mean - low)], [max(0.0, high - mean)]],
                        fmt="none", ecolor="black", elinewidth=1.5, capsize=4, zorder=3)
        ax.plot(mean, i, marker="|", color="black", markersize=16, mew=2.5, zorder=4)
    ax.axvline(0.0, color="grey", linewidth=0.8, zorder=0)
    ax.set_xlabel(f"{LABELS.get(metric, metric)}: arm − {baseline}, same seed")
    ax.set_ylabel("")
    ax.set_title(f"paired differences from {baseline} (dots: seeds, tick: mean, bar: 95% CI)",
                 fontsize="medium")
    return ax


CURVES = {"xent": ("xent", "val_xent", "cross-entropy"), "acc": ("acc", "val_acc", "accuracy")}


def plot_learning_curves(df: pd.DataFrame, ax=None, palette=None,
                         reference: pd.DataFrame | None = None, metric: str = "xent"):
    """Train (dashed) and validation (solid) cross-entropy (`metric="xent"`, log scale) or
    accuracy (`"acc"`) per epoch, mean over seeds and the min-max band across seeds.
    `reference`: rows of an arm whose validation curve is drawn in grey, dotted.

    The train curve is Keras's running average over each epoch, in training mode (dropout on,
    augmented inputs); the validation curve is evaluated in inference mode after each epoch.
    """
    ax = _axes(ax)
    ok = _ok(df)
    arms = arms_of(ok)
    palette = palette or arm_palette(arms)
    train_key, val_key, label = CURVES[metric]
    if reference is not None and len(_ok(reference)):
        mean, low, high = _curve(_ok(reference), val_key)
        ax.plot(np.arange(1, len(mean) + 1), mean, color="0.45", linewidth=1.2, linestyle=":",
                label=f"{arms_of(_ok(reference))[0]} (validation)")
    for arm in arms:
        rows = ok[ok["arm"] == arm]
        for key, style, kind in ((train_key, "--", "train"), (val_key, "-", "validation")):
            mean, low, high = _curve(rows, key)
            if not len(mean):
                continue
            epochs = np.arange(1, len(mean) + 1)
            ax.plot(epochs, mean, linestyle=style, color=palette[arm], label=f"{arm} ({kind})")
            ax.fill_between(epochs, low, high, color=palette[arm], alpha=0.2, linewidth=0)
    if metric == "xent":
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    return ax


def plot_sparsity(df: pd.DataFrame, ax=None, palette=None):
    """Fraction of weights (all kernels pooled) below each threshold; mean over seeds with the
    min-max range. The last point is relative (per layer) and is not joined to the others."""
    ax = _axes(ax)
    ok = _ok(df)
    arms = arms_of(ok)
    palette = palette or arm_palette(arms)
    columns = [c for c in SPARSITY_COLUMNS if c in ok]
    x = np.arange(len(columns))
    for k, arm in enumerate(arms):
        rows = ok.loc[ok["arm"] == arm, columns].astype(float)
        mean, low, high = rows.mean(), rows.min(), rows.max()
        shift = (k - (len(arms) - 1) / 2) * 0.04  # keep overlapping error bars apart
        ax.errorbar(x + shift, mean, yerr=[(mean - low).clip(lower=0), (high - mean).clip(lower=0)],
                    color=palette[arm],
                    marker="o", linestyle="none", capsize=3, label=arm)
        absolute = [i for i, c in enumerate(columns) if c != "sparsity_rel_1pct"]
        ax.plot(x[absolute] + shift, mean.iloc[absolute], color=palette[arm])
    ax.set_xticks(x, [SPARSITY_COLUMNS[c] for c in columns])
    ax.set_xlabel("|w| threshold")
    ax.set_ylabel("fraction of weights")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("sparsity at each threshold (mean; bars: min-max over seeds)",
                 fontsize="medium")
    return ax


def magnitude_bins(layer_stats: dict) -> list[float]:
    """A 4-bin |w| histogram (fractions) of one layer from its stored threshold fractions."""
    zero, lt3, lt2 = layer_stats["zero"], layer_stats["lt_1e-3"], layer_stats["lt_1e-2"]
    return [zero, lt3 - zero, lt2 - lt3, 1.0 - lt2]


def has_bins(layer_stats) -> bool:
    """A layer's stored statistics hold the threshold fractions the bins are made of."""
    return isinstance(layer_stats, dict) and all(
        isinstance(layer_stats.get(k), (int, float)) for k in ("zero", "lt_1e-3", "lt_1e-2"))


def plot_magnitude_bins(df: pd.DataFrame, layer: str, ax=None, palette=None):
    """Coarse weight-magnitude histogram of one layer per arm (mean over seeds).

    Rows store per-layer fractions at thresholds, not raw weights, so the bins are those
    thresholds: exactly 0, (0, 1e-3), [1e-3, 1e-2), >= 1e-2.
    """
    ax = _axes(ax)
    ok = _ok(df)
    ok = ok[ok["layers"].map(lambda s: isinstance(s, dict) and has_bins(s.get(layer)))]
    arms = arms_of(ok)
    palette = palette or arm_palette(arms)
    x = np.arange(len(MAGNITUDE_BINS))
    width = 0.8 / max(1, len(arms))
    for k, arm in enumerate(arms):
        bins = np.mean([magnitude_bins(s[layer]) for s in ok.loc[ok["arm"] == arm, "layers"]],
                       axis=0)
        ax.bar(x - 0.4 + width * (k + 0.5), bins, width, color=palette[arm], label=arm)
    ax.set_xticks(x, MAGNITUDE_BINS)
    ax.set_xlabel("|w|")
    ax.set_ylabel("fraction of weights")
    ax.set_ylim(0, 1)
    ax.set_title(f"layer `{layer}`", fontsize="medium")
    return ax


def cost_column(df: pd.DataFrame) -> str:
    """`cost_epoch_s` (each cell timed alone, `engine.cost`) where every ok row has it, else
    `epoch_s`, which in a pack is the pack's time, shared by its members."""
    ok = _ok(df)
    if "cost_epoch_s" in ok and ok["cost_epoch_s"].notna().all():
        return "cost_epoch_s"
    return "epoch_s"


def plot_cost(df: pd.DataFrame, ax=None, palette=None, time: str = "epoch_s"):
    """Test accuracy against cost: `epoch_s` (time per epoch) or `fit_s` (whole fit, which
    early stopping shortens); mean per arm, bars one std over seeds."""
    ax = _axes(ax)
    ok = _ok(df)
    arms = arms_of(ok)
    palette = palette or arm_palette(arms)
    for arm in arms:
        rows = ok[ok["arm"] == arm]
        t, acc = rows[time].astype(float), rows["test_acc"].astype(float)
        ax.errorbar(t.mean(), acc.mean(), xerr=_std(t), yerr=_std(acc), color=palette[arm],
                    marker="o", capsize=3, label=arm)
    ax.set_xlabel(LABELS[time])
    ax.set_ylabel(LABELS["test_acc"])
    ax.set_title("accuracy vs cost (mean ± std over seeds)", fontsize="medium")
    return ax


# --- helpers ---------------------------------------------------------------------------------

def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    if "status" not in df:
        return df
    return df[df["status"] == "ok"]


def _std(x: pd.Series) -> float:
    return float(x.std()) if len(x) > 1 else 0.0


def _label_not_ok(ax, df: pd.DataFrame, arms: list) -> None:
    """Tick labels `arm (k not ok)` where some cells of an arm failed or diverged."""
    if "status" not in df:
        return
    bad = df[df["status"] != "ok"].groupby("arm").size()
    ax.set_yticks(range(len(arms)),
                  [f"{a} ({bad[a]} not ok)" if a in bad else a for a in arms])


def _strip(ax, data: pd.DataFrame, column: str, arms: list, palette: dict) -> None:
    import seaborn as sns

    data = data[data["arm"].isin(arms)]
    if not data.empty:
        # seaborn jitters with NumPy's global generator: seeded here, so that regenerating a
        # report gives the same figure, and restored, so that nothing else is disturbed.
        state = np.random.get_state()
        np.random.seed(JITTER_SEED)
        try:
            sns.stripplot(data=data, x=column, y="arm", hue="arm", order=arms, hue_order=arms,
                          palette=palette, orient="h", jitter=0.15, size=6, alpha=0.8,
                          legend=False, ax=ax)
        finally:
            np.random.set_state(state)
    ax.set_yticks(range(len(arms)), arms)
    ax.set_ylim(len(arms) - 0.5, -0.5)  # every arm keeps its row, with data or without


def _curve(rows: pd.DataFrame, key: str):
    """Mean, min and max across seeds of one history series, per epoch (ragged lengths ok)."""
    series = [np.asarray(h[key], dtype=float) for h in rows["history"]
              if isinstance(h, dict) and key in h]
    if not series:
        return np.array([]), np.array([]), np.array([])
    length = max(len(s) for s in series)
    grid = np.full((len(series), length), np.nan)
    for i, s in enumerate(series):
        grid[i, :len(s)] = s
    return np.nanmean(grid, axis=0), np.nanmin(grid, axis=0), np.nanmax(grid, axis=0)
