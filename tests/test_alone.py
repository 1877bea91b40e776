"""Cells trained alone on real MNIST: the control between arms, determinism, the row.

The epoch loop's logic (early stopping, divergence) is tested without training in
test_loop.py; every other strategy against this one in test_engine.py.
"""

import dataclasses

import numpy as np
import pytest

from regbench import engine
from regbench.data import DATASETS
from regbench.engine import data as engine_data
from regbench.engine import loop
from regbench.engine.evaluate import last_val_scores
from regbench.recipe import L1, Arm, Dropout, EarlyStopping, Model, Training
from regbench.study import Cell, parse_study

# Measurements of when and how fast, not of what was learned (load: the machine at write time).
TIMING = {"fit_s", "first_epoch_s", "epoch_s", "examples_per_s", "finished_at",
          "load_average_1min", "cost_step_s", "cost_epoch_s"}


MLP = Model(hidden=(16,))


def cell(*techniques, seed=0, model=MLP, **training):
    settings = dict(epochs=2, batch_size=64, train_subset=400) | training
    label = "+".join(t.kind for t in techniques) or "none"
    return Cell("test", "mnist", model, Training(**settings), Arm(label, techniques), seed)


# --- data order ------------------------------------------------------------------------------

def test_epoch_order_depends_on_seed_and_epoch_only():
    order = engine_data.epoch_order(100, seed=3, epoch=0)
    assert sorted(order) == list(range(100))
    np.testing.assert_array_equal(order, engine_data.epoch_order(100, seed=3, epoch=0))
    assert not np.array_equal(order, engine_data.epoch_order(100, seed=3, epoch=1))
    assert not np.array_equal(order, engine_data.epoch_order(100, seed=4, epoch=0))


