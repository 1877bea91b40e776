"""The one place that fits a model: cell -> result row.

What makes arms at one seed comparable: the same validation split (carved from the training
set), the same training subset, the same per-epoch shuffling order (drawn from (seed, epoch)
alone) and the same initial weights in every shared layer (see `models.layer_seed`).

What is measured: Keras folds the regularization penalty into `loss` and `val_loss`, so the
data cross-entropy is tracked as its own metric (`xent`), early stopping monitors `val_xent`,
and the penalty at the final weights is recorded on its own. Training-set accuracy and
cross-entropy are re-evaluated after training in inference mode (no dropout, no augmentation,
batch-norm moving statistics), not taken from the running averages of the last epoch.
"""

from __future__ import annotations

import datetime
import math
import re
import time

import numpy as np

from regbench import data, metrics, provenance
from regbench.recipe import to_dict
from regbench.study import Cell

EVAL_BATCH = 1024
STEPS_PER_EXECUTION = 64  # fewer Python round trips per epoch; epoch-level callbacks unaffected


def configure(deterministic: bool = True) -> None:
    """Process-wide settings, before any model is built."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # per-cell retracing notices are expected
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def member_indices(cell: Cell, y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the training arrays of the cell's fit and validation examples."""
    t = cell.training
    fit, val = data.split_indices(y_train, t.validation_fraction, cell.seed)
    if t.train_subset:  # a random subset per seed, the same for every arm at that seed
        fit = np.sort(np.random.default_rng([cell.seed, 1]).permutation(fit)[:t.train_subset])
    return fit, val


def scaled(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) * np.float32(1 / 255)


def prepare(cell: Cell, data_dir: str | None = None) -> dict:
    """Float inputs in [0, 1] for the cell's fit / validation / test sets."""
    arrays = data.load(cell.dataset, data_dir=data_dir)  # verified once per process
    fit, val = member_indices(cell, arrays.y_train)
    y = arrays.y_train.astype(np.int32)
    return {
        "fit": (scaled(arrays.x_train[fit]), y[fit]),
        "val": (scaled(arrays.x_train[val]), y[val]),
        "test": (scaled(arrays.x_test), arrays.y_test.astype(np.int32)),
    }


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of one epoch; depends only on (seed, epoch), never on the arm."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def epoch_batches(x, y, batch_size: int, seed: int, epoch: int):
    """One epoch of batches in the fixed order, gathered from tensors held once in memory."""
    import tensorflow as tf

    order = tf.data.Dataset.from_tensor_slices(epoch_order(len(x), seed, epoch))
    return untuned(order.batch(batch_size)
                   .map(lambda idx: (tf.gather(x, idx), tf.gather(y, idx)))
                   .prefetch(4))


def eval_batches(x, y):
    """Evaluation batches in order, as Keras batches arrays (`validation_batch_size`)."""
    import tensorflow as tf

    return untuned(tf.data.Dataset.from_tensor_slices((x, y)).batch(EVAL_BATCH).prefetch(2))


