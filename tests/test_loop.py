"""The epoch loop (`engine.loop.train`) on scripted programs: early stopping, restoring,
divergence, progress and a pack of members that stop at different epochs. Logic, not
learning: no network is trained."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from regbench.engine import loop
from regbench.engine.program import Program
from regbench.recipe import Arm, EarlyStopping, Model, Training
from regbench.study import Cell

VAL_XENT = [1.0, 0.8, 0.9, 0.85, 0.95, 0.7]  # best at epoch 2, then 3 worse ones, then best


class ScriptedNet:
    """Stands in for a keras.Model of K members: each `fit` call is one epoch that logs the
    next scripted validation cross-entropy (and training cross-entropy) of every member. Every
    member's "weights" are the number of epochs the network has trained."""

    def __init__(self, val_xent: list[list[float]], xent: list[list[float]] | None = None):
        self.val_xent = val_xent
        self.xent = xent or [[1.0] * len(v) for v in val_xent]
        self.epochs = 0
        self.members = []
        self.optimizer = SimpleNamespace(iterations=0)

    def fit(self, batches, validation_data, epochs, shuffle, verbose, callbacks):
        assert epochs == 1 and shuffle is False and verbose == 0
        i, self.epochs = self.epochs, self.epochs + 1
        for member in self.members:
            member.stop_training = False if member.training else member.stop_training
            member.weights = [np.array(float(self.epochs))]
        history = {}
        for k in range(len(self.val_xent)):
            history |= {f"m{k}_acc": [0.5], f"m{k}_xent": [self.xent[k][i]],
                        f"val_m{k}_acc": [0.5 + k], f"val_m{k}_xent": [self.val_xent[k][i]]}
        return SimpleNamespace(history=history)


class ScriptedMember:
    def __init__(self):
        self.weights, self.stop_training, self.training = [np.array(0.0)], False, False

    def get_weights(self):
        return list(self.weights)

    def set_weights(self, weights):
        self.weights = list(weights)

    def penalty(self):
        return 0.0


def cell(*techniques, epochs=6) -> Cell:
    label = "+".join(t.kind for t in techniques) or "none"
    return Cell("t", "mnist", Model(), Training(epochs=epochs), Arm(label, techniques), 0)


def scripted(cells, val_xent, xent=None):
    net = ScriptedNet(val_xent, xent)
    net.members = [ScriptedMember() for _ in cells]
    stub = SimpleNamespace(batches=lambda split: None, epoch=lambda epoch, batch: None)
    return Program("scripted", net, net.members, stub, list(range(len(cells))),
                   [f"m{k}_" for k in range(len(cells))], outputs=list)


def train(*techniques, epochs=6, val_xent=VAL_XENT, xent=None, on_epoch=None):
    program = scripted([cell(*techniques, epochs=epochs)], [val_xent], xent and [xent])
    return loop.train(program, [cell(*techniques, epochs=epochs)], on_epoch)[0], program


@pytest.mark.parametrize("patience, min_delta, epochs_run, stopped_epoch", [
    (0, 0.0, 3, 3),     # stops at the first epoch without improvement
    (1, 0.0, 3, 3),     # Keras counts the non-improving epoch itself: same as patience 0
    (2, 0.0, 4, 4),
    (3, 0.0, 5, 5),
    (4, 0.0, 6, None),  # epoch 6 improves in time: never stops
    (1, 0.25, 2, 2),    # 0.8 is not 0.25 better than 1.0
])
def test_early_stopping_on_scripted_losses(patience, min_delta, epochs_run, stopped_epoch):
    record, program = train(EarlyStopping(patience=patience, min_delta=min_delta))
    assert record["history"]["val_xent"] == VAL_XENT[:epochs_run]
    assert program.net.epochs == epochs_run and len(record["epoch_s"]) == epochs_run
    assert record["stopped_epoch"] == stopped_epoch
    assert record["diverged_epoch"] is None


def test_without_early_stopping_every_epoch_runs():
    record, program = train()
    assert program.net.epochs == 6 and record["stopped_epoch"] is None
    assert program.members[0].weights == [6.0]


@pytest.mark.parametrize("restore, weights", [(True, 2.0), (False, 4.0)])
def test_restore_best_weights(restore, weights):
    _, program = train(EarlyStopping(patience=2, restore_best_weights=restore))
    assert program.net.epochs == 4 and program.members[0].weights == [weights]  # best: epoch 2


def test_a_non_finite_loss_ends_training_as_diverged():
    record, program = train(EarlyStopping(patience=5), epochs=4, val_xent=[1.0, 0.9, 0.5, 0.4],
                            xent=[0.5, math.nan, 0.4, 0.3])
    assert program.net.epochs == 2 and record["diverged_epoch"] == 2
    assert record["stopped_epoch"] is None and len(record["history"]["loss"]) == 2


def test_logged_loss_is_the_cross_entropy_plus_the_penalty():
    record, _ = train(epochs=2)
    assert record["history"]["loss"] == [1.0, 1.0] and record["history"]["val_xent"] == [1.0, 0.8]


def test_on_epoch_reports_each_epoch_with_the_members_mean_validation_accuracy():
    seen = []
    cells = [cell(epochs=3), cell(epochs=3)]
    loop.train(scripted(cells, [VAL_XENT, VAL_XENT]), cells,
               lambda epoch, epochs, logs: seen.append((epoch, epochs, logs)))
    assert seen == [(e, 3, {"val_acc": 1.0}) for e in (1, 2, 3)]  # mean of 0.5 and 1.5


def test_a_pack_member_ends_as_it_would_alone():
    """Members that stop at different epochs keep their weights from the epoch they stopped
    (restored best ones if asked), though the network trains on; each record is its record
    alone."""
    techniques = [(EarlyStopping(patience=0),), (EarlyStopping(patience=2,
                                                               restore_best_weights=True),), ()]
    cells = [cell(*t) for t in techniques]
    program = scripted(cells, [VAL_XENT] * 3)
    records = loop.train(program, cells)
    assert program.net.epochs == 6  # the third member trains to the end
    assert [m.weights for m in program.members] == [[3.0], [2.0], [6.0]]
    for t, record in zip(techniques, records):
        alone, _ = train(*t)
        for name in ("xent", "val_xent", "loss", "val_loss", "acc"):
            assert record["history"][name] == alone["history"][name]
        assert record["stopped_epoch"] == alone["stopped_epoch"]