# --- on MNIST --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist(data_dir, tmp_path_factory):
    """The data folder, with the user's cache and the internet out of reach."""
    engine.configure(deterministic=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REGBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        patch.setenv("REGBENCH_DOWNLOAD_URL", "http://127.0.0.1:9/")  # refused at once
        yield str(data_dir)


def streams(one: Cell, mnist: str) -> engine_data.Streams:
    return engine_data.Streams.load([one], "alone", mnist)


def test_splits_are_carved_from_train_without_touching_the_test_set(mnist):
    data = streams(cell(train_subset=400), mnist)
    assert [len(data.index(name)) for name in ("fit", "val", "test")] == [400, 6000, 10000]
    assert not set(data.fit[0]) & set(data.val[0])
    for name in ("fit", "val", "test"):
        (x, y), = data.chunks(name, 20000)
        assert x.dtype == np.float32 and x.shape[1:] == (28, 28, 1)
        assert 0.0 <= x.min() and x.max() <= 1.0 and y.dtype == np.int32
    assert set(np.unique(data.y[data.fit[0]])) == set(range(10))


def test_arms_at_one_seed_get_the_same_data(mnist):
    none, dropout = streams(cell(), mnist), streams(cell(Dropout()), mnist)
    other_seed = streams(cell(seed=1), mnist)
    for split in ("fit", "val"):
        np.testing.assert_array_equal(none.index(split), dropout.index(split))
        assert not np.array_equal(none.index(split), other_seed.index(split))


@pytest.mark.slow
def test_the_control_same_order_and_same_start_for_none_and_dropout(mnist, monkeypatch):
    orders, starts = [], []
    real_order, real_train = engine_data.epoch_order, loop.train

    def recording_order(n, seed, epoch):
        order = real_order(n, seed, epoch)
        orders[-1].append((n, seed, epoch, order.tolist()))
        return order

    def recording_train(program, *args, **kwargs):
        starts.append(program.members[0].kernels())
        return real_train(program, *args, **kwargs)

    monkeypatch.setattr(engine_data, "epoch_order", recording_order)
    monkeypatch.setattr(loop, "train", recording_train)
    for arm in [(), (Dropout(),)]:
        orders.append([])
        engine.fit([cell(*arm, train_subset=300)], mnist)
    assert [o[:3] for o in orders[0]] == [(300, 0, 0), (300, 0, 1)]
    assert orders[0] == orders[1]
    assert starts[0].keys() == starts[1].keys() == {"hidden_0", "output"}
    for name in starts[0]:
        np.testing.assert_array_equal(starts[0][name], starts[1][name])


# l1 for a penalty and sparsity, dropout for randomness, early stopping for its bookkeeping.
DETERMINISTIC = cell(L1(factor=0.001), Dropout(rate=0.3), EarlyStopping(patience=0), epochs=3)


@pytest.fixture(scope="module")
def twice(mnist):
    """The same cell trained twice in one process."""
    return [engine.fit([DETERMINISTIC], mnist)[0] for _ in range(2)]


@pytest.mark.slow
def test_same_cell_twice_gives_identical_results(twice):
    first, second = ({k: v for k, v in row.items() if k not in TIMING} for row in twice)
    for row in (first, second):
        row["history"] = {k: v for k, v in row["history"].items() if k != "epoch_s"}
    assert first == second


@pytest.mark.slow
def test_row_is_consistent(twice):
    row = twice[0]
    assert row["key"] == DETERMINISTIC.key and row["status"] == "ok"
    assert (row["n_fit"], row["n_val"], row["n_test"]) == (400, 6000, 10000)
    assert row["gap_acc"] == row["train_acc"] - row["test_acc"]
    assert row["gap_xent"] == row["test_xent"] - row["train_xent"]
    assert row["penalty"] > 0 and row["l1_norm"] > 0 and row["l2_norm"] > 0
    assert row["penalty"] == pytest.approx(0.001 * row["l1_norm"], rel=1e-4)
    assert row["techniques"] == ["dropout", "early_stopping", "l1"]
    assert row["l1.factor"] == 0.001 and row["dropout.rate"] == 0.3
    assert row["early_stopping.patience"] == 0
    assert row["model_hidden"] == [16] and row["epochs"] == 3 and row["train_subset"] == 400
    assert row["layers"]["hidden_0"]["shape"] == [784, 16]
    assert set(row["layers"]["output"]) >= {"shape", "zero", "lt_1e-3", "l1", "l2"}
    assert row["dataset_sha256"] == DATASETS["mnist"].sha256 and row["deterministic"] is True


@pytest.mark.slow
def test_early_stopping_bookkeeping_is_consistent(twice):
    row = twice[0]
    val_xent = row["history"]["val_xent"]
    assert all(len(v) == row["epochs_run"] for v in row["history"].values())
    assert row["best_epoch"] == int(np.argmin(val_xent)) + 1
    if row["stopped_epoch"] is None:
        assert row["epochs_run"] == 3 and list(val_xent) == sorted(val_xent, reverse=True)
    else:  # patience 0: stopped at the first epoch that did not improve
        assert row["stopped_epoch"] == row["epochs_run"] == row["best_epoch"] + 1


@pytest.mark.slow
def test_a_cnn_cell_trains(mnist):
    (row,) = engine.fit([cell(Dropout(), model=Model(name="cnn", filters=(2,), hidden=(8,)),
                              epochs=1, train_subset=200)], mnist)
    assert row["status"] == "ok" and row["model"] == "cnn" and row["problem"] == "mnist_cnn"
    assert list(row["layers"]) == ["conv_0", "hidden_0", "output"]
    assert "dead_inputs_lt_1e-3" not in row  # only for an MLP's input pixels


@pytest.mark.slow
def test_a_cell_diverging_in_its_first_epoch_is_stored_as_diverged(mnist):
    diverging = dataclasses.replace(cell(epochs=2, train_subset=200), training=Training(
        optimizer="sgd", learning_rate=1e30, epochs=2, train_subset=200))
    (row,) = engine.fit([diverging], mnist)
    assert row["status"] == "diverged" and row["diverged_epoch"] == 1
    assert row["epochs_run"] == 1 and row["best_epoch"] is None


@pytest.mark.slow
def test_final_validation_scores_are_an_evaluation_of_the_final_weights(data_dir):
    """The row's validation scores reuse the last epoch's validation pass: equal to
    evaluating the trained network again, for arms with batch norm, dropout, augmentation."""
    import keras

    from regbench.engine import alone

    engine.configure(deterministic=True)
    study = {"datasets": ["mnist"], "seeds": [3], "model": {"hidden": [16]},
             "training": {"batch_size": 50, "epochs": 2, "train_subset": 300},
             "design": {"kind": "explicit", "arms": ["batchnorm", "dropout", "augmentation"]}}
    for one in parse_study(study, "val").cells():
        data = engine_data.Streams.load([one], "alone", str(data_dir))
        keras.backend.clear_session()
        program = alone.build([one], None, data)
        (record,) = loop.train(program, [one])
        again = program.net.evaluate(data.batches("val"), verbose=0, return_dict=True)
        assert last_val_scores(one, record) == {"acc": float(again["acc"]),
                                                "xent": float(again["xent"])}


def test_no_reuse_where_early_stopping_may_restore_other_weights():
    study = {"datasets": ["mnist"], "techniques": {"early_stopping": {
        "restore_best_weights": True}}, "design": {"kind": "explicit",
                                                   "arms": ["early_stopping"]}}
    cell = parse_study(study, "val").cells()[0]
    fitted = {"history": {"val_acc": [0.5], "val_xent": [1.0]}, "diverged_epoch": None}
    assert last_val_scores(cell, fitted) is None