def untuned(dataset):
    """`dataset` without tf.data's autotuning. Its background thread can hold up the deletion
    of an iterator, at the end of every `fit` call, for seconds: up to 10 s per epoch measured
    on 2 cores, against 11 s of training steps. regbench's pipelines set their buffers."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def make_optimizer(training):
    import keras

    if training.optimizer == "sgd" and training.momentum_epochs:
        return _scheduled_momentum_sgd(training)
    if training.optimizer == "sgd":
        return keras.optimizers.SGD(training.learning_rate, momentum=training.momentum)
    if training.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(training.learning_rate)
    return keras.optimizers.Adam(training.learning_rate)


def _scheduled_momentum_sgd(training):
    """Keras SGD with its momentum read from a variable (`momentum_value`), which
    `set_schedules` moves between epochs: Keras bakes a float momentum into the compiled step."""
    import keras
    from keras import ops

    class ScheduledMomentumSGD(keras.optimizers.SGD):
        def __init__(self, learning_rate, momentum):
            super().__init__(learning_rate, momentum=1.0)  # any value > 0 builds velocities
            self.momentum_value = keras.Variable(momentum, trainable=False, name="momentum")

        def update_step(self, gradient, variable, learning_rate):
            velocity = self.momentums[self._get_variable_index(variable)]
            momentum = ops.cast(self.momentum_value, variable.dtype)
            step = ops.multiply(ops.cast(gradient, variable.dtype),
                                ops.cast(learning_rate, variable.dtype))
            self.assign(velocity, ops.subtract(ops.multiply(velocity, momentum), step))
            self.assign_add(variable, velocity)

    return ScheduledMomentumSGD(training.learning_rate, training.momentum_at(0))


def set_schedules(net, cell: Cell, epoch: int) -> None:
    """Settings that change between epochs: learning rate, momentum, the late L1 switch."""
    from regbench.models import set_epoch

    t = cell.training
    if t.lr_decay != 1.0:
        net.optimizer.learning_rate = t.learning_rate_at(epoch)
    if t.momentum_epochs:
        net.optimizer.momentum_value.assign(t.momentum_at(epoch))
    if cell.arm.get("l1_late") is not None:
        set_epoch(net.layers, cell.arm, epoch, t.epochs)


def compile_model(net, training) -> None:
    import keras

    net.compile(
        optimizer=make_optimizer(training),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc"),
                 keras.metrics.SparseCategoricalCrossentropy(name="xent")],
        steps_per_execution=STEPS_PER_EXECUTION,
        jit_compile="auto",
    )


def early_stopper(cell: Cell, model):
    """The cell's Keras EarlyStopping on `val_xent`, started on `model`; None without one.

    `model` needs only `get_weights`, `set_weights` and `stop_training` (a pack member will do).
    """
    import keras

    settings = cell.arm.get("early_stopping")
    if settings is None:
        return None
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_xent", mode="min", patience=settings.patience,
        min_delta=settings.min_delta, restore_best_weights=settings.restore_best_weights)
    stopper.set_model(model)
    stopper.on_train_begin()
    return stopper


def fit_epochs(net, cell: Cell, sets: dict, on_epoch=None) -> dict:
    """Train epoch by epoch: one `fit` call per epoch, each on that epoch's own batches.

    One call per epoch keeps epochs aligned with passes over the data even when
    `steps_per_execution` does not divide the number of batches. Keras's own EarlyStopping is
    driven by hand across the calls, so its semantics (patience, stopped epoch, restoring the
    best weights) are exactly Keras's.
    """
    import tensorflow as tf

    t = cell.training
    x_fit, y_fit = (tf.constant(a) for a in sets["fit"])
    val = eval_batches(*sets["val"])
    stopper = early_stopper(cell, net)
    curve = _accuracy_curve_class()(net, sets, t.curve_every) if t.curve_every else None
    history, epoch_s, diverged_at = {}, [], None
    for epoch in range(t.epochs):
        set_schedules(net, cell, epoch)
        began = time.perf_counter()
        logs = net.fit(epoch_batches(x_fit, y_fit, t.batch_size, cell.seed, epoch),
                       validation_data=val, epochs=1, shuffle=False, verbose=0,
                       callbacks=[curve] if curve else None).history
        epoch_s.append(time.perf_counter() - began)
        logs = {k: float(v[-1]) for k, v in logs.items()}
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        if on_epoch:
            on_epoch(epoch + 1, t.epochs, logs)
        if not math.isfinite(logs["loss"]):
            diverged_at = epoch + 1
            break
        if stopper:
            stopper.on_epoch_end(epoch, logs)
            if net.stop_training:
                break
    if stopper:
        stopper.on_train_end()
    if curve:
        curve.record()  # the final weights (restored best weights, if early stopping did)
    return {
        "curve": curve.points if curve else None,
        "history": history,
        "epoch_s": epoch_s,
        "diverged_epoch": diverged_at,
        "stopped_epoch": stopper.stopped_epoch + 1 if stopper and stopper.stopped_epoch else None,
    }


def _accuracy_curve_class():
    import keras

    class AccuracyCurve(keras.callbacks.Callback):
        """Validation and test accuracy (inference mode) every `every` optimizer steps.

        Keras calls batch callbacks once per `STEPS_PER_EXECUTION` steps, so a point is taken
        at the first call at or past each multiple of `every`; its exact step is recorded.
        The test set is only measured here, never used for any choice.
        """

        def __init__(self, net, sets: dict, every: int):
            super().__init__()
            self.net, self.sets, self.every = net, sets, every
            self.points = {"step": [], "val_acc": [], "test_acc": []}

        def on_train_batch_end(self, batch, logs=None):
            if int(self.net.optimizer.iterations) >= (len(self.points["step"]) + 1) * self.every:
                self.record()

        def record(self) -> None:
            step = int(self.net.optimizer.iterations)
            if self.points["step"] and self.points["step"][-1] == step:
                return
            self.points["step"].append(step)
            for split, name in (("val", "val_acc"), ("test", "test_acc")):
                self.points[name].append(_accuracy(self.net, *self.sets[split]))

    return AccuracyCurve


def _accuracy(net, x, y) -> float:
    correct = 0
    for start in range(0, len(y), 4 * EVAL_BATCH):
        probabilities = net.predict_on_batch(x[start:start + 4 * EVAL_BATCH])
        correct += int(np.sum(np.argmax(probabilities, axis=1) == y[start:start + 4 * EVAL_BATCH]))
    return correct / len(y)


def run_cell(cell: Cell, data_dir: str | None = None, deterministic: bool = True,
             on_epoch=None) -> dict:
    """Train one cell from scratch and return its flat result row."""
    import keras

    from regbench.models import build_model

    info = data.DATASETS[cell.dataset]
    sets = prepare(cell, data_dir)
    keras.backend.clear_session()  # nothing from an earlier cell (names, graphs) carries over
    keras.utils.set_random_seed(cell.seed)
    net = build_model(cell.model, cell.arm, info.image_shape, info.classes, cell.seed,
                      flip_ok=info.flip_ok)
    compile_model(net, cell.training)

    started = time.perf_counter()
    fitted = fit_epochs(net, cell, sets, on_epoch)
    fitted["fit_s"] = time.perf_counter() - started
    return result_row(cell, net, sets, fitted, deterministic)


def evaluate(net, sets: dict, val_scores: dict | None = None) -> dict:
    """Accuracy and cross-entropy on each set, in inference mode; plus kernels and penalty.

    `val_scores` ({"acc", "xent"}): the validation set's scores at these very weights, when
    known (the last epoch's validation pass), so the set is not evaluated again.
    """
    from regbench.models import kernels

    out = {}
    for split, name in (("fit", "train"), ("val", "val"), ("test", "test")):
        scores = val_scores if split == "val" and val_scores else net.evaluate(
            *sets[split], batch_size=EVAL_BATCH, verbose=0, return_dict=True)
        out[f"{name}_acc"], out[f"{name}_xent"] = float(scores["acc"]), float(scores["xent"])
        out[f"n_{split}"] = len(sets[split][1])
    out["kernels"] = kernels(net.layers)
    out["penalty"] = weight_penalty(net)
    return out


def weight_penalty(net) -> float:
    """The kernel penalties at the current weights, as Keras adds them to `loss`. Activity
    penalties (kl_sparsity) are a function of a batch, not of the weights: not included."""
    import keras

    return float(sum(float(keras.ops.convert_to_numpy(v.regularizer(v)))
                     for v in net.trainable_weights if v.regularizer is not None))


def result_row(cell: Cell, net, sets: dict, fitted: dict, deterministic: bool) -> dict:
    """Evaluate a trained network in inference mode and build the cell's flat row."""
    return build_row(cell, evaluate(net, sets, last_val_scores(cell, fitted)), fitted,
                     deterministic)


def last_val_scores(cell: Cell, fitted: dict) -> dict | None:
    """The last epoch's validation scores, if they are those of the final weights: the same
    compiled evaluation over the same batches, so equal to evaluating again. Not when early
    stopping may have restored earlier weights, or training diverged."""
    stopping = cell.arm.get("early_stopping")
    history = fitted["history"]
    if fitted["diverged_epoch"] or not history.get("val_acc") or (
            stopping is not None and stopping.restore_best_weights):
        return None
    return {"acc": history["val_acc"][-1], "xent": history["val_xent"][-1]}


def build_row(cell: Cell, evaluation: dict, fitted: dict, deterministic: bool) -> dict:
    """The flat row of a trained cell from its evaluation (see `evaluate`) and fit record.

    `fitted` is what `fit_epochs` returns plus `fit_s` (and `pack_size` when the cell was
    trained in a pack: then times are the pack's, shared by its members).
    """
    evaluation = dict(evaluation)
    weights = evaluation.pop("kernels")
    fit_s = fitted["fit_s"]
    history = fitted["history"] | {"epoch_s": fitted["epoch_s"]}
    row = _identity(cell, deterministic)
    row.update({
        "status": "diverged" if fitted["diverged_epoch"] else "ok",
        "diverged_epoch": fitted["diverged_epoch"],
    })
    row.update(evaluation)
    row["gap_acc"] = row["train_acc"] - row["test_acc"]
    row["gap_xent"] = row["test_xent"] - row["train_xent"]
    epochs_run = len(history.get("loss", []))
    val_xent = np.asarray(history.get("val_xent", []), dtype=float)
    finite = np.isfinite(val_xent)
    row.update({
        "epochs_run": epochs_run,
        "best_epoch": int(np.argmin(np.where(finite, val_xent, np.inf))) + 1
        if finite.any() else None,
        "stopped_epoch": fitted["stopped_epoch"],
    })
    row.update(_weight_metrics(weights, cell.model.name))
    steady = fitted["epoch_s"][1:] or fitted["epoch_s"]
    row.update({
        "fit_s": fit_s,
        "first_epoch_s": fitted["epoch_s"][0] if fitted["epoch_s"] else None,
        "epoch_s": float(np.median(steady)) if steady else None,
        "examples_per_s": row["n_fit"] * epochs_run / fit_s if fit_s else None,
        "pack_size": fitted.get("pack_size", 1),
        "history": history,
    })
    if fitted.get("curve"):
        row["curve"] = fitted["curve"]
    return row


def _weight_metrics(weights: dict, model_name: str) -> dict:
    out = {f"sparsity_{k}": v for k, v in metrics.pooled_sparsity(weights).items()}
    total = metrics.norms(np.concatenate([w.ravel() for w in weights.values()]))
    out.update({"l1_norm": total["l1"], "l2_norm": total["l2"]})
    if model_name == "mlp":
        first = next(iter(weights.values()))
        out["dead_inputs_lt_1e-3"] = metrics.dead_inputs(first, 1e-3)
        out["dead_inputs_lt_1e-2"] = metrics.dead_inputs(first, 1e-2)
    out["layers"] = {name: {"shape": list(w.shape), **metrics.sparsity(w), **metrics.norms(w)}
                     for name, w in weights.items()}
    return out


def _identity(cell: Cell, deterministic: bool) -> dict:
    """Who the row is: key, labels, flat settings, provenance."""
    row = {
        "key": cell.key,
        "study": cell.study,
        "dataset": cell.dataset,
        "model": cell.model.name,
        "problem": f"{cell.dataset}_{cell.model.name}",
        "arm": cell.arm.label,
        "seed": cell.seed,
        "techniques": sorted(t.kind for t in cell.arm.techniques),
    }
    row.update({f"model_{k}": v for k, v in to_dict(cell.model).items() if k != "name"})
    row.update(to_dict(cell.training))
    for technique in cell.arm.techniques:
        row.update({f"{technique.kind}.{k}": v for k, v in to_dict(technique).items()})
    row["spec"] = cell.spec()
    row["deterministic"] = deterministic
    row["dataset_sha256"] = data.dataset_hashes(cell.dataset)
    row.update(provenance.fingerprint())
    row["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return row


def failed_row(cell: Cell, error: BaseException, deterministic: bool) -> dict:
    """A cell that raised: stored so the study goes on and reports can show it."""
    row = _identity(cell, deterministic)
    # Keras messages span lines and carry terminal colours: keep one plain line.
    message = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())
    row.update({"status": "failed", "error": f"{type(error).__name__}: {message}"[:500]})
    return row
