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
import functools
import math
import os
import time

import numpy as np

from regbench import data, metrics, provenance
from regbench.recipe import to_dict
from regbench.study import Cell

EVAL_BATCH = 1024
STEPS_PER_EXECUTION = 64  # fewer Python round trips per epoch; epoch-level callbacks unaffected


def configure(deterministic: bool = True) -> None:
    """Process-wide settings, before any model is built."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()


@functools.lru_cache(maxsize=4)
def _arrays(dataset: str, data_dir: str | None) -> data.Arrays:
    return data.load(dataset, data_dir=data_dir)


def prepare(cell: Cell, data_dir: str | None = None) -> dict:
    """Float inputs in [0, 1] for the cell's fit / validation / test sets."""
    arrays = _arrays(cell.dataset, data_dir)
    t = cell.training
    x_fit, y_fit, x_val, y_val = data.split(arrays.x_train, arrays.y_train,
                                            t.validation_fraction, cell.seed)
    if t.train_subset:
        x_fit, y_fit = x_fit[:t.train_subset], y_fit[:t.train_subset]
    scale = np.float32(1 / 255)
    return {
        "fit": (x_fit.astype(np.float32) * scale, y_fit.astype(np.int32)),
        "val": (x_val.astype(np.float32) * scale, y_val.astype(np.int32)),
        "test": (arrays.x_test.astype(np.float32) * scale, arrays.y_test.astype(np.int32)),
        "source": arrays.source,
    }


def epoch_orders(n: int, epochs: int, seed: int) -> np.ndarray:
    """(epochs, n) example order; depends only on (seed, epoch), never on the arm."""
    return np.stack([np.random.default_rng([seed, epoch]).permutation(n)
                     for epoch in range(epochs)])


def training_batches(x: np.ndarray, y: np.ndarray, batch_size: int, epochs: int, seed: int):
    """A tf.data stream of every epoch's batches in the fixed order, in sequence."""
    import tensorflow as tf

    xs, ys = tf.constant(x), tf.constant(y)
    orders = tf.data.Dataset.from_tensor_slices(epoch_orders(len(x), epochs, seed))
    batches = orders.flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order)
                              .batch(batch_size))
    return batches.map(lambda idx: (tf.gather(xs, idx), tf.gather(ys, idx))).prefetch(4)


def make_optimizer(training):
    import keras

    if training.optimizer == "sgd":
        return keras.optimizers.SGD(training.learning_rate, momentum=training.momentum)
    if training.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(training.learning_rate)
    return keras.optimizers.Adam(training.learning_rate)


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


def _callbacks(cell: Cell, on_epoch):
    import keras

    class Watch(keras.callbacks.Callback):
        """Epoch wall times, divergence (non-finite loss) and progress reports."""

        def __init__(self):
            super().__init__()
            self.epoch_s, self.diverged_at, self._start = [], None, 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_s.append(time.perf_counter() - self._start)
            if not math.isfinite(logs.get("loss", 0.0)):
                self.diverged_at = epoch + 1
                self.model.stop_training = True
            if on_epoch:
                on_epoch(epoch + 1, cell.training.epochs, logs)

    watch = Watch()
    callbacks = [watch]
    stopping = cell.arm.get("early_stopping")
    if stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_xent", mode="min", patience=stopping.patience,
            min_delta=stopping.min_delta, restore_best_weights=stopping.restore_best_weights))
    return watch, callbacks


def run_cell(cell: Cell, data_dir: str | None = None, deterministic: bool = True,
             on_epoch=None) -> dict:
    """Train one cell from scratch and return its flat result row."""
    import keras

    from regbench.models import build_model, kernels

    info = data.DATASETS[cell.dataset]
    sets = prepare(cell, data_dir)
    x_fit, y_fit = sets["fit"]
    t = cell.training
    keras.utils.set_random_seed(cell.seed)
    net = build_model(cell.model, cell.arm, info.image_shape, info.classes, cell.seed,
                      flip_ok=info.flip_ok)
    compile_model(net, t)
    watch, callbacks = _callbacks(cell, on_epoch)
    steps = math.ceil(len(x_fit) / t.batch_size)

    started = time.perf_counter()
    history = net.fit(training_batches(x_fit, y_fit, t.batch_size, t.epochs, cell.seed),
                      epochs=t.epochs, steps_per_epoch=steps, validation_data=sets["val"],
                      validation_batch_size=EVAL_BATCH, callbacks=callbacks, verbose=0)
    fit_s = time.perf_counter() - started

    history = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    history["epoch_s"] = watch.epoch_s
    evaluation = {name: net.evaluate(*sets[name], batch_size=EVAL_BATCH, verbose=0,
                                     return_dict=True)
                  for name in ("fit", "val", "test")}
    weights = kernels(net)
    penalty = float(sum(float(keras.ops.convert_to_numpy(p)) for p in net.losses))
    stopper = callbacks[1] if len(callbacks) > 1 else None

    row = _identity(cell, deterministic)
    row.update({
        "status": "diverged" if watch.diverged_at else "ok",
        "diverged_epoch": watch.diverged_at,
        "n_fit": len(x_fit), "n_val": len(sets["val"][1]), "n_test": len(sets["test"][1]),
    })
    for split, name in (("fit", "train"), ("val", "val"), ("test", "test")):
        row[f"{name}_acc"] = float(evaluation[split]["acc"])
        row[f"{name}_xent"] = float(evaluation[split]["xent"])
    row["penalty"] = penalty
    row["gap_acc"] = row["train_acc"] - row["test_acc"]
    row["gap_xent"] = row["test_xent"] - row["train_xent"]
    epochs_run = len(history.get("loss", []))
    val_xent = history.get("val_xent", [])
    row.update({
        "epochs_run": epochs_run,
        "best_epoch": int(np.nanargmin(val_xent)) + 1 if val_xent else None,
        "stopped_epoch": (stopper.stopped_epoch + 1) if stopper and stopper.stopped_epoch
        else None,
    })
    row.update(_weight_metrics(weights, cell.model.name))
    steady = watch.epoch_s[1:] or watch.epoch_s
    row.update({
        "fit_s": fit_s,
        "first_epoch_s": watch.epoch_s[0] if watch.epoch_s else None,
        "epoch_s": float(np.median(steady)) if steady else None,
        "examples_per_s": len(x_fit) * epochs_run / fit_s if fit_s else None,
        "history": history,
    })
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
    row.update({"status": "failed", "error": f"{type(error).__name__}: {error}"[:500]})
    return row
