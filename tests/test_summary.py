"""regbench.summary: n and mean ± std per arm, from a small hand-made set of rows."""

import pandas as pd
import pytest

from regbench.summary import format_table, group_columns, summarize

NAN = float("nan")


def row(arm, seed, acc, status="ok", **changes):
    """A stored row with the headline metrics; failed rows have no metrics at all."""
    out = {"problem": "mnist_mlp", "arm": arm, "seed": seed, "status": status,
           "epochs": 2, "train_subset": 1000, "batch_size": 32, "learning_rate": 1e-3}
    if status != "failed":
        out.update({"test_acc": acc, "gap_acc": acc - 0.9, "gap_xent": 0.1,
                    "sparsity_lt_1e-3": 0.25, "sparsity_zero": 0.0, "epochs_run": 2})
    return out | changes


ROWS = pd.DataFrame([
    row("none", 0, 0.90), row("none", 1, 0.92), row("none", 2, 0.94),
    row("dropout", 0, 0.95), row("dropout", 1, 0.97, epochs_run=1),
    row("dropout", 2, NAN, "diverged"), row("dropout", 3, NAN, "failed"),
])


def test_summarize_gives_n_mean_and_std_of_ok_cells_per_arm():
    s = summarize(ROWS)
    assert list(s["arm"]) == ["none", "dropout"]  # order of first appearance
    assert list(s["n"]) == [3, 2]
    assert list(s["diverged"]) == [0, 1] and list(s["failed"]) == [0, 1]
    assert s["test_acc_mean"].tolist() == pytest.approx([0.92, 0.96])
    assert s["test_acc_std"].tolist() == pytest.approx([0.02, 0.02 ** 0.5 / 10])  # ddof=1
    assert s["epochs_run_mean"].tolist() == pytest.approx([2.0, 1.5])


def test_format_table():
    assert format_table(summarize(ROWS)).splitlines() == [
        "problem    arm      n  test acc         gap (acc)        gap (xent)       "
        "|w|<1e-3         w==0             epochs     notes",
        "---------  -------  -  ---------------  ---------------  ---------------  "
        "---------------  ---------------  ---------  --------------------",
        "mnist_mlp  none     3  0.9200 ± 0.0200  0.0200 ± 0.0200  0.1000 ± 0.0000  "
        "0.2500 ± 0.0000  0.0000 ± 0.0000  2.0 ± 0.0",
        "mnist_mlp  dropout  2  0.9600 ± 0.0141  0.0600 ± 0.0141  0.1000 ± 0.0000  "
        "0.2500 ± 0.0000  0.0000 ± 0.0000  1.5 ± 0.7  1 diverged, 1 failed",
    ]


def test_budget_columns_appear_only_when_they_vary():
    assert group_columns(ROWS) == ["problem", "arm"]
    longer = pd.concat([ROWS, pd.DataFrame([row("none", 0, 0.98, epochs=3)])],
                       ignore_index=True)
    assert group_columns(longer) == ["problem", "arm", "epochs"]
    s = summarize(longer)
    assert s[["arm", "epochs", "n"]].values.tolist() == [
        ["none", 2, 3], ["dropout", 2, 2], ["none", 3, 1]]
    lines = format_table(s).splitlines()
    assert lines[0].split()[:4] == ["problem", "arm", "epochs", "n"]
    assert lines[-1].split()[:7] == ["mnist_mlp", "none", "3", "1", "0.9800", "±", "0.0000"]


def test_one_seed_has_zero_spread():
    line = format_table(summarize(ROWS[:1])).splitlines()[-1]
    assert line.startswith("mnist_mlp  none  1  0.9000 ± 0.0000")


def test_an_arm_with_no_ok_cell_shows_dashes_and_its_counts():
    line = format_table(summarize(ROWS[5:])).splitlines()[-1]
    assert line.split() == ["mnist_mlp", "dropout", "0", *["-"] * 6, "1", "diverged,", "1",
                            "failed"]


def test_a_store_of_failed_cells_only():
    s = summarize(ROWS[6:])
    assert list(s["n"]) == [0] and list(s["failed"]) == [1]
    assert format_table(s).splitlines()[-1].endswith("1 failed")


def test_rows_without_status_count_as_ok():
    s = summarize(ROWS[:3].drop(columns="status"))
    assert list(s["n"]) == [3] and list(s["failed"]) == [0]


def test_nothing_stored():
    assert summarize(pd.DataFrame()).empty
    assert format_table(summarize(pd.DataFrame())) == "no results yet"
