"""Keras layers of a stacked network (see `engine/stack.py`): S x A members' layers as one.

Activations are (S, A, batch, units): member (s, a) is slice [s, a]. A shared first layer reads
(S, batch, pixels) and stores its kernel as (S, pixels, A, units).
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from keras import ops

from regbench.engine.backend import seam
from regbench.engine.conv_choice import CONV_BLOCKS
from regbench.models import (
    KL_CLIP,
    augmentation_layers,
    input_layers,
    late_l1_factor,
    layer_seed,
    penalty_factors,
    prepared,
)
from regbench.recipe import Arm
from regbench.study import Cell

# --- per-member settings as arrays over the grid ------------------------------------------

def _grid_array(grid, value, dtype=np.float32) -> np.ndarray:
    with np.errstate(over="ignore"):  # a factor beyond float32 becomes inf, refused below
        return np.array([[value(cell) for cell in row] for row in grid], dtype=dtype)


def _setting(kind: str, field: str, default):
    def value(cell):
        technique = cell.arm.get(kind)
        return default if technique is None else getattr(technique, field)
    return value


def build_stacked(grid: list[list[Cell]], info, per_member: bool, before: bool = False):
    """The stacked network of a grid: input (batch, S, *image), output (batch, S, A, classes).
    `per_member`: each member transforms its own input (augmentation, input dropout);
    `before`: batch norm sits between each hidden layer's affine map and its activation (the
    same for every member: `stack.stack_key`)."""
    rows, cols = len(grid), len(grid[0])
    first = grid[0][0]
    model = first.model
    # TensorFlow draws other random numbers inside XLA: there the draws come with the batch
    in_pipeline = seam().in_pipeline()
    # The input stage (centre crop, standardization) runs once for every member, and every
    # layer after it sees the cropped image; unless a member crops at random: then in
    # training each member runs its own, before its augmentation (a centre crop for the
    # others). Evaluation crops every member at the centre, as alone.
    prepare = input_layers(model, Arm("none"), first.seed)
    own_crop = per_member and any(cell.arm.get("random_crop") is not None
                                  for row in grid for cell in row)
    info = dataclasses.replace(info, image_shape=model.seen_shape(info.image_shape))

    def inits(name: str, shape: tuple) -> np.ndarray:  # each member's seeded initial kernel
        return np.stack([np.stack([ops.convert_to_numpy(keras.initializers.GlorotUniform(
            seed=layer_seed(cell.seed, name))(shape, dtype="float32")) for cell in row])
            for row in grid])

    def terms(name: str, is_output=False) -> KernelTerms:
        l1 = _grid_array(grid, lambda cell: penalty_factors(cell.arm, is_output)[0])
        l2 = _grid_array(grid, lambda cell: penalty_factors(cell.arm, is_output)[1])
        if not (np.isfinite(l1).all() and np.isfinite(l2).all()):  # as Keras refuses them
            raise ValueError(f"{name}: a penalty factor does not fit in float32")
        return KernelTerms(l1, l2, _grid_array(grid, lambda c: late_l1_factor(c.arm, is_output)),
                           _grid_array(grid, _setting("max_norm", "c", math.inf)))

    def dense(name: str, fan_in: int, units: int, activation: str, is_output=False,
              shared=False, kl=None):
        return StackedDense(inits(name, (fan_in, units)), terms(name, is_output),
                            activation=activation, shared_input=shared, kl=kl, name=name)

    def dropout(name: str, field: str, width: int):
        rates = _grid_array(grid, _setting("dropout", field, 0.0))
        if not rates.any():
            return None
        seeds = _grid_array(grid, lambda cell: layer_seed(cell.seed, name), dtype=np.int64)
        return StackedDropout(rates, seeds, width, name=name)

    def batchnorm(name: str, conv=False):
        enabled = _grid_array(grid, lambda cell: cell.arm.get("batchnorm") is not None, bool)
        return StackedBatchNorm(
            enabled, _grid_array(grid, _setting("batchnorm", "momentum", 0.99)),
            _grid_array(grid, _setting("batchnorm", "epsilon", 1e-3)), conv=conv, name=name)

    stage, augment = None, None
    width = int(np.prod(info.image_shape))
    convolutional = model.name in CONV_BLOCKS
    if per_member:
        augment = [[(input_layers(model, cell.arm, cell.seed, f"s{s}a{a}_") if own_crop
                     else []) + augmentation_layers(cell.arm, cell.seed, info.flip_ok,
                                                    f"s{s}a{a}_")
                    for a, cell in enumerate(row)] for s, row in enumerate(grid)]
        augment = augment if any(map(any, augment)) else None
        stage = StackedInput(None if in_pipeline else augment, cols,
                             None if convolutional
                             else dropout("dropout_input", "input_rate", width), name="input")

    convs = []
    if convolutional:  # conv blocks, then the flattened features (and their input dropout)
        convs, width = _conv_blocks(grid, info, per_member, inits, terms, batchnorm)
        if (drop := dropout("dropout_input", "input_rate", width)) is not None:
            convs.append(drop)

    # KL sparsity on each hidden layer's activations: (target, weight) per member
    kl = (_grid_array(grid, _setting("kl_sparsity", "target", 0.5)),
          _grid_array(grid, _setting("kl_sparsity", "weight", 0.0)))
    kl = kl if kl[1].any() else None
    hidden = []
    for i, units in enumerate(model.hidden):
        norm = batchnorm(f"bn_{i}")
        shared_input = i == 0 and not per_member and not convolutional
        if before:  # affine map, batch norm, then the activation (and its KL penalty)
            layer = [dense(f"hidden_{i}", width, units, "linear", shared=shared_input), norm,
                     StackedActivation(model.activation, kl, name=f"activation_{i}")]
        else:
            layer = [dense(f"hidden_{i}", width, units, model.activation,
                           shared=shared_input, kl=kl)]
            if norm.enabled.any():
                layer.append(norm)
        if (drop := dropout(f"dropout_{i}", "rate", units)) is not None:
            layer.append(drop)
        hidden += layer
        width = units
    head = dense("output", width, info.classes, "softmax", is_output=True)
    draws = None
    if in_pipeline:
        drop = [layer for layer in (stage and stage.dropout, *convs, *hidden)
                if isinstance(layer, StackedDropout)]
        draws = (seam().PipelineDraws(drop, augment, [] if own_crop else prepare)
                 if drop or augment else None)
    return StackedNetwork(rows, cols, stage, convs, hidden, head, draws, prepare, own_crop)


def _conv_blocks(grid, info, per_member: bool, inits, terms, batchnorm) -> tuple[list, int]:
    """The conv blocks of the grid's network, from channel-stacked input to each member's
    flattened features, and the features' width."""
    from regbench.engine.conv_choice import (
        CONV_BLOCKS,
        GROUPED,
        conv_shapes,
        implementation,
        pooled,
    )
    from regbench.engine.stack_conv import (
        ChannelStacked,
        StackedConv2D,
        StackedFlatten,
        StackedLocalResponseNorm,
    )
    from regbench.models import LRN

    first = grid[0][0]
    rows, cols = len(grid), len(grid[0])
    size, pooling = CONV_BLOCKS[first.model.name]
    shapes = conv_shapes(first, info, rows, cols, per_member)
    layers = [ChannelStacked(info.image_shape, name="channels")]
    for i, (filters, shape) in enumerate(zip(first.model.filters, shapes)):
        layers.append(StackedConv2D(
            inits(f"conv_{i}", (size, size, shape.in_channels, filters)),
            first.model.activation, "same", i == 0 and not per_member,
            implementation(shape) == GROUPED, terms(f"conv_{i}").add_kernel, name=f"conv_{i}"))
        norm = batchnorm(f"conv_bn_{i}", conv=True)
        if norm.enabled.any():
            layers.append(norm)
        layers.append(keras.layers.MaxPooling2D(**pooling, name=f"pool_{i}"))
        if first.model.name == "alexnet":
            layers.append(StackedLocalResponseNorm(rows * cols, **LRN, name=f"lrn_{i}"))
    layers.append(StackedFlatten(rows, cols, name="flatten"))
    height, width = pooled(first.model.name, shapes[-1].height, shapes[-1].width)
    return layers, height * width * first.model.filters[-1]


