"""The one epoch loop, for every strategy: schedules, early stopping, divergence, curves,
history and timing, per member of a program.

One `fit` call per epoch, each on that epoch's own batches, keeps epochs aligned with passes
over the data even when `steps_per_execution` does not divide the number of batches. Keras's
own EarlyStopping runs once per member on that member's validation cross-entropy, driven by
hand across the calls, so its semantics (patience, stopped epoch, restoring the best weights)
are exactly Keras's. A member that stops or diverges keeps being computed (its part of the
network is compiled in) but is frozen in a snapshot of its weights taken then, and restored at
the end: alone, training just ends there.

What is logged per epoch: the data cross-entropy (`xent`, the metric early stopping watches)
and accuracy on the fit and validation splits, and `loss` = `xent` + the member's kernel
penalty at the end of the epoch.
"""

from __future__ import annotations

import math
import time

from regbench.engine.program import Program
from regbench.study import Cell

CURVE_CHUNK = 4096  # examples per prediction call of a curve point


def train(program: Program, cells: list[Cell], on_epoch=None) -> list[dict]:
    """Train `program` epoch by epoch; per member, its fit record (history, epoch times,
    diverged and stopped epoch, curve)."""
    t = cells[0].training  # a pack's cells share their training settings
    members = program.members
    stoppers = [early_stopper(cell, member) for cell, member in zip(cells, members)]
    records = [{"history": {}, "epoch_s": [], "diverged_epoch": None, "stopped_epoch": None}
               for _ in cells]
    snapshots = [None] * len(cells)
    curves = _curve_callback()(program, t.curve_every) if t.curve_every else None
    val = program.streams.batches("val")
    for epoch in range(t.epochs):
        active = [k for k, snapshot in enumerate(snapshots) if snapshot is None]
        if not active:
            break
        set_schedules(program, cells, epoch)
        began = time.perf_counter()
        logs = program.net.fit(program.streams.epoch(epoch, t.batch_size), validation_data=val,
                               epochs=1, shuffle=False, verbose=0,
                               callbacks=[curves] if curves else None).history
        seconds = time.perf_counter() - began
        logs = {name: float(values[-1]) for name, values in logs.items()}
        for k in active:
            mine = member_logs(logs, program.prefixes[k], members[k].penalty())
            record = records[k]
            for name, value in mine.items():
                record["history"].setdefault(name, []).append(value)
            record["epoch_s"].append(seconds)
            if not math.isfinite(mine["loss"]):
                record["diverged_epoch"] = epoch + 1
            elif stoppers[k]:
                stoppers[k].on_epoch_end(epoch, mine)
                if members[k].stop_training:
                    record["stopped_epoch"] = stoppers[k].stopped_epoch + 1
            if record["diverged_epoch"] or record["stopped_epoch"]:
                snapshots[k] = _finish(members[k], stoppers[k], curves, k)
        if on_epoch:
            on_epoch(epoch + 1, t.epochs, {"val_acc": sum(
                logs[f"val_{program.prefixes[k]}acc"] for k in active) / len(active)})
    for k, member in enumerate(members):
        if snapshots[k] is None:
            _finish(member, stoppers[k], curves, k)
        else:
            member.set_weights(snapshots[k])
    for k, record in enumerate(records):
        record["curve"] = curves.points[k] if curves else None
    return records


def _finish(member, stopper, curves, k: int) -> list:
    """A member's training ends: the best weights back if asked for, its last curve point;
    returns its weights."""
    if stopper:
        stopper.on_train_end()  # restores the best weights if asked to
    if curves:
        curves.record([k])
        curves.done.add(k)
    return member.get_weights()


def member_logs(logs: dict, prefix: str, penalty: float) -> dict:
    """A member's epoch logs under the names a cell has alone."""
    out = {}
    for split in ("", "val_"):
        out[f"{split}acc"] = logs[f"{split}{prefix}acc"]
        out[f"{split}xent"] = logs[f"{split}{prefix}xent"]
        out[f"{split}loss"] = out[f"{split}xent"] + penalty
    return out


def set_schedules(program: Program, cells: list[Cell], epoch: int) -> None:
    """Settings that change between epochs: learning rate, momentum, the late L1 switch."""
    t = cells[0].training
    if t.lr_decay != 1.0:
        program.net.optimizer.learning_rate = t.learning_rate_at(epoch)
    if t.momentum_epochs:
        program.net.optimizer.momentum_value.assign(t.momentum_at(epoch))
    for cell, member in zip(cells, program.members):
        if (late := cell.arm.get("l1_late")) is not None:
            member.switch_late_l1(1.0 if epoch >= late.first_epoch(t.epochs) else 0.0)


def early_stopper(cell: Cell, member):
    """The cell's Keras EarlyStopping on `val_xent`, started on `member`; None without one."""
    import keras

    settings = cell.arm.get("early_stopping")
    if settings is None:
        return None
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_xent", mode="min", patience=settings.patience,
        min_delta=settings.min_delta, restore_best_weights=settings.restore_best_weights)
    stopper.set_model(member)
    stopper.on_train_begin()
    return stopper


def _curve_callback():
    import keras

    class AccuracyCurves(keras.callbacks.Callback):
        """Validation and test accuracy (inference mode) of each member every `every`
        optimizer steps.

        Keras calls batch callbacks once per `STEPS_PER_EXECUTION` steps, so a point is taken
        at the first call at or past each multiple of `every`; its exact step is recorded.
        The test set is only measured here, never used for any choice.
        """

        def __init__(self, program: Program, every: int):
            super().__init__()
            self.program, self.every = program, every
            self.points = [{"step": [], "val_acc": [], "test_acc": []}
                           for _ in program.members]
            self.done: set[int] = set()
            self.taken = 0

        def on_train_batch_end(self, batch, logs=None):
            from regbench.keras_private import sync_state

            sync_state(self.program.net)  # the steps and weights so far (JAX)
            if self.program.steps() >= (self.taken + 1) * self.every:
                self.taken += 1
                self.record([k for k in range(len(self.points)) if k not in self.done])

        def record(self, members: list[int]) -> None:
            step = self.program.steps()
            members = [k for k in members
                       if not self.points[k]["step"] or self.points[k]["step"][-1] != step]
            if not members:
                return
            scores = {split: accuracies(self.program, split) for split in ("val", "test")}
            for k in members:
                self.points[k]["step"].append(step)
                for split in ("val", "test"):
                    self.points[k][f"{split}_acc"].append(scores[split][k])

    return AccuracyCurves


def accuracies(program: Program, split: str) -> list[float]:
    """Each member's accuracy on a split at the current weights (inference mode)."""
    import numpy as np

    correct = np.zeros(len(program.members), dtype=np.int64)
    total = 0
    for inputs, labels in program.streams.chunks(split, CURVE_CHUNK):
        for k, probabilities in enumerate(program.outputs(program.net.predict_on_batch(inputs))):
            predicted = np.argmax(probabilities, axis=1)
            correct[k] += int(np.sum(predicted == labels[:, program.member_streams[k]]))
        total += len(labels)
    return list(correct / total)
