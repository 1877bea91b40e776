"""regbench.train: scripted early stopping, the control between arms, determinism on MNIST.

Early stopping and divergence are logic, so they run on a scripted stand-in for a model (no
training). Everything else trains tiny cells on real MNIST (see conftest.py).
"""

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest

from regbench import train
from regbench.data import DATASETS
from regbench.recipe import L1, Arm, Dropout, EarlyStopping, Model, Training
from regbench.study import Cell, parse_study

# Measurements of when and how fast, not of what was learned (load: the machine at write time).
TIMING = {"fit_s", "first_epoch_s", "epoch_s", "examples_per_s", "finished_at",
          "load_average_1min"}


MLP = Model(hidden=(16,))


def cell(*techniques, seed=0, model=MLP, **training):
    settings = dict(epochs=2, batch_size=64, train_subset=400) | training
    label = "+".join(t.kind for t in techniques) or "none"
    return Cell("test", "mnist", model, Training(**settings), Arm(label, techniques), seed)


# --- scripted: early stopping and divergence without training --------------------------------

class ScriptedNet:
    """Stands in for a keras.Model: each `fit` call is one epoch with the next scripted logs.

    Its "weights" are the number of epochs trained, so restoring the best weights is visible.
    """

    def __init__(self, val_xent, loss=None):
        self.val_xent = list(val_xent)
        self.loss = list(loss) if loss else [1.0] * len(self.val_xent)
        self.epochs = 0
        self.weights = [np.array(0.0)]
        self.stop_training = False

    def fit(self, batches, **kwargs):
        assert kwargs["epochs"] == 1 and kwargs["shuffle"] is False
        self.stop_training = False  # as keras.Model.fit does
        i, self.epochs = self.epochs, self.epochs + 1
        self.weights = [np.array(float(self.epochs))]
        return SimpleNamespace(history={"loss": [self.loss[i]], "val_xent": [self.val_xent[i]]})

    def get_weights(self):
        return list(self.weights)

    def set_weights(self, weights):
        self.weights = list(weights)


VAL_XENT = [1.0, 0.8, 0.9, 0.85, 0.95, 0.7]  # best at epoch 2, then 3 worse ones, then best


def scripted_fit(net, *techniques, epochs=6, on_epoch=None):
    sets = {"fit": (np.zeros((4, 2), np.float32), np.zeros(4, np.int32)),
            "val": (np.zeros((2, 2), np.float32), np.zeros(2, np.int32))}
    return train.fit_epochs(net, cell(*techniques, epochs=epochs, batch_size=2), sets, on_epoch)


@pytest.mark.parametrize("patience, min_delta, epochs_run, stopped_epoch", [
    (0, 0.0, 3, 3),     # stops at the first epoch without improvement
    (1, 0.0, 3, 3),     # Keras counts the non-improving epoch itself: same as patience 0
    (2, 0.0, 4, 4),
    (3, 0.0, 5, 5),
    (4, 0.0, 6, None),  # epoch 6 improves in time: never stops
    (1, 0.25, 2, 2),    # 0.8 is not 0.25 better than 1.0
])
def test_early_stopping_on_scripted_losses(patience, min_delta, epochs_run, stopped_epoch):
    net = ScriptedNet(VAL_XENT)
    fitted = scripted_fit(net, EarlyStopping(patience=patience, min_delta=min_delta))
    assert fitted["history"]["val_xent"] == VAL_XENT[:epochs_run]
    assert net.epochs == epochs_run and len(fitted["epoch_s"]) == epochs_run
    assert fitted["stopped_epoch"] == stopped_epoch
    assert fitted["diverged_epoch"] is None


def test_without_early_stopping_every_epoch_runs():
    net = ScriptedNet(VAL_XENT)
    fitted = scripted_fit(net)
    assert net.epochs == 6 and fitted["stopped_epoch"] is None
    assert net.weights == [6.0]


@pytest.mark.parametrize("restore, weights", [(True, 2.0), (False, 4.0)])
def test_restore_best_weights(restore, weights):
    net = ScriptedNet(VAL_XENT)
    scripted_fit(net, EarlyStopping(patience=2, restore_best_weights=restore))
    assert net.epochs == 4 and net.weights == [weights]  # best: after epoch 2


def test_a_non_finite_loss_stops_training_as_diverged():
    net = ScriptedNet([1.0, math.nan, 0.5, 0.4], loss=[0.5, math.nan, 0.4, 0.3])
    fitted = scripted_fit(net, EarlyStopping(patience=5), epochs=4)
    assert net.epochs == 2 and fitted["diverged_epoch"] == 2
    assert fitted["stopped_epoch"] is None and len(fitted["history"]["loss"]) == 2


def test_on_epoch_reports_each_epoch():
    seen = []
    scripted_fit(ScriptedNet(VAL_XENT), epochs=3,
                 on_epoch=lambda epoch, epochs, logs: seen.append((epoch, epochs, logs)))
    assert seen == [(e + 1, 3, {"loss": 1.0, "val_xent": VAL_XENT[e]}) for e in range(3)]


# --- data order ------------------------------------------------------------------------------

def test_epoch_order_depends_on_seed_and_epoch_only():
    order = train.epoch_order(100, seed=3, epoch=0)
    assert sorted(order) == list(range(100))
    np.testing.assert_array_equal(order, train.epoch_order(100, seed=3, epoch=0))
    assert not np.array_equal(order, train.epoch_order(100, seed=3, epoch=1))
    assert not np.array_equal(order, train.epoch_order(100, seed=4, epoch=0))


