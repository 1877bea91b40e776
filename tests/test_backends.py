"""Keras backends: which one trains, a clear error when it is missing, and determinism of every
strategy on the backend in use (the `backends` nox session runs this file on JAX without
TensorFlow; the main suite on TensorFlow)."""

from __future__ import annotations

import pytest

from regbench import engine, provenance
from regbench.errors import RegbenchError
from regbench.recipe import BRANCH, STACK
from regbench.study import parse_study

VOLATILE = {"finished_at", "fit_s", "first_epoch_s", "epoch_s", "examples_per_s", "git_commit",
            "cost_step_s", "cost_epoch_s",
            "host", "load_average_1min"}
STUDY = {"datasets": ["mnist"], "seeds": [0, 1], "model": {"hidden": [16]},
         "training": {"batch_size": 50, "epochs": 2, "train_subset": 400,
                      "validation_fraction": 0.05},
         "design": {"kind": "explicit", "arms": ["none", "l1", "dropout", "augmentation"]}}


def test_the_configured_backend_is_read_as_keras_reads_it(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert provenance.configured_backend() == "tensorflow"  # no keras.json
    (tmp_path / "keras.json").write_text('{"backend": "jax"}')
    assert provenance.configured_backend() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert provenance.configured_backend() == "torch"


def test_a_missing_backend_is_one_line_naming_those_installed(monkeypatch):
    import importlib.util

    present = {"tensorflow": False, "jax": True, "torch": True}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: object() if present.get(name) else None)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    with pytest.raises(RegbenchError) as raised:
        provenance.check_backend()
    assert str(raised.value) == ("Keras backend `tensorflow` is not installed: set "
                                 "KERAS_BACKEND to jax or torch")
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    provenance.check_backend()  # installed: nothing said


def test_a_cell_of_another_backend_is_refused_before_training():
    import keras

    other = "jax" if keras.backend.backend() != "jax" else "torch"
    cell = parse_study(STUDY, "b").cells(backend=other)[0]
    with pytest.raises(RegbenchError, match=f"a cell of the `{other}` backend cannot train on "
                                            f"Keras's `{keras.backend.backend()}` backend"):
        engine.fit([cell])


def _comparable(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k not in VOLATILE}
    out["history"] = {k: v for k, v in out["history"].items() if k != "epoch_s"}
    return out


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["alone", BRANCH, STACK])
def test_every_strategy_trains_a_cell_twice_to_the_same_row(strategy, data_dir):
    engine.configure(deterministic=True)
    cells = parse_study(STUDY, "twice").cells()
    if strategy == "alone":
        cells = [cells[0], cells[2], cells[3]]  # none, dropout, augmentation at seed 0
        first, second = ([engine.fit([c], str(data_dir))[0] for c in cells] for _ in range(2))
    elif strategy == BRANCH:
        cells = cells[:4]
        first, second = (engine.fit_program(engine.STRATEGIES[BRANCH], cells, None,
                                            str(data_dir), True) for _ in range(2))
    else:
        first, second = (engine.fit(cells, str(data_dir)) for _ in range(2))
        assert {row["strategy"] for row in first} == {STACK}
    assert [_comparable(r) for r in first] == [_comparable(r) for r in second]


def _history(study: dict, arms: list[str], data_dir) -> dict:
    cells = parse_study({**STUDY, **study, "seeds": [0],
                         "design": {"kind": "explicit", "arms": arms}}, "acts").cells()
    return {c.arm.label: engine.fit([c], str(data_dir))[0]["history"]["xent"] for c in cells}


@pytest.mark.slow
def test_settings_that_change_between_epochs_act_from_their_epoch(data_dir):
    """The late L1 switch, a decaying learning rate and a momentum ramp take effect in the
    epoch they are set for, on this backend: epoch 1 trains as without them, epoch 2 not.
    (On JAX a value the compiled step does not hold as state would stay at its first.)"""
    engine.configure(deterministic=True)
    late = _history({"techniques": {"l1_late": {"factor": 0.01, "start": 0.5}}},
                    ["none", "l1_late"], data_dir)
    sgd = {"optimizer": "sgd", "learning_rate": 0.05}
    decay = _history({"training": {**STUDY["training"], **sgd, "lr_decay": 0.1}}, ["none"],
                     data_dir)["none"]
    ramp = _history({"training": {**STUDY["training"], **sgd, "momentum": 0.9,
                                  "momentum_epochs": 1}}, ["none"], data_dir)["none"]
    constant = _history({"training": {**STUDY["training"], **sgd}}, ["none"], data_dir)["none"]
    assert late["l1_late"][0] == late["none"][0] and late["l1_late"][1] != late["none"][1]
    assert decay[0] == constant[0] and decay[1] != constant[1]
    assert ramp[0] == constant[0] and ramp[1] != constant[1]


@pytest.mark.parametrize("name", ["bogus", "numpy", "TensorFlow"])
def test_an_unknown_backend_is_one_line_not_keras_traceback(monkeypatch, name):
    monkeypatch.setenv("KERAS_BACKEND", name)
    with pytest.raises(RegbenchError, match=rf"^KERAS_BACKEND: unknown Keras backend '{name}'; "
                                            "regbench trains on tensorflow, jax, torch$"):
        provenance.check_backend()
