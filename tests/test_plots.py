"""regbench.plots on synthetic rows, headless (Agg): Axes, labels and colours, no image diffs."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from report_rows import TUTORIAL, row, tutorial_rows  # noqa: E402

from regbench import plots  # noqa: E402


@pytest.fixture(scope="module")
def df():
    rows = tutorial_rows(seeds=range(3))
    rows.append(row("dropout", 3, study="mnist_tutorial", status="failed"))
    rows.append(row("l1", 3, study="mnist_tutorial", status="diverged"))
    return pd.DataFrame(rows)


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def tick_labels(ax, axis="y"):
    ticks = ax.get_yticklabels() if axis == "y" else ax.get_xticklabels()
    return [t.get_text() for t in ticks]


def test_palette_fixes_a_colour_per_technique_and_spares_the_rest():
    palette = plots.arm_palette(["l2+dropout", "none", "l1", "custom"])
    assert palette["none"] == plots.ARM_COLORS["none"]
    assert palette["l1"] == plots.ARM_COLORS["l1"]
    assert palette["l2+dropout"] == plots.SPARE_COLORS[0]
    assert palette["custom"] == plots.SPARE_COLORS[1]
    assert plots.arms_of(pd.DataFrame({"arm": ["l1", "none", "l1"]})) == ["none", "l1"]


def test_plot_test_accuracy_draws_every_arm_with_its_not_ok_count(df, ax):
    out = plots.plot_test_accuracy(df, ax=ax)
    assert out is ax
    assert ax.get_xlabel() == "test accuracy"
    labels = tick_labels(ax)
    assert labels[0] == "none" and len(labels) == 9
    assert "dropout (1 not ok)" in labels and "l1 (1 not ok)" in labels
    # one scatter of seed points per arm, in that arm's fixed colour
    colours = {to_hex(c.get_facecolor()[0]) for c in ax.collections
               if len(c.get_facecolor()) and len(c.get_offsets())}
    assert plots.ARM_COLORS["l1"] in colours and plots.ARM_COLORS["none"] in colours


def test_plot_gap_marks_zero(df, ax):
    plots.plot_gap(df, ax=ax, metric="gap_xent")
    assert "test xent − train xent" in ax.get_xlabel()
    assert any(list(line.get_xdata()) == [0.0, 0.0] for line in ax.get_lines())


def test_plot_paired_differences_leaves_out_the_baseline(df, ax):
    plots.plot_paired_differences(df, "test_acc", "none", ax=ax)
    labels = tick_labels(ax)
    assert "none" not in labels and len(labels) == 8
    assert ax.get_xlabel() == "test accuracy: arm − none, same seed"


def test_plot_learning_curves_draws_train_and_validation_per_arm(df, ax):
    part = df[df["arm"].isin(["none", "early_stopping"])]
    plots.plot_learning_curves(part, ax=ax, reference=df[df["arm"] == "none"])
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["none (validation)", "none (train)", "none (validation)",
                      "early_stopping (train)", "early_stopping (validation)"]
    assert len(ax.get_lines()[-1].get_xdata()) == 12  # early-stopped at epoch 12
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "cross-entropy"


def test_plot_sparsity_has_a_point_per_threshold(df, ax):
    plots.plot_sparsity(df[df["arm"].isin(["none", "l1"])], ax=ax)
    assert tick_labels(ax, "x") == ["= 0", "< 1e-3", "< 1e-2", "< 1% of\nlayer max"]
    assert ax.get_ylabel() == "fraction of weights"


def test_magnitude_bins_from_threshold_fractions():
    bins = plots.magnitude_bins({"zero": 0.1, "lt_1e-3": 0.5, "lt_1e-2": 0.8})
    assert bins == pytest.approx([0.1, 0.4, 0.3, 0.2])


def test_plot_magnitude_bins(df, ax):
    plots.plot_magnitude_bins(df[df["arm"].isin(["none", "l1", "l2"])], "hidden_0", ax=ax)
    assert tick_labels(ax, "x") == ["= 0", "(0, 1e-3)", "[1e-3, 1e-2)", "≥ 1e-2"]
    assert len(ax.patches) == 3 * 4  # a bar per arm and bin
    assert ax.get_title() == "layer `hidden_0`"


@pytest.mark.parametrize("time, label", [
    ("epoch_s", "time per epoch (s, median after the first)"),
    ("fit_s", "training time per cell (s, all epochs run)")])
def test_plot_cost(df, ax, time, label):
    plots.plot_cost(df, ax=ax, time=time)
    assert ax.get_xlabel() == label
    assert ax.get_ylabel() == "test accuracy"
    assert set(ax.get_legend_handles_labels()[1]) == set(TUTORIAL)


# --- what is drawn where, on rows without jitter (noise=0) ----------------------------------

def exact(arm, seed, **values):
    return row(arm, seed, noise=0.0, **values)


def r9(values) -> list[float]:
    """Coordinates rounded to 9 digits, to compare with numbers written by hand."""
    return [round(float(v), 9) for v in values]


def test_plot_metric_draws_each_seed_its_mean_and_its_t_interval(ax):
    # none: 0.90, 0.92, 0.94 -> mean 0.92, half width t(0.975, 2) * 0.02 / sqrt(3)
    rows = pd.DataFrame([exact("none", s, test_acc=0.90 + 0.02 * s) for s in range(3)]
                        + [exact("l1", s, test_acc=0.8) for s in range(2)])
    plots.plot_test_accuracy(rows, ax=ax)
    points = [r9(sorted(c.get_offsets()[:, 0])) for c in ax.collections
              if isinstance(c, PathCollection) and len(c.get_offsets())]
    assert sorted(points) == [[0.8, 0.8], [0.90, 0.92, 0.94]]
    caps = [line for bar in ax.containers for line in bar[1]]  # the interval's end caps
    means = [line.get_xdata()[0] for line in ax.get_lines()
             if line.get_marker() == "|" and line not in caps]
    assert r9(means) == [0.92, 0.8]  # `none` on the first row
    half = 4.302652729749464 * 0.02 / 3 ** 0.5
    assert sorted(r9(x for cap in caps for x in cap.get_xdata())) == r9(
        [0.8, 0.8, 0.92 - half, 0.92 + half])  # l1's two equal seeds: an interval of width 0
    bars = [seg for c in ax.collections if isinstance(c, LineCollection)
            for seg in c.get_segments()]
    assert [r9(sorted(seg[:, 0])) for seg in bars] == [r9([0.92 - half, 0.92 + half]),
                                                       [0.8, 0.8]]


def test_plot_paired_differences_draws_the_differences_of_each_seed(ax):
    # x - none at seeds 0, 1, 2: 0.01, 0.02, 0.03 (mean 0.02); y - none: -0.05 at each
    rows = pd.DataFrame([exact("none", s, test_acc=0.9) for s in range(3)]
                        + [exact("x", s, test_acc=0.91 + 0.01 * s) for s in range(3)]
                        + [exact("y", s, test_acc=0.85) for s in range(3)])
    plots.plot_paired_differences(rows, "test_acc", "none", ax=ax)
    points = [r9(sorted(c.get_offsets()[:, 0])) for c in ax.collections
              if isinstance(c, PathCollection) and len(c.get_offsets())]
    assert points == [[0.01, 0.02, 0.03], [-0.05] * 3]
    caps = [line for bar in ax.containers for line in bar[1]]
    means = [line.get_xdata()[0] for line in ax.get_lines()
             if line.get_marker() == "|" and line not in caps]
    assert means == pytest.approx([0.02, -0.05])


def test_plot_learning_curves_draws_the_mean_over_seeds_of_ragged_histories(ax):
    rows = [exact("none", s) for s in range(3)]
    rows[0]["history"] = {"xent": [1.0, 0.5], "val_xent": [2.0, 1.0]}
    rows[1]["history"] = {"xent": [4.0, 1.5], "val_xent": [7.0, 3.0]}
    rows[2]["history"] = {"xent": [1.0], "val_xent": [3.0]}  # stopped after one epoch
    plots.plot_learning_curves(pd.DataFrame(rows), ax=ax)
    curves = {line.get_label(): r9(line.get_ydata()) for line in ax.get_lines()}
    # epoch 1: mean of three seeds (not their median), epoch 2: of the two that ran it
    assert curves == {"none (train)": [2.0, 1.0], "none (validation)": [4.0, 2.0]}
    band = ax.collections[0].get_paths()[0].vertices[:, 1]  # the train curve's min-max band
    assert set(r9(band)) == {1.0, 4.0, 0.5, 1.5}


def test_plot_magnitude_bins_draws_each_arms_histogram(ax):
    # noise 0: l1 has 0.96 of |w| < 1e-3 and 1.0 < 1e-2; none 0.004 and 0.044; no exact zeros
    rows = pd.DataFrame([exact(arm, s, lt3=TUTORIAL[arm]["lt3"]) for s in range(2)
                         for arm in ("none", "l1")])
    plots.plot_magnitude_bins(rows, "output", ax=ax)
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.0, 0.004, 0.04, 0.956, 0.0, 0.96, 0.04, 0.0])


def test_plot_cost_places_each_arm_at_its_mean_time_and_accuracy(ax):
    rows = pd.DataFrame([exact("none", s, test_acc=0.9 + 0.02 * s, epoch_s=1.0) for s in
                         range(2)] + [exact("l1", s, test_acc=0.8, epoch_s=2.0 + s)
                                      for s in range(2)])
    plots.plot_cost(rows, ax=ax)
    points = {bar.get_label(): r9(bar.lines[0].get_xydata()[0]) for bar in ax.containers}
    assert points == {"none": [1.0, 0.91], "l1": [2.5, 0.8]}
    assert not ax.texts  # named in the legend, not beside points that may overlap


def test_plot_paired_differences_draws_the_interval_of_the_mean_difference(ax):
    # x - none: 0.01, 0.02, 0.03, 0.04 at four seeds; the bar is the t-interval:
    # sd 0.01291, t(0.975, 3) = 3.1824 (tables): 0.025 -+ 0.02054
    rows = pd.DataFrame([exact("none", s, test_acc=0.9) for s in range(4)]
                        + [exact("x", s, test_acc=0.91 + 0.01 * s) for s in range(4)])
    plots.plot_paired_differences(rows, "test_acc", "none", ax=ax)
    low, high = 0.025 - 0.020543, 0.025 + 0.020543
    bars = [seg for c in ax.collections if isinstance(c, LineCollection)
            for seg in c.get_segments()]
    assert [sorted(seg[:, 0]) for seg in bars] == [pytest.approx([low, high], abs=1e-5)]


def test_plot_learning_curves_draws_accuracy_on_a_linear_scale_with_the_reference(ax):
    rows = [exact("x", s) for s in range(2)]
    rows[0]["history"] = {"acc": [0.5, 0.7], "val_acc": [0.6, 0.8]}
    rows[1]["history"] = {"acc": [0.7, 0.9], "val_acc": [0.6, 1.0]}
    reference = [exact("none", 0)]
    reference[0]["history"] = {"acc": [0.1, 0.2], "val_acc": [0.3, 0.4]}
    plots.plot_learning_curves(pd.DataFrame(rows), ax=ax, metric="acc",
                               reference=pd.DataFrame(reference))
    curves = {line.get_label(): r9(line.get_ydata()) for line in ax.get_lines()}
    assert curves == {"none (validation)": [0.3, 0.4], "x (train)": [0.6, 0.8],
                      "x (validation)": [0.6, 0.9]}
    assert ax.get_yscale() == "linear" and ax.get_ylabel() == "accuracy"


def test_plots_draw_on_the_current_axes_without_ax(df):
    fig = plt.figure()
    try:
        assert plots.plot_test_accuracy(df) is plt.gca()
    finally:
        plt.close(fig)