# --- on MNIST --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist(data_dir, tmp_path_factory):
    """The data folder, with the user's cache and the internet out of reach."""
    train.configure(deterministic=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REGBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        patch.setenv("REGBENCH_DOWNLOAD_URL", "http://127.0.0.1:9/")  # refused at once
        yield str(data_dir)


def test_prepare_splits_without_touching_the_test_set(mnist):
    sets = train.prepare(cell(train_subset=400), mnist)
    assert [len(sets[name][1]) for name in ("fit", "val", "test")] == [400, 6000, 10000]
    for name in ("fit", "val", "test"):
        x, y = sets[name]
        assert x.dtype == np.float32 and x.shape[1:] == (28, 28, 1)
        assert 0.0 <= x.min() and x.max() <= 1.0 and y.dtype == np.int32
    assert set(np.unique(sets["fit"][1])) == set(range(10))


def test_arms_at_one_seed_get_the_same_data(mnist):
    none, dropout = train.prepare(cell(), mnist), train.prepare(cell(Dropout()), mnist)
    other_seed = train.prepare(cell(seed=1), mnist)
    for name in ("fit", "val"):
        for a, b, c in zip(none[name], dropout[name], other_seed[name]):
            np.testing.assert_array_equal(a, b)
            assert not np.array_equal(a, c)


def test_the_control_same_order_and_same_start_for_none_and_dropout(mnist, monkeypatch):
    from regbench.models import kernels

    orders, starts = [], []
    real_order, real_fit = train.epoch_order, train.fit_epochs

    def recording_order(n, seed, epoch):
        order = real_order(n, seed, epoch)
        orders[-1].append((n, seed, epoch, order.tolist()))
        return order

    def recording_fit(net, *args, **kwargs):
        starts.append(kernels(net.layers))
        return real_fit(net, *args, **kwargs)

    monkeypatch.setattr(train, "epoch_order", recording_order)
    monkeypatch.setattr(train, "fit_epochs", recording_fit)
    for arm in [(), (Dropout(),)]:
        orders.append([])
        train.run_cell(cell(*arm, train_subset=300), mnist)
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
    return [train.run_cell(DETERMINISTIC, mnist) for _ in range(2)]


def test_same_cell_twice_gives_identical_results(twice):
    first, second = ({k: v for k, v in row.items() if k not in TIMING} for row in twice)
    for row in (first, second):
        row["history"] = {k: v for k, v in row["history"].items() if k != "epoch_s"}
    assert first == second


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


def test_early_stopping_bookkeeping_is_consistent(twice):
    row = twice[0]
    val_xent = row["history"]["val_xent"]
    assert all(len(v) == row["epochs_run"] for v in row["history"].values())
    assert row["best_epoch"] == int(np.argmin(val_xent)) + 1
    if row["stopped_epoch"] is None:
        assert row["epochs_run"] == 3 and list(val_xent) == sorted(val_xent, reverse=True)
    else:  # patience 0: stopped at the first epoch that did not improve
        assert row["stopped_epoch"] == row["epochs_run"] == row["best_epoch"] + 1


def test_a_cnn_cell_trains(mnist):
    row = train.run_cell(cell(Dropout(), model=Model(name="cnn", filters=(2,), hidden=(8,)),
                              epochs=1, train_subset=200), mnist)
    assert row["status"] == "ok" and row["model"] == "cnn" and row["problem"] == "mnist_cnn"
    assert list(row["layers"]) == ["conv_0", "hidden_0", "output"]
    assert "dead_inputs_lt_1e-3" not in row  # only for an MLP's input pixels


def test_a_cell_diverging_in_its_first_epoch_is_stored_as_diverged(mnist):
    diverging = dataclasses.replace(cell(epochs=2, train_subset=200), training=Training(
        optimizer="sgd", learning_rate=1e30, epochs=2, train_subset=200))
    row = train.run_cell(diverging, mnist)
    assert row["status"] == "diverged" and row["diverged_epoch"] == 1
    assert row["epochs_run"] == 1 and row["best_epoch"] is None


def test_final_validation_scores_are_an_evaluation_of_the_final_weights(data_dir):
    """The row's validation scores reuse the last epoch's validation pass: equal to
    evaluating the trained network again, for arms with batch norm, dropout, augmentation."""
    import keras

    from regbench import data
    from regbench.models import build_model

    train.configure(deterministic=True)
    study = {"datasets": ["mnist"], "seeds": [3], "model": {"hidden": [16]},
             "training": {"batch_size": 50, "epochs": 2, "train_subset": 300},
             "design": {"kind": "explicit", "arms": ["batchnorm", "dropout", "augmentation"]}}
    for cell in parse_study(study, "val").cells():
        info, sets = data.DATASETS["mnist"], train.prepare(cell, str(data_dir))
        keras.backend.clear_session()
        net = build_model(cell.model, cell.arm, info.image_shape, info.classes, cell.seed)
        train.compile_model(net, cell.training)
        fitted = train.fit_epochs(net, cell, sets)
        again = net.evaluate(*sets["val"], batch_size=train.EVAL_BATCH, verbose=0,
                             return_dict=True)
        assert train.last_val_scores(cell, fitted) == {"acc": float(again["acc"]),
                                                       "xent": float(again["xent"])}


def test_no_reuse_where_early_stopping_may_restore_other_weights():
    study = {"datasets": ["mnist"], "techniques": {"early_stopping": {
        "restore_best_weights": True}}, "design": {"kind": "explicit",
                                                   "arms": ["early_stopping"]}}
    cell = parse_study(study, "val").cells()[0]
    fitted = {"history": {"val_acc": [0.5], "val_xent": [1.0]}, "diverged_epoch": None}
    assert train.last_val_scores(cell, fitted) is None
