"""Grouped or separate: how a stacked convolution runs, chosen by measuring it.

A stacked convolution (`engine/stack_conv.py`) is G members' convolutions of one shape. As
one grouped convolution it is a single op; as G convolutions, concatenated, it is G ops in
the same compiled program. They compute the same numbers. Which is faster depends on the
backend, the device and the shape: on this project's 2-core CPU, XLA's grouped convolution
of CIFAR-10's layers is 8 to 17 times slower than separate ones, while a GPU's grouped
kernels are what HFTA fuses models with. So each shape is timed both ways, once per machine:
a training step's worth (forward, the kernel's gradient, and the input's where a layer
before it trains), in interleaved rounds, fastest of each kept. The choice is kept in
`conv_choice.json` beside the downloaded datasets (`data.cache_dir()`), keyed by backend,
device, threads and shape.

The planner stacks CNN cells only where grouped convolutions win (`stacks_pay`): separate
ones in one program cost more than the cells alone. `$REGBENCH_STACKED_CONV=grouped` or
`separate` forces one, and stacking (the tests train both).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

GROUPED, SEPARATE = "grouped", "separate"
# (kernel size, pooling) of each convolutional block, as `models.model_layers` builds them
CONV_BLOCKS = {"cnn": (3, dict(pool_size=2)),
               "alexnet": (5, dict(pool_size=3, strides=2, padding="same"))}
ROUNDS = 3
STEPS = 4          # steps per timed call
DECISIVE = 2.0     # a first round this lopsided decides without the others
_chosen: dict = {}


@dataclasses.dataclass(frozen=True)
class Shape:
    """One stacked convolution: a batch of (height, width, groups x in_channels) images,
    `filters` output channels per group, `kernel` x `kernel` windows, 'same' padding."""
    batch: int
    height: int
    width: int
    in_channels: int
    filters: int
    kernel: int
    groups: int
    input_gradient: bool = True   # a layer before it trains (not the network's first)


REFERENCE_MEMBERS = 8  # the stack whose convolutions decide whether CNN stacks pay


def stacks_pay(cell) -> bool:
    """Whether CNN cells like `cell` are worth stacking: where the convolutions of a stack of
    `REFERENCE_MEMBERS` run faster grouped than separate. Separate ones in one program are no
    faster than the cells alone, and were slower on this project's CPU (the copies that
    channel-stacking adds): there such cells train alone or in branch packs instead."""
    from regbench import data

    if _forced():
        return True
    shapes = conv_shapes(cell, data.info(cell.dataset), 1, REFERENCE_MEMBERS, False)
    return all(implementation(shape) == GROUPED for shape in shapes)


def conv_shapes(cell, info, rows: int, cols: int, per_member: bool) -> list[Shape]:
    """The shape of each stacked convolution of a rows x cols grid of `cell`'s network."""
    size = CONV_BLOCKS[cell.model.name][0]
    height, width, channels = cell.model.seen_shape(info.image_shape)
    shapes = []
    for i, filters in enumerate(cell.model.filters):
        shared = i == 0 and not per_member
        shapes.append(Shape(cell.training.batch_size, height, width, channels,
                            filters * (cols if shared else 1), size,
                            rows if shared else rows * cols, input_gradient=i > 0))
        height, width = pooled(cell.model.name, height, width)
        channels = filters
    return shapes


def pooled(network: str, height: int, width: int) -> tuple[int, int]:
    """A conv block's output size: 2x2 pooling (cnn), or 3x3 with stride 2, 'same' (alexnet)."""
    if network == "cnn":
        return height // 2, width // 2
    return -(-height // 2), -(-width // 2)


def _forced() -> str | None:
    forced = os.environ.get("REGBENCH_STACKED_CONV")
    if forced and forced not in (GROUPED, SEPARATE):
        raise ValueError(f"REGBENCH_STACKED_CONV={forced!r}: use {GROUPED} or {SEPARATE}")
    return forced


def implementation(shape: Shape) -> str:
    """GROUPED or SEPARATE for a stacked convolution of `shape`."""
    forced = _forced()
    if forced:
        return forced
    if shape.groups == 1:
        return GROUPED  # one group: the two are the same op
    key = _key(shape)
    if key not in _chosen:
        _chosen.update(_read_cache())
    if key not in _chosen:
        seconds = measure(shape)
        _chosen[key] = min(seconds, key=seconds.get)
        _write_cache(key, _chosen[key])
    return _chosen[key]


def measure(shape: Shape, rounds: int = ROUNDS) -> dict[str, float]:
    """Seconds per training step of the convolution, each way: the fastest of `rounds`
    interleaved calls of `STEPS` steps (after one that compiles)."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((shape.batch * STEPS, shape.height, shape.width,
                    shape.groups * shape.in_channels), np.float32)
    y = np.zeros((len(x), shape.height, shape.width, shape.groups * shape.filters), np.float32)
    nets = {way: _timing_net(shape, way) for way in (GROUPED, SEPARATE)}
    best = dict.fromkeys(nets, float("inf"))
    for round_ in range(rounds + 1):  # the first call of each compiles
        for way, net in nets.items():
            began = time.perf_counter()
            net.fit(x, y, batch_size=shape.batch, epochs=1, shuffle=False, verbose=0)
            if round_:
                best[way] = min(best[way], (time.perf_counter() - began) / STEPS)
        if round_ == 1 and max(best.values()) > DECISIVE * min(best.values()):
            break
    keras.backend.clear_session()
    return best


def _timing_net(shape: Shape, way: str):
    import keras
    import numpy as np

    from regbench.engine.backend import seam
    from regbench.engine.stack_conv import StackedConv2D

    channels = shape.groups * shape.in_channels

    def kernel(layer, initial):
        layer.kernel = layer.add_weight(shape=initial.shape, initializer="glorot_uniform",
                                        name="kernel")

    layers = [keras.Input((shape.height, shape.width, channels))]
    if shape.input_gradient:  # a trainable scale before it, so its input gradient is taken
        layers.append(keras.layers.Dense(channels, use_bias=False, name="before"))
    layers.append(StackedConv2D(
        np.zeros((1, shape.groups, shape.kernel, shape.kernel, shape.in_channels,
                  shape.filters), np.float32),
        "relu", "same", False, way == GROUPED, kernel, name="conv"))
    net = keras.Sequential(layers)
    net.compile(optimizer="sgd", loss="mse", steps_per_execution=STEPS)
    seam().enable_xla(net)
    return net


def _key(shape: Shape) -> str:
    import keras

    from regbench.provenance import accelerator, cpu_isa, cpu_model, usable_cores

    # One model name covers CPUs with and without AVX-512, whose convolutions differ.
    device = accelerator(keras.backend.backend()) or f"{cpu_model()} ({cpu_isa()})"
    return json.dumps([keras.backend.backend(), device, _threads() or usable_cores(),
                       dataclasses.astuple(shape)])


def _threads() -> int | None:
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads() or None


def _cache_file() -> Path:
    from regbench import data

    return data.cache_dir() / "conv_choice.json"


def _read_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, way: str) -> None:
    """Adds one choice, replacing the file whole (a lost race loses a choice, measured
    again later, never the file)."""
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        choices = {**_read_cache(), key: way}
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False,
                                         suffix=".tmp") as out:
            json.dump(choices, out, indent=1, sort_keys=True)
        os.replace(out.name, path)
    except OSError:
        pass  # the choice stands for this process; the next measures again
