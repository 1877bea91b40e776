"""What every strategy builds and the epoch loop drives: a compiled network over a pack's
streams, and one member view per cell.

A member gives the loop what Keras's EarlyStopping needs (`get_weights`, `set_weights`,
`stop_training`), its kernels and penalty for the row, and its layers for the epoch-dependent
switches (`set_schedules`). Its metrics are named `<prefix>acc` and `<prefix>xent`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from regbench.engine.data import Streams
from regbench.recipe import Training

STEPS_PER_EXECUTION = 64  # fewer Python round trips per epoch; epoch-level callbacks unaffected


@dataclass
class Program:
    """A pack's network, its members (in the pack's cell order) and its data.

    `member_streams[k]`: the stream member k reads; `prefixes[k]`: its metrics' prefix;
    `outputs(predicted)`: the network's prediction split per member, (n, classes) each.
    """
    strategy: str
    net: Any
    members: list
    streams: Streams
    member_streams: list[int]
    prefixes: list[str]
    outputs: Callable[[Any], list[np.ndarray]]

    def steps(self) -> int:
        """Optimizer steps taken so far."""
        return int(self.net.optimizer.iterations)


class Member:
    """One cell's layers in a Keras network (the whole network alone, one branch in a pack);
    `prefix` is what a pack prepends to its layer names."""

    def __init__(self, layers: list, prefix: str = ""):
        self.layers = [layer for layer in layers if layer.weights]
        self.prefix = prefix
        self.stop_training = False

    def get_weights(self) -> list:
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: list) -> None:
        weights = list(weights)
        for layer in self.layers:
            n = len(layer.weights)
            layer.set_weights(weights[:n])
            weights = weights[n:]

    def switch_late_l1(self, on: float) -> None:
        """Turn the cell's late L1 term on (1.0) or off (0.0) in every layer."""
        from regbench.models import switch_late_l1

        switch_late_l1(self.layers, on)

    def kernels(self) -> dict:
        """Layer name (without the prefix) -> kernel, for every Dense and Conv2D layer."""
        return {name.removeprefix(self.prefix): w for name, w in kernels(self.layers).items()}

    def penalty(self) -> float:
        """The kernel penalties at the current weights, as Keras adds them to `loss`.
        Activity penalties (kl_sparsity) are a function of a batch, not of the weights: not
        included."""
        import keras

        return float(sum(float(keras.ops.convert_to_numpy(v.regularizer(v)))
                         for layer in self.layers for v in layer.trainable_weights
                         if v.regularizer is not None))


def kernels(layers: list) -> dict:
    """Layer name -> kernel array of every Dense and Conv2D layer, in order."""
    import keras

    return {layer.name: keras.ops.convert_to_numpy(layer.kernel)
            for layer in layers if isinstance(layer, keras.layers.Dense | keras.layers.Conv2D)}


def compile_network(net, training: Training, loss, metrics) -> None:
    """The one compile call: the cell's optimizer, its losses and metrics."""
    import keras

    # torch runs one step per call (Keras refuses more there)
    steps = 1 if keras.backend.backend() == "torch" else STEPS_PER_EXECUTION
    net.compile(optimizer=make_optimizer(training), loss=loss, metrics=metrics,
                steps_per_execution=steps, jit_compile="auto")


def cell_metrics() -> list:
    """Accuracy and cross-entropy of one output, named `acc` and `xent`."""
    import keras

    return [keras.metrics.SparseCategoricalAccuracy(name="acc"),
            keras.metrics.SparseCategoricalCrossentropy(name="xent")]


def make_optimizer(training: Training):
    import keras

    if training.optimizer == "sgd" and training.momentum_epochs:
        return _scheduled_momentum_sgd(training)
    if training.optimizer == "sgd":
        return keras.optimizers.SGD(training.learning_rate, momentum=training.momentum)
    if training.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(training.learning_rate)
    return keras.optimizers.Adam(training.learning_rate)


def _scheduled_momentum_sgd(training: Training):
    """Keras SGD with its momentum read from a variable (`momentum_value`), which the epoch
    loop moves between epochs: Keras bakes a float momentum into the compiled step."""
    import keras
    from keras import ops

    from regbench.keras_private import variable_index

    class ScheduledMomentumSGD(keras.optimizers.SGD):
        def __init__(self, learning_rate, momentum):
            super().__init__(learning_rate, momentum=1.0)  # any value > 0 builds velocities
            self.momentum_value = keras.Variable(momentum, trainable=False, name="momentum")

        def update_step(self, gradient, variable, learning_rate):
            velocity = self.momentums[variable_index(self, variable)]
            momentum = ops.cast(self.momentum_value, variable.dtype)
            step = ops.multiply(ops.cast(gradient, variable.dtype),
                                ops.cast(learning_rate, variable.dtype))
            self.assign(velocity, ops.subtract(ops.multiply(velocity, momentum), step))
            self.assign_add(variable, velocity)

    return ScheduledMomentumSGD(training.learning_rate, training.momentum_at(0))
