"""Grids over technique parameters and the tuned design: how a study file reads, which cells
it plans, and the choice of each grid's point from hand-made rows (one case per outcome)."""

from __future__ import annotations

import math

import pytest

from regbench import tuning
from regbench.errors import RegbenchError
from regbench.recipe import L2, Dropout
from regbench.study import parse_study

HEAD = {"datasets": ["mnist"], "seeds": 2, "model": {"hidden": [8]},
        "training": {"epochs": 1, "train_subset": 500}}


def study(techniques: dict, design: dict | None = None, **top):
    design = design or {"kind": "tuned", "arms": ["none", *techniques],
                        "tuning_seeds": [100, 101]}
    return parse_study(HEAD | top | {"techniques": techniques, "design": design}, "s.toml")


# --- grids --------------------------------------------------------------------------------

def test_a_list_is_a_grid_whose_points_are_arms_named_by_their_values():
    s = study({"l2": {"factor": [1e-5, 1e-4, 0.01]}},
              {"kind": "one_at_a_time"})
    assert [a.label for a in s.arms] == ["none", "l2@1e-05", "l2@0.0001", "l2@0.01"]
    assert [a.techniques for a in s.arms[1:]] == [(L2(1e-5),), (L2(1e-4),), (L2(0.01),)]


def test_a_grid_point_has_the_key_of_the_same_setting_written_without_a_grid():
    grid = study({"l2": {"factor": [1e-4, 0.01]}}, {"kind": "one_at_a_time"})
    plain = study({"l2": {"factor": 0.01}}, {"kind": "one_at_a_time"})
    assert {c.key for c in plain.cells()} < {c.key for c in grid.cells()}


def test_several_lists_are_their_product_and_combinations_multiply():
    s = study({"l1_l2": {"l1": [1e-5, 1e-4], "l2": [1e-3, 1e-2]}, "dropout": {"rate": [0.1, 0.3]}},
              {"kind": "explicit", "arms": ["none", "l1_l2", "l1_l2+dropout"]})
    labels = [a.label for a in s.arms]
    assert labels[1:5] == ["l1_l2@l1=1e-05,l2=0.001", "l1_l2@l1=1e-05,l2=0.01",
                           "l1_l2@l1=0.0001,l2=0.001", "l1_l2@l1=0.0001,l2=0.01"]
    assert len(labels) == 1 + 4 + 8 and labels[-1] == "l1_l2@l1=0.0001,l2=0.01+dropout@0.3"


@pytest.mark.parametrize("factor, message", [
    ([], "a grid needs 2 to 100 values, got 0"),
    ([0.1], "a grid needs 2 to 100 values, got 1"),
    ([[0.1, 0.2], 0.3], "a grid is a list of plain values"),
    ([0.1, 0.1], "grid points 0.1 and 0.1 are the same setting"),
    ([1, 1.0], "grid points 1 and 1 are the same setting"),
    ([0.1, -1.0], "factor"),
    (list(range(101)), "a grid needs 2 to 100 values, got 101"),
])
def test_a_bad_grid_is_refused_naming_the_parameter(factor, message):
    with pytest.raises(RegbenchError, match="techniques.l2") as error:
        study({"l2": {"factor": factor}}, {"kind": "one_at_a_time"})
    assert message in str(error.value)


def test_grids_are_counted_before_they_are_built():
    with pytest.raises(RegbenchError, match="the limit is 100 per technique"):
        study({"l1_l2": {"l1": [i * 1e-6 for i in range(50)], "l2": [1e-3, 1e-2, 1e-1]}},
              {"kind": "one_at_a_time"})
    many = {f"t{i}": {"type": "l2", "factor": [i + 1.0, i + 2.0, i + 3.0]} for i in range(12)}
    with pytest.raises(RegbenchError, match=r"design factorial over 12 techniques: "
                                            r"16,777,216 arms"):
        study(many, {"kind": "factorial"})


# --- the tuned design ---------------------------------------------------------------------

def test_the_tuned_design_plans_tuning_cells_then_final_cells_of_the_chosen_point():
    s = study({"l2": {"factor": [1e-4, 1e-2]}, "batchnorm": {}})
    tuning_cells = s.cells()
    assert [(c.role, c.grid, c.point, c.seed) for c in tuning_cells] == [
        ("tuning", g, p, seed) for seed in (100, 101)
        for g, p in (("none", "none"), ("l2", "l2@0.0001"), ("l2", "l2@0.01"))]
    finals = s.final_cells({"l2": s.arms[2]})
    assert [(c.role, c.arm.label, c.point, c.seed) for c in finals] == [
        ("final", arm, point, seed) for seed in (0, 1)
        for arm, point in (("none", "none"), ("l2", "l2@0.01"), ("batchnorm", "batchnorm"))]
    assert finals[1].arm.techniques == (L2(0.01),)
    # without a choice the tuned arm waits; arms without a grid need none
    assert [c.arm.label for c in s.final_cells({})] == ["none", "batchnorm"] * 2