# --- layers --------------------------------------------------------------------------------

def _tensor(array: np.ndarray):
    """A per-member constant as a backend tensor: torch refuses NumPy arrays in arithmetic with
    tensors that carry gradients."""
    return ops.convert_to_tensor(array)


class KernelTerms:
    """A stacked kernel's per-member penalties and constraint, (S, A) each: L1 and L2
    factors, the late L1 term's factor (0: none) and max-norm c (inf: none)."""

    def __init__(self, l1, l2, late, max_norm):
        self.l1, self.l2, self.max_norm = l1, l2, max_norm
        self.late = late if late.any() else None

    def add_kernel(self, layer, initial: np.ndarray, shared_input: bool = False) -> None:
        """Give `layer` its kernel variable (initial value `initial`, (S, A, ..., out), or
        (S, in, A, out) with a shared input) and these terms, as `layer.l1`, `.l2`, `.late`
        and `.l1_late_switch`."""
        rows, cols = self.l1.shape
        layer.l1, layer.l2, layer.late = self.l1, self.l2, self.late
        # The late L1 term's 0/1 switch per member, set by the epoch loop: the layer's own
        # variable, so JAX's compiled step reads it as state (as `models.LateL1`'s).
        layer.l1_late_switch = None if self.late is None else layer.add_weight(
            shape=(rows, cols), initializer="zeros", trainable=False, name="l1_late_switch")
        layer.kernel = layer.add_weight(
            shape=initial.shape, name="kernel",
            initializer=lambda shape, dtype=None: ops.convert_to_tensor(initial, dtype),
            regularizer=MemberPenalty(self.l1, self.l2, shared_input, initial.ndim, self.late,
                                      layer.l1_late_switch)
            if (self.l1.any() or self.l2.any() or self.late is not None) else None,
            constraint=MemberMaxNorm(self.max_norm, shared_input, initial.ndim)
            if np.isfinite(self.max_norm).any() else None)


