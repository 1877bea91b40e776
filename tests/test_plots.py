"""regbench.plots on synthetic rows, headless (Agg): Axes, labels and colours, no image diffs."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from report_rows import row, tutorial_rows  # noqa: E402

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
    plots.plot_learning_curves(part, ax=ax, reference="none")
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["none (validation)", "none (train)", "none (validation)",
                      "early_stopping (train)", "early_stopping (validation)"]
    assert len(ax.get_lines()[-1].get_xdata()) == 12  # early-stopped at epoch 12
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "cross-entropy"


def test_plot_sparsity_has_a_point_per_threshold(df, ax):
    plots.plot_sparsity(df[df["arm"].isin(["none", "l1"])], ax=ax)
    assert tick_labels(ax, "x") == list(plots.SPARSITY_COLUMNS.values())
    assert ax.get_ylabel() == "fraction of weights"


def test_magnitude_bins_from_threshold_fractions():
    bins = plots.magnitude_bins({"zero": 0.1, "lt_1e-3": 0.5, "lt_1e-2": 0.8})
    assert bins == pytest.approx([0.1, 0.4, 0.3, 0.2])


def test_plot_magnitude_bins(df, ax):
    plots.plot_magnitude_bins(df[df["arm"].isin(["none", "l1", "l2"])], "hidden_0", ax=ax)
    assert tick_labels(ax, "x") == list(plots.MAGNITUDE_BINS)
    assert len(ax.patches) == 3 * 4  # a bar per arm and bin
    assert ax.get_title() == "layer `hidden_0`"


@pytest.mark.parametrize("time", ["epoch_s", "fit_s"])
def test_plot_cost(df, ax, time):
    plots.plot_cost(df, ax=ax, time=time)
    assert ax.get_xlabel() == plots.LABELS[time]
    assert ax.get_ylabel() == "test accuracy"
    assert {t.get_text() for t in ax.texts} == set(plots.arms_of(df))


def test_plots_draw_on_the_current_axes_without_ax(df):
    fig = plt.figure()
    try:
        assert plots.plot_test_accuracy(df) is plt.gca()
    finally:
        plt.close(fig)
