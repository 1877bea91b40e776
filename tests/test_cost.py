"""Each cell's own cost (`engine.cost`): a pack's members share one wall clock, so every
trained cell is also timed alone, once per kind of cell, and reports compare that."""

import math

import pandas as pd
import pytest

from regbench import engine, plots
from regbench.engine import cost
from regbench.study import parse_study

STUDY = {"datasets": ["mnist"], "seeds": [1, 2], "model": {"hidden": [16]},
         "training": {"batch_size": 50, "epochs": 2, "train_subset": 2000},
         "techniques": {"augmentation": {}},
         "design": {"kind": "explicit", "arms": ["none", "augmentation"]}}


@pytest.fixture
def probing(monkeypatch):
    monkeypatch.setenv("REGBENCH_COST_PROBE", "1")
    cost._probed.clear()
    yield
    cost._probed.clear()


@pytest.mark.slow
def test_stacked_cells_get_their_own_cost_timed_alone(probing, data_dir):
    engine.configure(deterministic=True)
    rows = engine.fit(parse_study(STUDY, "cost").cells(), str(data_dir))
    by = {(r["arm"], r["seed"]): r for r in rows}
    assert {r["strategy"] for r in rows} == {"stack"}
    for arm in ("none", "augmentation"):  # a stack of two seeds: one wall clock
        assert by[(arm, 1)]["epoch_s"] == by[(arm, 2)]["epoch_s"]
        # one probe per kind of cell: the seeds of an arm cost alike
        assert by[(arm, 1)]["cost_step_s"] == by[(arm, 2)]["cost_step_s"] > 0
        row = by[(arm, 1)]
        assert row["cost_epoch_s"] == pytest.approx(
            row["cost_step_s"] * math.ceil(row["n_fit"] / 50))
    assert by[("none", 1)]["cost_step_s"] != by[("augmentation", 1)]["cost_step_s"]


@pytest.mark.slow
def test_a_cell_trained_alone_is_its_own_measurement(monkeypatch, data_dir):
    monkeypatch.setenv("REGBENCH_COST_PROBE", "0")  # not probed, and still costed
    row, = engine.fit(parse_study(STUDY, "cost").cells()[:1], str(data_dir))
    assert row["strategy"] == "alone" and row["cost_epoch_s"] == row["epoch_s"]
    assert row["cost_step_s"] == pytest.approx(row["epoch_s"] / math.ceil(row["n_fit"] / 50))


@pytest.mark.slow
def test_the_probe_times_the_cells_own_network(probing, data_dir):
    """A network with about 400 times the multiply-adds per step costs more to step: the
    probe measures the cell it is given (a threshold of 3x against a ratio near 100x)."""
    small, = parse_study(STUDY, "s").cells()[:1]
    wide = {**STUDY, "model": {"hidden": [2048, 2048]}}
    large, = parse_study(wide, "w").cells()[:1]
    small_step, large_step = cost.probe([small, large], str(data_dir))
    assert large_step > 3 * small_step


def test_without_the_probe_rows_fall_back_to_their_own_time():
    costed = pd.DataFrame({"status": ["ok", "ok"], "epoch_s": [1.0, 1.0],
                           "cost_epoch_s": [0.5, 1.2]})
    assert plots.cost_column(costed) == "cost_epoch_s"
    assert plots.cost_column(costed.drop(columns="cost_epoch_s")) == "epoch_s"
    partly = costed.assign(cost_epoch_s=[0.5, None])  # rows from before the probe
    assert plots.cost_column(partly) == "epoch_s"


def test_the_probe_is_off_when_asked(monkeypatch):
    monkeypatch.setenv("REGBENCH_COST_PROBE", "0")
    assert not cost.enabled()
    monkeypatch.delenv("REGBENCH_COST_PROBE")
    assert cost.enabled()
