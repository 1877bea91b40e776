"""`regbench reproduce`: names, bad input, selection on validation only, the claim verdicts,
one small Table 9-style reproduction trained end to end, and the committed reports."""

from __future__ import annotations

import math
import shutil
import textwrap
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from regbench import reproduce, store, train
from regbench.reproduce import common, ioffe, registry, srivastava
from regbench.reproduce.registry import Table9Row

REPO = Path(__file__).resolve().parents[1]


def test_list_names_every_reproduction(regbench_cli, tmp_path):
    result = regbench_cli("reproduce", "--list", cwd=REPO)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == list(reproduce.REPRODUCTIONS)
    assert {"srivastava2014_table9", "srivastava2014_fig10_narrow", "zhang2017_table1",
            "ioffe2015_bn_mnist"} <= set(names)


@pytest.mark.parametrize("args, message", [
    (["bogus"], "regbench: error: reproduce: unknown reproduction `bogus`. Valid names: "
                + ", ".join(reproduce.REPRODUCTIONS)),
    ([], "regbench: error: reproduce: give a NAME (see `regbench reproduce --list`)"),
    (["--all"], "regbench: error: --all: only with --report-only and no name"),
    (["--list", "ioffe2015_bn_mnist"], "regbench: error: --list: takes no name and no other "
                                       "option"),
])
def test_bad_input_is_one_line_and_writes_nothing(regbench_cli, tmp_path, args, message):
    result = regbench_cli("reproduce", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert list(tmp_path.iterdir()) == []


def _rows(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"status": "ok", **r} for r in records])


def test_grid_points_are_chosen_on_validation_accuracy_never_test():
    rows = _rows([
        {"arm": "a", "seed": 100, "val_acc": 0.90, "test_acc": 0.99},
        {"arm": "b", "seed": 100, "val_acc": 0.95, "test_acc": 0.10},
        {"arm": "c", "seed": 100, "val_acc": 0.80, "test_acc": 0.80},
    ])
    grid = (Table9Row("M", 1.0, ("a", "b")), Table9Row("N", 1.0, ("c", "missing")),
            Table9Row("O", 1.0, ("missing",)))
    assert srivastava.chosen_arms(rows, grid) == {"M": "b", "N": "c"}


def test_steps_to_a_threshold_is_the_first_point_at_or_above_it():
    curve = {"step": [100, 200, 300], "test_acc": [0.90, 0.95, 0.97]}
    assert ioffe.steps_to(curve, 0.95) == 200
    assert ioffe.steps_to(curve, 0.97) == 300
    assert math.isnan(ioffe.steps_to(curve, 0.99))


@pytest.mark.parametrize("low, high, expected_sign, verdict", [
    (0.1, 0.5, 1, "reproduced"),
    (-0.5, -0.1, 1, "reversed"),
    (-0.5, -0.1, -1, "reproduced"),
    (-0.1, 0.5, 1, "not resolved (CI includes 0)"),
])
def test_direction_verdict(low, high, expected_sign, verdict):
    d = {"n": 3, "mean": (low + high) / 2, "ci_low": low, "ci_high": high}
    assert common.direction_verdict(d, expected_sign) == verdict
    assert common.direction_verdict({"n": 0}, 1) == "not yet run"


def test_kendall_tau_of_same_and_reversed_orders():
    assert common.kendall([1, 2, 3], [10, 20, 30]).startswith("Kendall's tau = +1.00 over 3")
    assert common.kendall([1, 2, 3], [3, 2, 1]).startswith("Kendall's tau = -1.00 over 3")
    assert "fewer than two rows" in common.kendall([1, 2], [math.nan, 1.0])


