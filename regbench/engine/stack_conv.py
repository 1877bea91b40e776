"""The convolutional part of a stacked network (see `engine/stack.py`): S x A members' conv
blocks as one.

Activations are channel-stacked, (batch, H, W, G * channels): member k = s * A + a owns channel
block k (G = S x A groups), so pooling, which acts per channel, needs no change. A first
convolution whose input the members at a seed share reads (batch, H, W, S * C): seed s's
input is block s, and its A members' filters are one wide convolution of it.

A stacked convolution is grouped (`ops.conv` with one group per member: `feature_group_count`
on XLA, `groups` on torch) or separate (one convolution per group, concatenated, in the same
compiled program). Which is faster depends on the backend, the device and the layer's shape:
`engine/conv_choice.py` measures it per shape and the builder takes the faster (`grouped`).
"""

from __future__ import annotations

import keras
from keras import ops

from regbench.models import LocalResponseNorm


class ChannelStacked(keras.layers.Layer):
    """The stack's input as channel-stacked images: (S, B, H, W, C), shared by a seed's
    members, -> (B, H, W, S * C); per member, (S, A, B, H * W * C) -> (B, H, W, S * A * C)."""

    def __init__(self, image_shape: tuple, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(image_shape)

    def call(self, h):
        height, width, channels = self.image_shape
        if len(h.shape) == 5:  # shared
            rows, batch = ops.shape(h)[:2]
            return ops.reshape(ops.transpose(h, (1, 2, 3, 0, 4)),
                               (batch, height, width, rows * channels))
        rows, cols, batch = ops.shape(h)[:3]
        images = ops.reshape(h, (rows, cols, batch, height, width, channels))
        return ops.reshape(ops.transpose(images, (2, 3, 4, 0, 1, 5)),
                           (batch, height, width, rows * cols * channels))


class StackedConv2D(keras.layers.Layer):
    """S x A Conv2D layers. Kernel (S, A, kh, kw, in, out), bias (S, A, out), so that every
    variable is sliced [s, a] per member; `call` lays the kernel out as one grouped kernel
    (kh, kw, in, S * A * out). `shared_input`: the input is (batch, H, W, S * in), one block
    per seed (the first layer of a shared input), else one block per member."""

    def __init__(self, kernels, activation, padding: str, shared_input: bool, grouped: bool,
                 kernel_state, **kwargs):
        super().__init__(**kwargs)
        self.initial = kernels
        self.activation = keras.activations.get(activation)
        self.padding, self.shared_input = padding, shared_input
        self.grouped = grouped  # one grouped convolution, else one per group
        self.kernel_state = kernel_state  # adds the kernel with its penalty and constraint

    def build(self, input_shape):
        rows, cols = self.initial.shape[:2]
        self.kernel_state(self, self.initial)
        self.bias = self.add_weight(shape=(rows, cols, self.initial.shape[-1]),
                                    initializer="zeros", name="bias")
        del self.initial  # the variable holds it now

    def member_index(self, s: int, a: int) -> tuple:
        return (s, a)

    def call(self, h):
        rows, cols, kh, kw, fan_in, filters = self.kernel.shape
        kernel = ops.reshape(ops.transpose(self.kernel, (2, 3, 4, 0, 1, 5)),
                             (kh, kw, fan_in, rows * cols * filters))
        groups = rows if self.shared_input else rows * cols
        if self.grouped or groups == 1:
            z = ops.conv(h, kernel, padding=self.padding)
        else:
            width = rows * cols * filters // groups
            z = ops.concatenate([
                ops.conv(h[..., g * fan_in:(g + 1) * fan_in],
                         kernel[..., g * width:(g + 1) * width], padding=self.padding)
                for g in range(groups)], axis=-1)
        return self.activation(z + ops.reshape(self.bias, (-1,)))


class StackedLocalResponseNorm(keras.layers.Layer):
    """`models.LocalResponseNorm` within each member's channels."""

    def __init__(self, groups: int, **norm):
        super().__init__(name=norm.pop("name"))
        self.groups = groups
        self.norm = LocalResponseNorm(**norm, name=f"{self.name}_member")

    def call(self, h):
        batch, height, width, channels = ops.shape(h)
        members = ops.reshape(h, (batch, height, width, self.groups, channels // self.groups))
        return ops.reshape(self.norm(members), (batch, height, width, channels))


class StackedFlatten(keras.layers.Layer):
    """(B, H, W, S * A * C) -> (S, A, B, H * W * C): each member's features in the order
    Keras's Flatten gives them alone."""

    def __init__(self, rows: int, cols: int, **kwargs):
        super().__init__(**kwargs)
        self.rows, self.cols = rows, cols

    def call(self, h):
        batch, height, width, channels = ops.shape(h)
        per_member = channels // (self.rows * self.cols)
        members = ops.reshape(h, (batch, height, width, self.rows, self.cols, per_member))
        return ops.reshape(ops.transpose(members, (3, 4, 0, 1, 2, 5)),
                           (self.rows, self.cols, batch, height * width * per_member))