class StackedDense(keras.layers.Layer):
    """S x A Dense layers. Kernel (S, A, in, out), or (S, in, A, out) with a shared input."""

    def __init__(self, kernels, terms: KernelTerms, activation, shared_input=False, kl=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.initial = kernels.transpose(0, 2, 1, 3) if shared_input else kernels
        self.shared_input = shared_input
        self.terms = terms
        self.activation = keras.activations.get(activation)
        self.kl = kl

    def build(self, input_shape):
        rows, cols = self.terms.l1.shape
        self.terms.add_kernel(self, self.initial, self.shared_input)
        self.bias = self.add_weight(shape=(rows, cols, self.initial.shape[-1]),
                                    initializer="zeros", name="bias")
        del self.initial  # the variable holds it now

    def member_index(self, s: int, a: int) -> tuple:
        return (s, slice(None), a) if self.shared_input else (s, a)

    def call(self, h):
        rows, cols = self.l1.shape
        if self.shared_input:  # (S, B, in) @ (S, in, A * out) -> (S, A, B, out)
            fan_in, units = self.kernel.shape[1], self.kernel.shape[3]
            z = ops.matmul(h, ops.reshape(self.kernel, (rows, fan_in, cols * units)))
            z = ops.transpose(ops.reshape(z, (rows, -1, cols, units)), (0, 2, 1, 3))
        else:  # (S, A, B, in) @ (S, A, in, out)
            z = ops.matmul(h, self.kernel)
        out = self.activation(z + self.bias[:, :, None, :])
        if self.kl is not None:
            self.add_loss(kl_penalty(out, *self.kl))
        return out


def kl_penalty(h, target, weight):
    """Sum over members of weight * sum_j KL(target || batch mean of unit j), as
    `models.KLSparsityPenalty` adds it for each cell alone (h: (S, A, batch, units))."""
    rho = _tensor(target[:, :, None])
    rho_hat = ops.clip(ops.mean(h, axis=2), KL_CLIP, 1.0 - KL_CLIP)
    kl = rho * ops.log(rho / rho_hat) + (1.0 - rho) * ops.log((1.0 - rho) / (1.0 - rho_hat))
    return ops.sum(_tensor(weight) * ops.sum(kl, axis=-1))


class StackedActivation(keras.layers.Layer):
    """Each member's activation after its batch norm (`position = "before"`), with its KL
    sparsity penalty where it has one."""

    def __init__(self, activation, kl, **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.kl = kl

    def call(self, h, training=False):
        out = self.activation(h)
        if self.kl is not None:
            self.add_loss(kl_penalty(out, *self.kl))
        return out


class MemberPenalty(keras.regularizers.Regularizer):
    """Each member's l1 * sum|w| + l2 * sum w^2 (Keras `L1L2`) on its kernel, as a gradient.

    Only the gradient, the element-wise l1 * sign(w) + 2 * l2 * w, reaches the training step:
    the value added to the loss is zero. No step needs the value (a member's logged loss adds
    `StackedMember.penalty()` at the end of the epoch), and summing a stacked kernel at every
    step costs about a tenth of the step."""

    def __init__(self, l1, l2, shared_input, ndim, late=None, switch=None):
        shape = _member_shape(l1, shared_input, ndim)
        self.l1 = l1.reshape(shape) if l1.any() else None
        self.l2 = l2.reshape(shape) if l2.any() else None
        # The late L1 term is a value, as alone (`models.LateL1`): switch * factor * sum|w|
        self.late, self.switch = late, switch
        self.member_axes = (1, 3) if shared_input else tuple(range(2, ndim))

    def __call__(self, w):
        w = ops.convert_to_tensor(w)  # a Keras variable would cut torch's gradient off
        late = None if self.late is None else ops.sum(
            _tensor(self.late) * ops.convert_to_tensor(self.switch)
            * ops.sum(ops.abs(w), axis=self.member_axes))
        if self.l1 is None and self.l2 is None:
            return late

        @ops.custom_gradient
        def zero(w):
            def grad(*args, upstream=None):
                upstream = args[0] if upstream is None else upstream
                return upstream * self.gradient(w)
            return ops.zeros((), w.dtype), grad
        return zero(w) if late is None else zero(w) + late

    def gradient(self, w):
        terms = []
        if self.l1 is not None:
            terms.append(_tensor(self.l1) * ops.sign(w))
        if self.l2 is not None:
            terms.append(_tensor(2 * self.l2) * w)
        return terms[0] + terms[1] if len(terms) == 2 else terms[0]


def _member_shape(values: np.ndarray, shared_input: bool, ndim: int) -> tuple:
    """The shape that broadcasts per-member `values` (S, A) over a kernel of `ndim` axes:
    (S, in, A, out) with a shared input, else (S, A, ...)."""
    rows, cols = values.shape
    return (rows, 1, cols, 1) if shared_input else (rows, cols) + (1,) * (ndim - 2)


class MemberMaxNorm(keras.constraints.Constraint):
    """Keras `MaxNorm` per member: each unit's incoming weights, every kernel axis but the
    members' and the last (a Dense unit's inputs, a filter's window and channels); inf = no
    constraint."""

    def __init__(self, c, shared_input, ndim):
        shape = _member_shape(c, shared_input, ndim)
        self.on = np.isfinite(c).reshape(shape)
        self.c = np.where(np.isfinite(c), c, 1.0).astype(np.float32).reshape(shape)
        self.in_axis = 1 if shared_input else tuple(range(2, ndim - 1))

    def __call__(self, w):
        w = ops.convert_to_tensor(w)  # JAX's `where` takes arrays, not Keras variables
        norms = ops.sqrt(ops.sum(ops.square(w), axis=self.in_axis, keepdims=True))
        desired = ops.minimum(norms, _tensor(self.c))  # norms are >= 0
        return ops.where(_tensor(self.on), w * (desired / (keras.backend.epsilon() + norms)),
                         w)


class StackedBatchNorm(keras.layers.Layer):
    """Batch normalization over each member's own batch, for the members that have it: over
    (S, A, batch, units), or with `conv` over channel-stacked images (batch, H, W, S * A * C),
    normalizing each channel over the batch and positions as Keras does for a convolution."""

    def __init__(self, enabled, momentum, epsilon, conv=False, **kwargs):
        super().__init__(**kwargs)
        self.enabled = enabled
        self.momentum, self.epsilon = momentum[:, :, None], epsilon[:, :, None]
        self.conv = conv

    def build(self, input_shape):
        rows, cols = self.enabled.shape
        units = input_shape[-1] // (rows * cols) if self.conv else input_shape[-1]
        shape = (rows, cols, units)
        self.gamma = self.add_weight(shape=shape, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=shape, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=shape, initializer="zeros",
                                           name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape=shape, initializer="ones",
                                               name="moving_variance", trainable=False)

    def member_index(self, s: int, a: int) -> tuple:
        return (s, a)

    def call(self, h, training=False):
        rows, cols = self.enabled.shape
        if self.conv:  # a (batch, H, W, S, A, C) view: statistics over batch and positions
            shape = ops.shape(h)
            view, axes = ops.reshape(h, (*shape[:3], rows, cols, -1)), [0, 1, 2]
            per_unit = lambda v: v  # noqa: E731  (S, A, C) broadcasts as it is
        else:
            view, axes = h, [2]
            per_unit = lambda v: v[:, :, None, :]  # noqa: E731
        momentum, epsilon = _tensor(self.momentum), _tensor(self.epsilon)
        if training and self.conv:  # per member, on its own (B, H, W, C): alone's sums
            moments = [ops.moments(x, axes=[0, 1, 2])
                       for x in ops.split(h, rows * cols, axis=-1)]
            mean = ops.reshape(ops.stack([m for m, _ in moments]), (rows, cols, -1))
            variance = ops.reshape(ops.stack([v for _, v in moments]), (rows, cols, -1))
        elif training:
            mean, variance = ops.moments(view, axes=axes)
        if training:
            self.moving_mean.assign(ops.stop_gradient(
                self.moving_mean * momentum + mean * (1.0 - momentum)))
            self.moving_variance.assign(ops.stop_gradient(
                self.moving_variance * momentum + variance * (1.0 - momentum)))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        inv = ops.rsqrt(variance + epsilon) * self.gamma
        normalized = view * per_unit(inv) + per_unit(self.beta - mean * inv)
        enabled = _tensor(self.enabled[:, :, None] if self.conv
                          else self.enabled[:, :, None, None])
        return ops.reshape(ops.where(enabled, normalized, view), ops.shape(h))


class StackedDropout(keras.layers.Layer):
    """Per-member dropout: member (s, a) draws the masks a Keras `Dropout` layer seeded as in
    the cell alone draws. With TensorFlow the masks come with the batch (`PipelineDraws`, drawn
    outside XLA, which draws other numbers); elsewhere each member's own seeded generator
    draws them here."""

    def __init__(self, rates, seeds, width: int, **kwargs):
        super().__init__(**kwargs)
        self.rates, self.seeds, self.width = rates, seeds, width
        self.generators = {(s, a): keras.random.SeedGenerator(int(seeds[s, a]))
                           for s, a in zip(*np.nonzero(rates))}

    def call(self, h, training=False, given=None):
        if given is not None:  # (S, A, B, width)
            return h * given
        if not training:
            return h
        ones = ops.ones(ops.shape(h)[2:])
        masks = [[keras.random.dropout(ones, float(self.rates[s, a]),
                                       seed=self.generators[s, a])
                  if (s, a) in self.generators else ones
                  for a in range(self.rates.shape[1])] for s in range(self.rates.shape[0])]
        return h * ops.stack([ops.stack(row) for row in masks])


class StackedInput(keras.layers.Layer):
    """Per-member input: each member's own layers (its input stage where a member crops at
    random, augmentation, Gaussian noise), flattening, input dropout.
    (S, B, *image) -> (S, A, B, pixels).

    Augmented images come with the batch on TensorFlow (`PipelineDraws`), so the network
    stays XLA-compilable (Keras's image transforms have no XLA kernels there); on other
    backends `augment[s][a]`, each member's own seeded layers, run here."""

    def __init__(self, augment: list | None, cols: int, dropout, **kwargs):
        super().__init__(**kwargs)
        self.augment, self.cols = augment, cols
        self.dropout = dropout

    def build(self, input_shape):
        """Nothing to create: the members' layers hold no weights (their seed generators come
        with them)."""
        self.built = True

    def call(self, x, training=False, augmented=None, masks=None):
        if augmented is not None:
            h = augmented
        elif training and self.augment:
            h = ops.stack([ops.stack([self._augmented(x[s], layers) for layers in row])
                           for s, row in enumerate(self.augment)])
        else:  # the same image for every member of a seed row
            flat = ops.reshape(x, (ops.shape(x)[0], 1, ops.shape(x)[1], -1))
            h = ops.broadcast_to(flat, (flat.shape[0], self.cols, *ops.shape(flat)[2:]))
        if self.dropout is None:
            return h
        return self.dropout(h, training=training, given=masks)

    @staticmethod
    def _augmented(images, layers):
        for layer in layers:
            images = layer(images, training=True)
        return ops.reshape(images, (ops.shape(images)[0], -1))


class StackedNetwork(keras.Model):
    """Input (batch, S, *image) -> member class probabilities (batch, S, A, classes): the
    model's input stage (`prepare`: crop, standardization), the per-member input stage, conv
    blocks (`engine/stack_conv.py`), then Dense layers."""

    def __init__(self, rows: int, cols: int, stage, convs: list, hidden: list, head,
                 draws=None, prepare=(), own_crop=False, **kwargs):
        super().__init__(name="stack", **kwargs)
        self.rows, self.cols = rows, cols
        self.prepare = list(prepare)
        self.own_crop = own_crop  # in training each member runs its own input stage
        self.stage, self.conv_layers, self.hidden_layers = stage, convs, hidden
        self.head = head
        self.draws = draws  # what the input pipeline draws (`PipelineDraws`), or None

    def member_layers(self) -> list:
        """The layers that hold per-member state, input to output."""
        return [layer for layer in self.conv_layers + self.hidden_layers + [self.head]
                if hasattr(layer, "member_index")]

    def call(self, inputs, training=False):
        """`inputs`: images (batch, S, *image), or a dict of them ("images"), dropout masks
        by layer name and augmented images ("augmented"), (batch, S, A, width) each
        (`PipelineDraws`)."""
        masks = {}
        if isinstance(inputs, dict):
            masks = {name: ops.transpose(m, (1, 2, 0, 3))
                     for name, m in inputs.items() if name != "images"}
            inputs = inputs["images"]
        own = training and self.own_crop
        h = ops.moveaxis(inputs if own else prepared(inputs, self.prepare), 1, 0)  # (S, B, ..)
        if self.stage is not None:
            h = self.stage(h, training=training, augmented=masks.get("augmented"),
                           masks=masks.get("dropout_input"))
        elif not self.conv_layers:
            h = ops.reshape(h, (self.rows, ops.shape(h)[1], -1))
        for layer in self.conv_layers + self.hidden_layers:
            if isinstance(layer, StackedDropout):
                h = layer(h, training=training, given=masks.get(layer.name))
            else:
                h = layer(h, training=training)
        return batch_first(self.head(h))


def batch_first(probabilities):
    """(S, A, batch, classes) -> (batch, S, A, classes), with the logits TensorFlow's softmax
    keeps on its output (`member_xent`) moved alike."""
    out = ops.transpose(probabilities, (2, 0, 1, 3))
    logits = getattr(probabilities, "_keras_logits", None)
    if logits is not None:
        out._keras_logits = ops.transpose(logits, (2, 0, 1, 3))
    return out


def member_xent(labels, y_pred):
    """Each member's cross-entropy per example, (batch, S, A), from `labels` (batch, S, A).

    On TensorFlow a cell alone takes its cross-entropy from the logits its softmax keeps
    (`_keras_logits`), not from probabilities clipped at 1e-7: an example it gets confidently
    wrong costs more than 16 nats and still has a gradient. A stack carries its head's logits
    (`StackedNetwork.call`) and does the same."""
    shape = ops.shape(y_pred)
    logits = getattr(y_pred, "_keras_logits", None)
    # One flat (examples x members, classes) cross-entropy: torch's backward of it needs
    # contiguous arrays, which the reshapes make; elsewhere they are free.
    xent = keras.losses.sparse_categorical_crossentropy(
        ops.reshape(labels, (-1,)), ops.reshape(y_pred if logits is None else logits,
                                                (-1, shape[-1])),
        from_logits=logits is not None)
    return ops.reshape(xent, shape[:3])


class MemberCrossentropy(keras.losses.Loss):
    """Per example, the sum over members of each member's cross-entropy: averaged over the
    batch, a member's gradient is exactly that of its own mean loss."""

    def call(self, y_true, y_pred):
        labels = ops.broadcast_to(ops.cast(y_true, "int32")[:, :, None], ops.shape(y_pred)[:3])
        return ops.sum(member_xent(labels, y_pred), axis=(1, 2))


class MemberMetrics(keras.metrics.Metric):
    """Accuracy and cross-entropy per member, logged as `m{k}_acc` and `m{k}_xent`
    (k = s * A + a)."""

    def __init__(self, rows: int, cols: int, name="members", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(rows, cols), initializer="zeros", name="correct")
        self.xent = self.add_variable(shape=(rows, cols), initializer="zeros", name="xent")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.broadcast_to(ops.cast(y_true, "int32")[:, :, None], ops.shape(y_pred)[:3])
        hits = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), labels),
                        "float32")
        xent = member_xent(labels, y_pred)
        self.correct.assign_add(ops.sum(hits, axis=0))
        self.xent.assign_add(ops.sum(xent, axis=0))
        self.count.assign_add(ops.cast(ops.shape(y_pred)[0], "float32"))

    def result(self):
        acc = ops.reshape(self.correct / self.count, (-1,))
        xent = ops.reshape(self.xent / self.count, (-1,))
        out = {}
        for k in range(acc.shape[0]):
            out[f"m{k}_acc"] = acc[k]
            out[f"m{k}_xent"] = xent[k]
        return out


