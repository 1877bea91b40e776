"""The figures of a study report (`report.build_report`): seaborn plots of one problem's rows,
drawn off-screen and embedded in both renderings."""

from __future__ import annotations

import math

import pandas as pd

from regbench.document import Para, draw
from regbench.stats import NONE


def figure_blocks(rows: pd.DataFrame, baseline: str, prefix: str = "") -> list:
    from regbench import plots

    ok = rows[rows["status"] == "ok"]
    if ok.empty:
        return [Para("No `ok` cells: no figures.")]
    arms = plots.arms_of(rows)
    trained = plots.arms_of(ok)  # arms with at least one ok cell
    palette = plots.arm_palette(arms)
    tall = max(3.0, 0.45 * len(arms) + 1.2)
    out = []

    def single(plot):
        return lambda fig, axes: plot(ax=axes[0][0])

    out.append(draw("test_accuracy", "Test accuracy per arm: every seed a dot, mean (black "
                    "tick) and 95% t-interval (bar).",
                    single(lambda ax: plots.plot_test_accuracy(rows, ax=ax, palette=palette)),
                    size=(8, tall), prefix=prefix))

    def gaps(fig, axes):
        plots.plot_gap(rows, ax=axes[0][0], metric="gap_acc", palette=palette)
        plots.plot_gap(rows, ax=axes[0][1], metric="gap_xent", palette=palette)
        axes[0][1].set_yticklabels([])
    out.append(draw("gap", "Generalization gap per arm, in accuracy (left) and "
                    "cross-entropy (right); train set re-evaluated in inference mode.", gaps,
                    size=(12, tall), ncols=2, prefix=prefix))
    if len(arms) > 1:
        out.append(draw("paired_differences", f"Test accuracy minus `{baseline}`'s at the same "
                        "seed: one dot per seed, black tick the mean.",
                        single(lambda ax: plots.plot_paired_differences(
                            rows, "test_acc", baseline, ax=ax, palette=palette)),
                        size=(8, max(3.0, 0.45 * (len(arms) - 1) + 1.2)), prefix=prefix))
    if "history" in ok:
        ncols = min(3, len(trained))
        nrows = math.ceil(len(trained) / ncols)

        def curves(fig, axes):
            flat = axes.ravel()
            for ax, arm in zip(flat, trained):
                plots.plot_learning_curves(ok[ok["arm"] == arm], ax=ax, palette=palette,
                                           reference=baseline if arm != baseline else None)
                ax.set_title(arm, fontsize="medium")
                ax.legend(fontsize="x-small", loc="upper right")
            for ax in flat[len(trained):]:
                ax.set_visible(False)
            lows = [a.get_ylim()[0] for a in flat[:len(trained)]]
            highs = [a.get_ylim()[1] for a in flat[:len(trained)]]
            for ax in flat[:len(trained)]:
                ax.set_ylim(min(lows), max(highs))
        out.append(draw("learning_curves", "Cross-entropy per epoch (log scale): train "
                        "(dashed, running average in training mode: dropout on, augmented "
                        "inputs, no penalty) and validation (solid, inference mode); line = "
                        "mean over seeds, band = min-max over seeds. Grey dotted: "
                        f"`{baseline}`'s validation curve for reference. Early-stopped seeds "
                        "end early, so later epochs average fewer seeds.", curves,
                        size=(4.2 * ncols, 3.2 * nrows), ncols=ncols, nrows=nrows,
                        prefix=prefix))
    weight_arms = [a for a in trained if a in ("none", "l1", "l2", "l1_l2")] or trained
    weight_rows = ok[ok["arm"].isin(weight_arms)]
    out.append(draw("sparsity", "Sparsity vs threshold for "
                    + ", ".join(f"`{a}`" for a in weight_arms)
                    + ": share of kernel weights (pooled over layers) below each |w| "
                    "threshold; mean over seeds, bars min-max. The last point is relative to "
                    "each layer's largest |w|.",
                    lambda fig, axes: (plots.plot_sparsity(weight_rows, ax=axes[0][0],
                                                           palette=palette),
                                       axes[0][0].legend(fontsize="small")),
                    size=(8, 4.5), prefix=prefix))
    layers = _layer_names(weight_rows)
    if layers:
        ncols = min(3, len(layers))
        nrows = math.ceil(len(layers) / ncols)

        def magnitudes(fig, axes):
            flat = axes.ravel()
            for ax, layer in zip(flat, layers):
                plots.plot_magnitude_bins(weight_rows, layer, ax=ax, palette=palette)
            for ax in flat[len(layers):]:
                ax.set_visible(False)
            flat[0].legend(fontsize="small")
        out.append(draw("weight_magnitudes", "Weight-magnitude histogram per layer, coarse: "
                        "rows store each layer's share of weights below the thresholds, not "
                        "the weights, so the bins are exactly 0, (0, 1e-3), [1e-3, 1e-2) and "
                        "≥ 1e-2 (mean over seeds).", magnitudes,
                        size=(4.5 * ncols, 4 * nrows), ncols=ncols, nrows=nrows,
                        prefix=prefix))
    if "epoch_s" in ok and "fit_s" in ok:
        def cost(fig, axes):
            plots.plot_cost(ok, ax=axes[0][0], palette=palette, time="epoch_s")
            plots.plot_cost(ok, ax=axes[0][1], palette=palette, time="fit_s")
            axes[0][1].set_ylabel("")
        out.append(draw("cost", "Test accuracy against time per epoch (left; median epoch "
                        "after the first) and whole training time per cell (right; early "
                        "stopping saves here), on the hardware in Reproducibility; mean ± std "
                        "over seeds.", cost, size=(13, 5), ncols=2, prefix=prefix))
    return out


def _layer_names(rows: pd.DataFrame) -> list[str]:
    if "layers" not in rows:
        return []
    names = [name for s in rows["layers"] if isinstance(s, dict) for name in s]
    return list(dict.fromkeys(names))


def claims_figures(rows: pd.DataFrame) -> list:
    """The claims report's figures: paired differences against `none`, and sparsity."""
    from regbench import plots

    ok = rows[rows["status"] == "ok"]
    if ok.empty or NONE not in set(ok["arm"]):
        return [Para("No `ok` cells of `none`: no figures.")]
    palette = plots.arm_palette(plots.arms_of(rows))
    tall = max(3.0, 0.45 * (rows["arm"].nunique() - 1) + 1.2)

    def differences(fig, axes):
        plots.plot_paired_differences(rows, "gap_acc", ax=axes[0][0], palette=palette)
        plots.plot_paired_differences(rows, "test_acc", ax=axes[0][1], palette=palette)
        axes[0][1].set_yticklabels([])
    weight_arms = [a for a in ("none", "l1", "l2", "l1_l2") if a in set(ok["arm"])]
    weights = ok[ok["arm"].isin(weight_arms)]
    return [
        draw("claims_differences", "Each arm minus `none` at the same seed: accuracy "
                    "gap (left; below 0 = less overfitting) and test accuracy (right; above 0 "
                    "= better generalization). One dot per seed, black tick the mean.",
                    differences, size=(13, tall), ncols=2),
        draw("claims_sparsity", "Share of kernel weights below each |w| threshold for "
                    + ", ".join(f"`{a}`" for a in weight_arms) + " (mean; bars min-max over "
                    "seeds): exactly zero at the left, near zero further right.",
                    lambda fig, axes: (plots.plot_sparsity(weights, ax=axes[0][0],
                                                           palette=palette),
                                       axes[0][0].legend(fontsize="small")),
                    size=(8, 4.5)),
    ]