TINY_TUNING = """
    name = "tiny_tuning"
    datasets = ["mnist"]
    seeds = [100]
    [model]
    hidden = [16]
    [training]
    optimizer = "sgd"
    learning_rate = 0.1
    lr_decay = 0.9
    momentum_start = 0.5
    momentum = 0.9
    momentum_epochs = 1
    batch_size = 64
    epochs = 2
    train_subset = 256
    [techniques.l2_small]
    type = "l2"
    factor = 1e-5
    [techniques.l2_large]
    type = "l2"
    factor = 1e-1
    [techniques.mn_a]
    type = "max_norm"
    c = 1.0
    [techniques.mn_b]
    type = "max_norm"
    c = 4.0
    [design]
    arms = ["l2_small", "l2_large", "mn_a", "mn_b"]
"""


def test_a_table9_style_reproduction_end_to_end(tmp_path, monkeypatch, data_dir):
    """Tune on seed 100 (validation only), train the chosen points at seeds 0 and 1, report."""
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "tiny_tuning.toml").write_text(textwrap.dedent(TINY_TUNING))
    monkeypatch.setattr(registry, "STUDY_DIR", tmp_path / "studies")
    monkeypatch.setattr(registry, "REPORT_DIR", tmp_path / "out")
    rows = (Table9Row("L2", 1.62, ("l2_small", "l2_large")),
            Table9Row("Max-norm", 1.35, ("mn_a", "mn_b")))
    base = reproduce.get("srivastava2014_table9_narrow")
    tiny = replace(base, name="tiny", studies=("tiny_tuning",),
                   published=replace(base.published, rows=rows), final_seeds=(0, 1), stretch=2,
                   stretch_methods=("Max-norm",))
    monkeypatch.setitem(reproduce.REPRODUCTIONS, "tiny", tiny)
    trained = []

    def trainer(cells, path):
        done = store.finished_keys(path)
        for cell in cells:
            if cell.key not in done:
                store.append(path, train.run_cell(cell, data_dir=str(data_dir)))
                trained.append(cell)

    train.configure()
    out = reproduce.run("tiny", trainer, say=lambda _: None, gpu=False)
    # the grid at seed 100, two chosen points x 2 seeds, the max-norm point stretched x 2 seeds
    assert len(trained) == 4 + 4 + 2
    assert [c.training.epochs for c in trained[-2:]] == [4, 4]
    assert trained[-1].training.learning_rate_at(3) == pytest.approx(
        trained[0].training.learning_rate_at(1))  # the same final learning rate
    results = store.load(out / "results.jsonl")
    tuning = results[results["study"] == "tiny_tuning"]
    final = results[results["study"] == "tiny"]
    assert sorted(final["seed"]) == [0, 0, 1, 1]
    best = {m.method: max(m.grid, key=lambda a: tuning.loc[tuning["arm"] == a, "val_acc"].mean())
            for m in rows}
    assert set(final["arm"]) == set(best.values())
    text = (out / "README.md").read_text()
    assert "| L2 | 1.62 |" in text and "| Max-norm | 1.35 |" in text
    assert "Kendall's tau" in text and "Max-norm has lower error than L2" in text
    assert (out / "figures" / "test_error.png").is_file() and (out / "report.html").is_file()
    assert "## Budget check: the schedule stretched 2x" in text

    trained.clear()  # a second run trains nothing and writes the same report
    reproduce.run("tiny", trainer, say=lambda _: None, gpu=False)
    assert trained == [] and (out / "README.md").read_text() == text


COMMITTED = [name for name in reproduce.REPRODUCTIONS
             if (REPO / registry.store_path(name)).is_file()]


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_reports_regenerate_with_published_numbers(tmp_path, monkeypatch, name):
    """Each committed store gives a report with the paper's numbers, budgets and claims."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO / "ablations", tmp_path / "ablations")
    target = tmp_path / registry.store_path(name)
    target.parent.mkdir(parents=True)
    shutil.copy(REPO / registry.store_path(name), target)
    text = (reproduce.write(name) / "README.md").read_text()
    repro = reproduce.REPRODUCTIONS[name]
    assert "## Budget: the paper's and this reproduction's" in text and "## Claims" in text
    for row in repro.published.rows:
        published = getattr(row, "error", None) or row.test
        assert f"| {published:.2f} |" in text
    assert f"regbench reproduce {name}" in text