class StackedMember:
    """One member's view of a stacked network: its slices of every weight, for Keras's
    EarlyStopping (`get_weights`, `set_weights`, `stop_training`), its kernels and penalty."""

    def __init__(self, net: StackedNetwork, s: int, a: int):
        # A shared-input Dense kernel is (S, in, A, out); every other variable is (S, A, ...)
        self.slices = [(layer, variable, layer.member_index(s, a)
                        if variable is getattr(layer, "kernel", None) else (s, a))
                       for layer in net.member_layers() for variable in layer.weights]
        self.kernel_layers = [layer for layer in net.member_layers() if hasattr(layer, "kernel")]
        self.s, self.a = s, a
        self.stop_training = False

    def get_weights(self) -> list:
        return [ops.convert_to_numpy(variable)[index].copy()
                for _, variable, index in self.slices]

    def set_weights(self, weights: list) -> None:
        for (_, variable, index), value in zip(self.slices, weights):
            whole = ops.convert_to_numpy(variable).copy()
            whole[index] = value
            variable.assign(whole)

    def kernels(self) -> dict:
        return {layer.name: ops.convert_to_numpy(layer.kernel)[layer.member_index(self.s, self.a)]
                for layer in self.kernel_layers}

    def penalty(self) -> float:
        total = 0.0
        for layer, kernel in zip(self.kernel_layers, self.kernels().values()):
            l1, l2 = layer.l1[self.s, self.a], layer.l2[self.s, self.a]
            if layer.late is not None:  # the late term as it stands (switched on or off)
                switch = ops.convert_to_numpy(layer.l1_late_switch)[self.s, self.a]
                l1 = l1 + float(switch) * layer.late[self.s, self.a]
            kernel = kernel.astype(np.float64)
            total += l1 * np.abs(kernel).sum() + l2 * np.square(kernel).sum()
        return float(total)

    def switch_late_l1(self, on: float) -> None:
        """Turn this member's late L1 term on (1.0) or off (0.0) in every layer."""
        for layer in self.kernel_layers:
            if layer.l1_late_switch is not None:
                switch = ops.convert_to_numpy(layer.l1_late_switch).copy()
                switch[self.s, self.a] = on
                layer.l1_late_switch.assign(switch)
