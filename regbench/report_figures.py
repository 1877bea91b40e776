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

    near, far = split_far(ok, baseline)
    rows_near, rows_far = rows[rows["arm"].isin(near)], rows[rows["arm"].isin(far)]
    far_note = (f" Arms more than {FAR_PP:g} points from `{baseline}` ("
                + ", ".join(f"`{a}`" for a in far)
                + ") are drawn in a panel of their own below, so that the scale of the "
                "others shows their differences." if far else "")

    def by_distance(plot, rows_near, rows_far):
        def draw_panels(fig, axes):
            plot(rows_near, axes[0][0])
            if far:
                plot(rows_far, axes[1][0])
        return draw_panels

    def height(arms):
        return max(2.2, 0.45 * len(arms) + 1.2)

    out.append(draw("test_accuracy", "Test accuracy per arm: every seed a dot, mean (black "
                    "tick) and 95% t-interval (bar)." + far_note,
                    by_distance(lambda r, ax: plots.plot_test_accuracy(r, ax=ax,
                                                                       palette=palette),
                                rows_near, rows_far),
                    size=(8, height(near) + (height(far) if far else 0)),
                    nrows=2 if far else 1, prefix=prefix))

    def gaps(fig, axes):
        plots.plot_gap(rows, ax=axes[0][0], metric="gap_acc", palette=palette)
        plots.plot_gap(rows, ax=axes[0][1], metric="gap_xent", palette=palette)
        axes[0][1].set_yticklabels([])
    out.append(draw("gap", "Generalization gap per arm, in accuracy (left) and "
                    "cross-entropy (right); train set re-evaluated in inference mode.", gaps,
                    size=(12, tall), ncols=2, prefix=prefix))
    if len(arms) > 1:
        others_near = [a for a in near if a != baseline]
        with_baseline = rows[rows["arm"] == baseline]
        near_rows = pd.concat([with_baseline, rows[rows["arm"].isin(others_near)]])
        far_rows = pd.concat([with_baseline, rows_far])
        panels = [a for a in (others_near, far) if a]
        out.append(draw("paired_differences", f"Test accuracy minus `{baseline}`'s at the same "
                        "seed: one dot per seed, black tick the mean, bar its 95% t-interval "
                        "(as in the tables)." + far_note,
                        _paired_panels(panels, near_rows, far_rows, others_near, baseline,
                                       palette),
                        size=(8, sum(height(a) - 0.45 for a in panels)),
                        nrows=len(panels), prefix=prefix))
    if "history" in ok:
        out += [_curves_figure(ok, trained, baseline, palette, prefix, metric)
                for metric in ("xent", "acc")]
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
        per_epoch = plots.cost_column(ok)

        def cost(fig, axes):
            plots.plot_cost(ok, ax=axes[0][0], palette=palette, time=per_epoch)
            plots.plot_cost(ok, ax=axes[0][1], palette=palette, time="fit_s")
            axes[0][1].set_ylabel("")
            handles, labels = axes[0][0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside right upper", fontsize="small")
        left = ("each cell's cost per epoch trained alone (left; its training steps timed "
                "alone after its pack, so packed members do not share one time)"
                if per_epoch == "cost_epoch_s" else
                "time per epoch (left; median epoch after the first; a pack's members share "
                "the pack's time, so it does not rank their techniques)")
        out.append(draw("cost", f"Test accuracy against {left} and whole training time per "
                        "cell (right; a pack's time, shared by its members; early stopping "
                        "saves here), on the hardware in Reproducibility; mean ± std over "
                        "seeds.", cost, size=(14, 5), ncols=2, prefix=prefix))
    return out


FAR_PP = 2.0  # points of test accuracy from the baseline that put an arm in its own panel


def split_far(ok: pd.DataFrame, baseline: str) -> tuple[list[str], list[str]]:
    """Arms (study order) within `FAR_PP` points of the baseline's mean test accuracy, and
    the others, which would otherwise set a scale on which the near ones look alike."""
    from regbench import plots

    means = ok.groupby("arm")["test_acc"].mean()
    arms = plots.arms_of(ok)
    if baseline not in means:
        return arms, []
    far = [a for a in arms if abs(means[a] - means[baseline]) * 100 > FAR_PP]
    return [a for a in arms if a not in far], far


def _paired_panels(panels, near_rows, far_rows, near, baseline, palette):
    from regbench import plots

    def plot(fig, axes):
        for ax, arms in zip(axes[:, 0], panels):
            plots.plot_paired_differences(near_rows if arms is near else far_rows,
                                          "test_acc", baseline, ax=ax, palette=palette)
    return plot


def _curves_figure(ok: pd.DataFrame, arms: list[str], baseline: str, palette: dict,
                   prefix: str, metric: str):
    """One panel per arm, `baseline`'s validation curve in each other panel for reference."""
    from regbench import plots

    ncols = min(3, len(arms))
    nrows = math.ceil(len(arms) / ncols)
    reference = ok[ok["arm"] == baseline]

    def curves(fig, axes):
        flat = axes.ravel()
        for ax, arm in zip(flat, arms):
            plots.plot_learning_curves(ok[ok["arm"] == arm], ax=ax, palette=palette,
                                       reference=reference if arm != baseline else None,
                                       metric=metric)
            ax.set_title(arm, fontsize="medium")
            ax.legend(fontsize="x-small", loc="best")
        for ax in flat[len(arms):]:
            ax.set_visible(False)
        lows = [a.get_ylim()[0] for a in flat[:len(arms)]]
        highs = [a.get_ylim()[1] for a in flat[:len(arms)]]
        for ax in flat[:len(arms)]:
            ax.set_ylim(min(lows), max(highs))
    if metric == "xent":
        what = ("Cross-entropy per epoch (log scale)", "no penalty")
        name = "learning_curves"
    else:
        what = ("Accuracy per epoch", "")
        name = "accuracy_curves"
    train = "running average in training mode: dropout on, augmented inputs" + (
        f", {what[1]}" if what[1] else "")
    return draw(name, f"{what[0]}: train (dashed, {train}) and validation (solid, inference "
                "mode); line = mean over seeds, band = min-max over seeds. Grey dotted, in "
                f"every other panel: `{baseline}`'s validation curve for reference. "
                "Early-stopped seeds end early, so later epochs average fewer seeds.",
                curves, size=(4.2 * ncols, 3.2 * nrows), ncols=ncols, nrows=nrows,
                prefix=prefix)


def _layer_names(rows: pd.DataFrame) -> list[str]:
    from regbench import plots

    if "layers" not in rows:
        return []
    names = [name for s in rows["layers"] if isinstance(s, dict) for name, layer in s.items()
             if plots.has_bins(layer)]
    return list(dict.fromkeys(names))


def claims_figures(rows: pd.DataFrame, prefix: str = "") -> list:
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
                    differences, size=(13, tall), ncols=2, prefix=prefix),
        draw("claims_sparsity", "Share of kernel weights below each |w| threshold for "
                    + ", ".join(f"`{a}`" for a in weight_arms) + " (mean; bars min-max over "
                    "seeds): exactly zero at the left, near zero further right.",
                    lambda fig, axes: (plots.plot_sparsity(weights, ax=axes[0][0],
                                                           palette=palette),
                                       axes[0][0].legend(fontsize="small")),
                    size=(8, 4.5), prefix=prefix),
    ]