@pytest.mark.parametrize("design, message", [
    ({"kind": "tuned", "arms": ["none", "l2"]}, "design.tuning_seeds: the tuned design needs"),
    ({"kind": "tuned", "arms": ["none", "l2"], "tuning_seeds": [1, 100]},
     "seed 1 is also a final seed"),
    ({"kind": "tuned", "arms": ["l2"], "tuning_seeds": [100]}, "the arms need `none`"),
    ({"kind": "tuned", "arms": ["none", "l2"], "tuning_seeds": [100], "select": "test_acc"},
     "design.select: unknown rule `test_acc`. Valid rules: val_xent, val_acc"),
    ({"kind": "tuned", "arms": ["none", "l2"], "tuning_seeds": [100], "seed": 1},
     "design: unknown key `seed`"),
    ({"kind": "explicit", "arms": ["none", "l2"], "tuning_seeds": [100]},
     "design: unknown key `tuning_seeds`. Valid keys: kind, arms"),
])
def test_a_bad_tuned_design_is_refused(design, message):
    with pytest.raises(RegbenchError) as error:
        study({"l2": {"factor": [1e-4, 1e-2]}}, design)
    assert message in str(error.value)


def test_a_tuned_design_without_a_grid_is_refused():
    with pytest.raises(RegbenchError, match="no arm has a grid to tune"):
        study({"l2": {"factor": 1e-4}})


# --- the choice ---------------------------------------------------------------------------

def tuned(rule="val_xent", **techniques):
    return study(techniques, {"kind": "tuned", "arms": ["none", *techniques],
                              "tuning_seeds": [100, 101], "select": rule})


def rows_for(s, scores: dict, **extra) -> list[dict]:
    """A stored row per tuning cell: `scores[point]` gives its value at each tuning seed;
    every other metric (test accuracy included) from `extra[point]`."""
    out = []
    for cell in s.cells():
        value = scores.get(cell.point, [0.5, 0.5])[cell.seed - 100]
        row = {"key": cell.key, "status": "ok", "val_xent": value, "val_acc": 1 - value,
               "test_acc": 0.5}
        row.update(extra.get(cell.point, {}))
        out.append(row)
    return out


def test_the_lowest_mean_validation_cross_entropy_is_chosen_and_test_plays_no_part():
    s = tuned(l2={"factor": [1e-5, 1e-4, 1e-3]})
    rows = rows_for(s, {"l2@1e-05": [0.30, 0.32], "l2@0.0001": [0.25, 0.29],
                        "l2@0.001": [0.40, 0.20]},  # mean 0.30: worse than 0.27
                    **{"l2@0.001": {"test_acc": 0.99}})
    assert tuning.choose(s, rows)["l2"].label == "l2@0.0001"


def test_the_highest_mean_validation_accuracy_under_val_acc():
    s = tuned("val_acc", l2={"factor": [1e-5, 1e-4]})
    rows = rows_for(s, {"l2@1e-05": [0.30, 0.30], "l2@0.0001": [0.20, 0.30]})
    assert tuning.choose(s, rows)["l2"].label == "l2@0.0001"  # val_acc 0.75 against 0.70


@pytest.mark.parametrize("technique, values, weakest", [
    ("l2", {"factor": [1e-3, 1e-5, 1e-4]}, "l2@1e-05"),         # smaller factor: weaker
    ("dropout", {"rate": [0.5, 0.1, 0.3]}, "dropout@0.1"),
    ("early_stopping", {"patience": [3, 10, 5]}, "early_stopping@10"),  # longer: weaker
    ("max_norm", {"c": [1.0, 4.0, 2.0]}, "max_norm@4"),           # a larger norm: weaker
])
def test_a_tie_goes_to_the_weaker_setting(technique, values, weakest):
    s = tuned(**{technique: values})
    tie = {p.label: [0.3, 0.3] for p in s.arms if p.label != "none"}
    assert tuning.choose(s, rows_for(s, tie))[technique].label == weakest


