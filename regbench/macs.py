"""Multiply-adds (MACs) per example of a network's forward pass: the one count regbench uses.

Counted: the multiply-adds of every Dense and Conv2D layer (each kernel weight once per output
position). Not counted: biases, activations, pooling, normalization, crops, dropout,
augmentation and penalties. They take time but little arithmetic next to the matrix products,
so a technique adds time and no counted MACs. A training step counts per example 2 x MACs
forward, 2 x MACs for the weight gradients and 2 x MACs for the input gradients of every
weight layer but the first, whose input gradient nobody needs (`train_flops`).

The count is taken from a built network, never from the settings, so whatever the builders
make (mlp, cnn, alexnet, a crop, padding, pooling) is counted as built, with no second
description of the architecture to keep in step. Keras is imported inside the functions:
importing this module starts no backend.
"""

from __future__ import annotations

import functools
import math

from regbench.recipe import Arm, Model


def dense_macs(in_features: int, units: int, positions: int = 1) -> int:
    """Multiply-adds of a Dense layer per example; `positions` > 1 for inputs of rank > 2."""
    return in_features * units * positions


def conv2d_macs(out_height: int, out_width: int, kernel_height: int, kernel_width: int,
                in_channels: int, filters: int, groups: int = 1) -> int:
    """Multiply-adds of a Conv2D layer per example."""
    return out_height * out_width * kernel_height * kernel_width * (in_channels // groups) * filters


def train_flops(macs: int, first_layer_macs: int = 0) -> int:
    """FLOPs of one training step per example: forward 2 x MACs; backward 2 x MACs for the
    weight gradients and 2 x MACs for the input gradients, less the first weight layer's
    (the gradient for the network's input is never computed)."""
    return 6 * macs - 2 * first_layer_macs


def network_train_flops(net) -> int:
    """`train_flops` of a built Keras model."""
    layers = layer_macs(net)
    return train_flops(sum(layers), layers[0] if layers else 0)


def forward_macs(net) -> int:
    """Multiply-adds per example of every Dense and Conv2D layer of a built Keras model."""
    return sum(layer_macs(net))


def layer_macs(net) -> list[int]:
    """Multiply-adds per example of each Dense and Conv2D layer of a built Keras model, in
    order.

    A convolution's output positions come from its output shape, so padding, strides and
    whatever crop or pooling came before are counted as the model has them.
    """
    import keras

    from regbench.user_models import flat_layers

    total = []
    for layer in flat_layers(net):
        if isinstance(layer, keras.layers.Conv2D):
            out = layer.output.shape  # channels_last: (batch, height, width, filters)
            if layer.data_format == "channels_first":
                out = (out[0], out[2], out[3], out[1])
            total.append(conv2d_macs(out[1], out[2], *layer.kernel_size,
                                     layer.kernel.shape[2] * layer.groups, layer.filters,
                                     layer.groups))
        elif isinstance(layer, keras.layers.Dense):
            positions = math.prod(layer.output.shape[1:-1])
            total.append(dense_macs(layer.kernel.shape[0], layer.units, positions))
    return total


def cell_macs(model: Model, dataset: str) -> int:
    """Forward multiply-adds per example of a cell's network (see `cell_layer_macs`)."""
    return sum(cell_layer_macs(model, dataset))


def cell_train_flops(model: Model, dataset: str) -> int:
    """`train_flops` per example of a cell's network."""
    layers = cell_layer_macs(model, dataset)
    return train_flops(sum(layers), layers[0] if layers else 0)


@functools.cache
def cell_layer_macs(model: Model, dataset: str) -> tuple[int, ...]:
    """Forward multiply-adds per example of a cell's network: `model` settings on `dataset`.

    The network is built as `networks.build` builds it for the arm `none` (techniques add
    no counted MACs), once per (model, dataset) in a process. Building only creates the
    network's variables: every initializer has a fixed seed of its own and Arm("none") has no
    random layers, so no global seed is drawn or set and the Keras session is not cleared;
    training before or after is unchanged.
    """
    from regbench import data, networks

    info = data.info(dataset)
    net = networks.build(model, Arm("none"), info.image_shape, info.classes, seed=0,
                      flip_ok=info.flip_ok)
    return tuple(layer_macs(net))
