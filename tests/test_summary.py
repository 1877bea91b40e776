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
    # dropout - none at seeds 0 and 1: +5 points both, so an interval of width 0
    assert format_table(summarize(ROWS.replace({"arm": {"dropout": "drop"}}))).splitlines() == [
        "mnist_mlp:",
        "arm   n  test acc       vs none (pp, 95% CI)  gap (acc)    |w|<1e-3   epochs  not ok",
        "----  -  -------------  --------------------  -----------  ---------  ------  "
        "--------------------",
        "none  3  0.9200±0.0200  -                     0.020±0.020  0.25±0.00  2.0",
        "drop  2  0.9600±0.0141  +5.00 [+5.0,+5.0]     0.060±0.014  0.25±0.00  1.5     "
        "1 diverged, 1 failed",
    ]  # w==0 is 0 in every row: no column


def test_a_table_past_100_columns_lists_its_cells_not_ok_under_it():
    # with `dropout` for `drop`, the not-ok column would take the table to 101 columns
    assert format_table(summarize(ROWS)).splitlines() == [
        "mnist_mlp:",
        "arm      n  test acc       vs none (pp, 95% CI)  gap (acc)    |w|<1e-3   epochs",
        "-------  -  -------------  --------------------  -----------  ---------  ------",
        "none     3  0.9200±0.0200  -                     0.020±0.020  0.25±0.00  2.0",
        "dropout  2  0.9600±0.0141  +5.00 [+5.0,+5.0]     0.060±0.014  0.25±0.00  1.5",
        "not ok: dropout: 1 diverged, 1 failed",
    ]


def test_a_table_still_past_100_columns_states_what_every_arm_shares_above_it():
    long = "l2+dropout+early_stopping+batchnorm"  # 35 characters
    rows = ROWS[ROWS["status"] == "ok"].replace({"arm": {"dropout": long}})
    rows = rows.assign(sparsity_zero=0.05, epochs_run=2)  # a w==0 column, epochs alike
    lines = format_table(summarize(rows)).splitlines()
    assert max(map(len, lines)) <= 100
    assert lines[1] == "every arm: |w|<1e-3 0.25±0.00, w==0 0.05±0.00, epochs 2.0"
    assert lines[2].split() == ["arm", "n", "test", "acc", "vs", "none", "(pp,", "95%", "CI)",
                                "gap", "(acc)"]  # n differs: 3 and 2
    assert lines[-1].split() == [long, "2", "0.9600±0.0141", "+5.00", "[+5.0,+5.0]",
                                 "0.060±0.014"]


def test_the_difference_from_none_is_paired_by_seed_with_its_t_interval():
    # x - none at seeds 0, 1, 2: +1, +2, +3 points; seed 3 has no `none` and does not count
    rows = pd.DataFrame([row("none", s, 0.90) for s in range(3)]
                        + [row("x", s, 0.91 + 0.01 * s) for s in range(4)])
    s = summarize(rows)
    half = 4.302652729749464 * 0.01 / 3 ** 0.5  # t(0.975, 2) * std / sqrt(n)
    assert s.loc[1, ["diff_mean", "diff_low", "diff_high"]].tolist() == pytest.approx(
        [0.02, 0.02 - half, 0.02 + half])
    assert pd.isna(s.loc[0, "diff_mean"])  # none itself


def test_arms_come_in_the_study_order_with_none_first_otherwise():
    rows = pd.DataFrame([row("l2", 0, 0.9), row("dropout", 0, 0.9), row("none", 0, 0.9)])
    assert list(summarize(rows)["arm"]) == ["none", "l2", "dropout"]
    assert list(summarize(rows, arms=["none", "dropout", "l2"])["arm"]) == [
        "none", "dropout", "l2"]


def test_budget_columns_appear_only_when_they_vary():
    assert group_columns(ROWS) == ["problem", "arm"]
    longer = pd.concat([ROWS, pd.DataFrame([row("none", 0, 0.98, epochs=3)])],
                       ignore_index=True)
    assert group_columns(longer) == ["problem", "arm", "epochs"]
    s = summarize(longer)
    assert s[["arm", "epochs", "n"]].values.tolist() == [
        ["none", 2, 3], ["dropout", 2, 2], ["none", 3, 1]]
    lines = format_table(s).splitlines()
    assert lines[0] == "mnist_mlp, epochs 2:" and lines[1].split()[:2] == ["arm", "n"]
    assert lines[-5:-3] == ["", "mnist_mlp, epochs 3:"]  # a table per budget, named above it
    assert lines[-1].split()[:3] == ["none", "1", "0.9800"]  # one seed: no spread


def test_the_table_fits_100_columns_for_every_committed_store():
    from pathlib import Path

    from regbench import store
    stores = sorted((Path(__file__).resolve().parents[1] / "reports").glob("*/results.jsonl"))
    assert len(stores) >= 4
    for path in stores:
        rows = store.load(path)
        if "role" in rows:  # a tuned store: show lists its final cells (the tuning on a line)
            rows = rows[rows["role"] != "tuning"]
        table = format_table(summarize(rows))
        assert max(map(len, table.splitlines())) <= 100, path


def test_a_store_across_backends_with_cells_not_ok_fits_100_columns():
    """The table after a run of the committed backend comparison, had two of its cells not
    been ok: a not-ok column would take it past 100 columns, so they are listed under it."""
    from pathlib import Path

    from regbench import store
    path = Path(__file__).resolve().parents[1] / "reports/mnist_tutorial_backends/results.jsonl"
    rows = store.load(path)
    combination = rows.index[(rows["arm"] == "l2+dropout+early_stopping")
                             & (rows["backend"] == "tensorflow")]
    rows.loc[combination[:2], "status"] = ["failed", "diverged"]
    lines = format_table(summarize(rows)).splitlines()
    assert max(map(len, lines)) <= 100
    jax = lines.index("mnist_mlp, backend jax:")
    assert lines[0] == "mnist_mlp, backend tensorflow:"
    assert lines[1].split() == ["arm", "n", "test", "acc", "vs", "none", "(pp,", "95%", "CI)",
                                "gap", "(acc)", "|w|<1e-3", "epochs"]
    assert lines[11].split()[:3] == ["l2+dropout+early_stopping", "8", "0.8985±0.0035"]
    assert lines[12:jax] == ["not ok: l2+dropout+early_stopping: 1 diverged, 1 failed", ""]
    assert lines[jax + 1] == lines[1] and len(lines) == jax + 12  # JAX: all ok, no note


def test_one_seed_has_no_spread():
    line = format_table(summarize(ROWS[:1])).splitlines()[-1]
    assert line.split() == ["none", "1", "0.9000", "0.25", "2.0"]  # a gap of 0: no column


def test_an_arm_with_no_ok_cell_shows_dashes_and_its_counts():
    line = format_table(summarize(ROWS[5:])).splitlines()[-1]
    assert line.split() == ["dropout", "0", "-", "1", "diverged,", "1", "failed"]


def test_a_store_of_failed_cells_only():
    s = summarize(ROWS[6:])
    assert list(s["n"]) == [0] and list(s["failed"]) == [1]
    assert format_table(s).splitlines()[-1].endswith("1 failed")


def test_show_of_a_tuned_store_fits_100_columns(capsys):
    from pathlib import Path

    from regbench import cli
    for study in ("mnist_tuned", "fashion_mnist_tuned"):
        path = Path(__file__).resolve().parents[1] / "reports" / study / "results.jsonl"
        assert cli.show(path) == 0
        lines = capsys.readouterr().out.splitlines()
        assert "tuning cells" in lines[0] and max(map(len, lines)) <= 100