def test_means_equal_at_four_decimals_are_a_tie_and_a_fifth_decimal_is_not():
    s = tuned(l2={"factor": [1e-5, 1e-4]})
    near = {"l2@1e-05": [0.30004, 0.30004], "l2@0.0001": [0.30001, 0.30001]}
    assert tuning.choose(s, rows_for(s, near))["l2"].label == "l2@1e-05"
    apart = {"l2@1e-05": [0.3002, 0.3002], "l2@0.0001": [0.3001, 0.3001]}
    assert tuning.choose(s, rows_for(s, apart))["l2"].label == "l2@0.0001"


def test_a_diverged_or_failed_tuning_cell_scores_worst():
    s = tuned(l2={"factor": [1e-5, 1e-4]})
    rows = rows_for(s, {"l2@1e-05": [0.9, 0.9], "l2@0.0001": [0.1, 0.1]})
    for row, cell in zip(rows, s.cells()):
        if cell.point == "l2@0.0001" and cell.seed == 101:
            row.update(status="diverged", val_xent=math.nan)
    assert tuning.choose(s, rows)["l2"].label == "l2@1e-05"
    for status in ("failed", "ok"):
        rows[-1] = {"key": rows[-1]["key"], "status": status}  # no score at all
        assert tuning.choose(s, rows)["l2"].label == "l2@1e-05"


def test_no_choice_until_every_tuning_cell_of_the_grid_is_stored():
    s = tuned(l2={"factor": [1e-5, 1e-4]}, dropout={"rate": [0.1, 0.5]})
    rows = rows_for(s, {})
    incomplete = [r for r, c in zip(rows, s.cells()) if c.point != "l2@0.0001" or c.seed != 101]
    assert set(tuning.choose(s, incomplete)) == {"dropout"}
    assert set(tuning.choose(s, rows)) == {"l2", "dropout"}


def test_the_choice_reads_rows_by_key_not_by_label():
    s = tuned(dropout={"rate": [0.1, 0.5]})
    rows = rows_for(s, {"dropout@0.1": [0.4, 0.4], "dropout@0.5": [0.2, 0.2]})
    for row in rows:
        row["arm"] = "mislabelled"
    assert tuning.choose(s, rows)["dropout"].techniques == (Dropout(0.5),)


# --- a real tuned run -----------------------------------------------------------------------

TINY = """name = "tiny_tuned"
datasets = ["mnist"]
seeds = 2
[model]
hidden = [8]
[training]
epochs = 1
train_subset = 300
[techniques.l2]
factor = [1e-4, 0.5]
[techniques.batchnorm]
[design]
kind = "tuned"
arms = ["none", "l2", "batchnorm"]
tuning_seeds = [100]
"""


@pytest.mark.slow
def test_a_tuned_run_trains_the_grid_then_the_point_it_chose(tmp_path, regbench_cli, data_dir):
    import json

    from regbench.study import load_study

    (tmp_path / "tiny.toml").write_text(TINY)
    store = tmp_path / "tiny.jsonl"
    dry = regbench_cli("run", "tiny.toml", "--store", store, "--dry-run", cwd=tmp_path,
                       data_dir=data_dir)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-2:] == [
        "then 2 final cells, at the grid points the tuning cells choose on validation",
        f"7 cells, 7 to train, store {store}"]  # 3 tuning; none and batchnorm at 2 seeds
    done = regbench_cli("run", "tiny.toml", "--store", store, cwd=tmp_path, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    tuning_rows = [r for r in rows if r["role"] == "tuning"]
    final = [r for r in rows if r["role"] == "final"]
    assert sorted(r["grid_point"] for r in tuning_rows) == ["l2@0.0001", "l2@0.5", "none"]
    assert {r["seed"] for r in tuning_rows} == {100} and {r["seed"] for r in final} == {0, 1}
    scores = {r["grid_point"]: r["val_xent"] for r in tuning_rows}
    best = min(("l2@0.0001", "l2@0.5"), key=scores.get)
    l2 = [r for r in final if r["arm"] == "l2"]
    assert [r["grid_point"] for r in l2] == [best, best]
    assert all(r["l2.factor"] == float(best.split("@")[1]) for r in l2)
    study = load_study(tmp_path / "tiny.toml")
    assert {r["key"] for r in final} == {c.key for c in study.final_cells(
        tuning.choose(study, rows))}
    assert "3 tuning cells, seeds [100]; chosen on validation: " + best in done.stdout
    again = regbench_cli("run", "tiny.toml", "--store", store, cwd=tmp_path, data_dir=data_dir)
    assert "9 cells, 9 stored, 0 to train" in again.stderr
    assert len(store.read_text().splitlines()) == 9
