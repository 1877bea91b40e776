"""Building and timing one case of the step grid: models, batches, rounds, matmuls, pipelines.

What is timed: one optimizer step (`model.train_on_batch`) on a fixed, seeded batch that already
sits on the device, in steady state. The first call (build, tracing, compilation, one step) and
a few warm-up steps run before timing; the first call is reported on its own. `train_on_batch`
returns Python floats, so every timed call ends only when the device has finished.

Keras is imported inside the functions, as late as possible, so that the report and compare
commands, which import this package, never start a backend.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from regbench.bench.cases import PROBLEMS, SEED, TRAINING, Profile, arm
from regbench.bench.machine import backend


def device_scope(device: str):
    """Place variables, data and computation on `device` ("cpu" or "gpu"), any backend."""
    import keras

    return keras.device(f"{device}:0")


def batch_arrays(problem: str, batch: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """A generated batch of the problem's shape: pixels uniform in [0, 1), labels 0..classes-1."""
    from regbench import data

    info = data.info(PROBLEMS[problem].dataset)
    rng = np.random.default_rng([seed, batch])
    x = rng.random((batch, *info.image_shape), dtype=np.float32)
    y = rng.integers(0, info.classes, batch).astype(np.int32)
    return x, y


def make_model(problem: str, technique: str, seed: int = SEED):
    """The regbench model of one case, as a cell trained alone builds it."""
    import keras

    from regbench import data
    from regbench.models import build_model

    p = PROBLEMS[problem]
    info = data.info(p.dataset)
    keras.utils.set_random_seed(seed)
    return build_model(p.model, arm(technique), info.image_shape, info.classes, seed,
                       flip_ok=info.flip_ok)


def build(problem: str, technique: str, batch: int, seed: int = SEED):
    """The model of one case, compiled exactly as a cell trained alone is."""
    import keras

    from regbench.engine.program import cell_metrics, compile_network

    net = make_model(problem, technique, seed)
    compile_network(net, dataclasses.replace(TRAINING, batch_size=batch),
                    keras.losses.SparseCategoricalCrossentropy(), cell_metrics())
    return net


def on_device(*arrays):
    """Arrays as backend tensors on the current device (inside `device_scope`)."""
    import keras

    return tuple(keras.ops.convert_to_tensor(a) for a in arrays)


def train_step(net, x, y):
    """One optimizer step; returns when the device has finished (the logs are Python floats)."""
    return lambda: net.train_on_batch(x, y)


def time_calls(fn, n: int) -> list[float]:
    """Seconds taken by each of n calls of fn."""
    out = []
    for _ in range(n):
        began = time.perf_counter()
        fn()
        out.append(time.perf_counter() - began)
    return out


class Interleaved:
    """Rounds of a baseline interleaved with a benchmark's rounds, for pytest-benchmark's
    `pedantic(setup=..., teardown=...)`: one call of `baseline` per round, before the round on
    even rounds and after it on odd ones (ABBA order, so neither position biases the pairs).
    `samples[i]` is paired with round i of the benchmark."""

    def __init__(self, baseline):
        self.baseline, self.samples, self.round = baseline, [], 0

    def _time(self):
        self.samples.append(time_calls(self.baseline, 1)[0])

    def setup(self):
        if self.round % 2 == 0:
            self._time()

    def teardown(self):
        if self.round % 2 == 1:
            self._time()
        self.round += 1


def plan_rounds(step_s: float, prof: Profile, single: bool = False) -> tuple[int, int]:
    """(rounds, iterations per round) that fill about `prof.target_s`; `single`: one step
    per round (rounds interleaved with a baseline's)."""
    step_s = max(step_s, 1e-7)
    iterations = 1 if single else max(1, math.ceil(prof.min_round_s / step_s),
                                      math.ceil(prof.target_s / (prof.max_rounds * step_s)))
    rounds = round(prof.target_s / (iterations * step_s))
    return min(max(rounds, prof.min_rounds), prof.max_rounds), iterations


def matmul_operands(n: int, seed: int = SEED):
    rng = np.random.default_rng([seed, n])
    return on_device(rng.standard_normal((n, n), dtype=np.float32),
                     rng.standard_normal((n, n), dtype=np.float32))


def matmul(a, b) -> float:
    """a @ b, waiting for the device: one element of the product is copied to the host."""
    import keras

    return float(keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0]))


def augmentation_layers(problem: str, seed: int = SEED) -> list:
    """The Keras preprocessing layers regbench puts at the front of the `augmentation` model."""
    import keras

    kinds = (keras.layers.RandomRotation, keras.layers.RandomTranslation, keras.layers.RandomFlip)
    net = make_model(problem, "augmentation", seed)
    return [layer for layer in net.layers if isinstance(layer, kinds)]


def input_pipeline(x, y, layers: list, prefetch: bool):
    """tf.data on the host CPU: the fixed batch repeated, with `layers` mapped over it in
    training mode (parallel map, as a tf.data pipeline would run them)."""
    import tensorflow as tf

    def augment(images, labels):
        for layer in layers:  # layer by layer: Keras runs preprocessing layers in tf.data
            images = layer(images, training=True)  # with TF, whatever the Keras backend
        return images, labels

    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds


def batches(dataset):
    """An iterator of batches the active backend can train on."""
    return iter(dataset) if backend() == "tensorflow" else dataset.as_numpy_iterator()


def fed_step(net, iterator):
    """One optimizer step on the next batch of an input pipeline."""
    def step():
        x, y = next(iterator)
        return net.train_on_batch(x, y)
    return step
