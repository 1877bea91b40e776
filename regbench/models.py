"""Model builders: (model settings, arm, input shape, classes, seed) -> keras.Model.

Where each technique goes, in every model (the slots at the end of this module):
- l1 / l2 / l1_l2: kernel regularizer on every Dense and Conv2D kernel (`layers="all"`, the
  tutorial's choice) or on all but the output layer (`layers="hidden"`). Biases are never
  penalized. Several penalty techniques on one layer add up.
- max_norm: kernel constraint on every Dense and Conv2D kernel, per output unit.
- dropout: after every hidden Dense layer (after its batch normalization, if any); with
  `input_rate` > 0 also on the flattened input. The CNN's convolutional blocks get no dropout:
  dropout sits on the fully connected part, as in AlexNet and Srivastava et al.
- batchnorm: after the activation of every hidden Dense layer and every convolution; with
  `position = "before"`, between each hidden Dense layer's affine map and its activation.
- augmentation: random rotation, translation and (where allowed) flip layers right after the
  input, so they run on the training device and are inactive at inference.
- weight_decay: the L2 term factor / 2 * sum w^2 (TensorFlow's `l2_loss` convention), placed
  as l2.
- l1_late: an L1 term placed as l1, multiplied by a switch variable that training sets to 1
  from the technique's first epoch on (`set_epoch`).
- kl_sparsity: an activity penalty on the output of every hidden Dense layer.
- random_crop: the model's crop is taken at a random position per image in training.
- gaussian_noise: a GaussianNoise layer on the input, after augmentation (training only).

Input processing (model settings) comes first: the crop (`model.crop`), then per-image
standardization (`model.standardize`), then augmentation.

Every weight-bearing layer has a fixed name and an initializer seeded from (seed, name), so arms
at one seed start from identical weights in every layer they share, whatever else they add.
"""

from __future__ import annotations

import math
import zlib

import keras
from keras import ops

from regbench.recipe import Arm, Model

KL_CLIP = 1e-6  # the mean activation is clipped into [KL_CLIP, 1 - KL_CLIP]
LRN = dict(depth_radius=4, bias=1.0, alpha=0.001 / 9.0, beta=0.75)  # TF CIFAR-10 tutorial


def layer_seed(seed: int, name: str) -> int:
    """A per-layer seed that does not depend on which other layers the model has."""
    return zlib.crc32(f"{seed}/{name}".encode()) & 0x7FFFFFFF


class LateL1(keras.regularizers.Regularizer):
    """`base` (another penalty or None) plus factor * sum|w| times a 0/1 switch variable,
    so training can turn the L1 term on without rebuilding or retracing the model."""

    def __init__(self, factor: float, base=None):
        self.factor, self.base = factor, base
        self.switch = keras.Variable(0.0, trainable=False, name="l1_late_switch")

    def __call__(self, x):
        late = self.switch * self.factor * ops.sum(ops.abs(x))
        return late if self.base is None else late + self.base(x)


class KLSparsityPenalty(keras.regularizers.Regularizer):
    """weight * sum_j KL(target || mean over the batch of unit j's activation)."""

    def __init__(self, target: float, weight: float):
        self.target, self.weight = target, weight

    def __call__(self, x):
        rho = self.target
        rho_hat = ops.clip(ops.mean(x, axis=0), KL_CLIP, 1.0 - KL_CLIP)
        kl = (rho * ops.log(rho / rho_hat)
              + (1.0 - rho) * ops.log((1.0 - rho) / (1.0 - rho_hat)))
        # Keras divides an activity penalty by the batch size; undo that, so the penalty is
        # weight * sum_j KL whatever the batch size (the KL is of a batch mean already).
        return self.weight * ops.sum(kl) * ops.cast(ops.shape(x)[0], x.dtype)


def penalty_factors(arm: Arm, is_output: bool) -> tuple[float, float]:
    """(l1, l2) the arm's penalties put on one kernel; several penalties add up."""
    l1 = l2 = 0.0
    for technique in _placed(arm, KERNEL_PENALTY, is_output):
        add_l1, add_l2 = KERNEL_PENALTY[technique.kind](technique)
        l1, l2 = l1 + add_l1, l2 + add_l2
    return l1, l2


def late_l1_factor(arm: Arm, is_output: bool) -> float:
    """The factor of the arm's late L1 term on one kernel (0 where it has none)."""
    placed = _placed(arm, KERNEL_TERM, is_output)
    return placed[0].factor if placed else 0.0


def _placed(arm: Arm, slot: dict, is_output: bool = False) -> list:
    """The arm's techniques that `slot` places, in the slot's order; a kernel technique with
    `layers = "hidden"` skips the output layer."""
    return [technique for kind in slot if (technique := arm.get(kind)) is not None
            and not (is_output and getattr(technique, "layers", "all") == "hidden")]


def _penalty(arm: Arm, is_output: bool):
    l1, l2 = penalty_factors(arm, is_output)
    penalty = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    for technique in _placed(arm, KERNEL_TERM, is_output):
        penalty = KERNEL_TERM[technique.kind](technique, penalty)
    return penalty


def set_epoch(layers: list, arm: Arm, epoch: int, epochs: int) -> None:
    """Turn the arm's late L1 term on from its first epoch (0-based `epoch`)."""
    late = arm.get("l1_late")
    if late is None:
        return
    switch_late_l1(layers, 1.0 if epoch >= late.first_epoch(epochs) else 0.0)


def switch_late_l1(layers: list, on: float) -> None:
    """Set every late L1 term of `layers` on (1.0) or off (0.0)."""
    for layer in layers:
        penalty = getattr(layer, "kernel_regularizer", None)
        if isinstance(penalty, LateL1):
            penalty.switch.assign(on)


def _activity_penalty(arm: Arm):
    placed = _placed(arm, ACTIVITY)
    return ACTIVITY[placed[0].kind](placed[0]) if placed else None


class PerImageStandardization(keras.layers.Layer):
    """(x - mean) / max(std, 1/sqrt(pixels)) per image, as `tf.image.per_image_standardization`."""

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = ops.std(x, axis=(1, 2, 3), keepdims=True)
        floor = 1.0 / math.sqrt(math.prod(x.shape[1:]))
        return (x - mean) / ops.maximum(std, floor)


class PerImageRandomCrop(keras.layers.Layer):
    """A size x size crop at a random position per image in training, the centre otherwise.

    (Keras's RandomCrop takes one position per batch.) The crop is a product with one-hot
    row and column selectors, exact and the same on every backend.
    """

    draws_per_call = 2  # the rows' positions, then the columns'

    def __init__(self, size: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.size, self.seed = size, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if training:
            return self.cropped(x, self.generator)
        batch = ops.shape(x)[0]
        return self._crop(x, ops.full((batch,), (x.shape[1] - self.size) // 2, dtype="int32"),
                          ops.full((batch,), (x.shape[2] - self.size) // 2, dtype="int32"))

    def cropped(self, x, generator):
        """The training crop, its positions drawn from `generator` (the layer's own, or one
        handing out the same seeds: `engine.tensorflow.PipelineDraws`)."""
        batch = ops.shape(x)[0]
        top = keras.random.randint((batch,), 0, x.shape[1] - self.size + 1, seed=generator)
        left = keras.random.randint((batch,), 0, x.shape[2] - self.size + 1, seed=generator)
        return self._crop(x, top, left)

    def _crop(self, x, top, left):
        steps = ops.arange(self.size, dtype="int32")
        rows = ops.one_hot(top[:, None] + steps, x.shape[1], dtype=x.dtype)     # (b, size, H)
        cols = ops.one_hot(left[:, None] + steps, x.shape[2], dtype=x.dtype)    # (b, size, W)
        return ops.einsum("bjw,bhwc->bhjc", cols, ops.einsum("bih,bhwc->biwc", rows, x))


class LocalResponseNorm(keras.layers.Layer):
    """x / (bias + alpha * sum of x^2 over 2r+1 neighbouring channels)^beta, as TensorFlow's
    `local_response_normalization` (the small AlexNet of Zhang et al. uses it)."""

    def __init__(self, depth_radius=4, bias=1.0, alpha=1e-4, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        self.r, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta

    def call(self, x):
        r = self.r
        # channels are the last axis (a stacked network passes (..., members, channels))
        squares = ops.pad(ops.square(x), [[0, 0]] * (len(x.shape) - 1) + [[r + 1, r]])
        running = ops.cumsum(squares, axis=-1)
        window = running[..., 2 * r + 1:] - running[..., :-(2 * r + 1)]
        return x / ops.power(self.bias + self.alpha * window, self.beta)


def _constraint(arm: Arm, conv: bool):
    placed = _placed(arm, KERNEL_CONSTRAINT)
    return KERNEL_CONSTRAINT[placed[0].kind](placed[0], conv) if placed else None


def _weight_args(arm: Arm, seed: int, name: str, prefix: str, is_output=False,
                 conv=False) -> dict:
    return dict(
        name=prefix + name,
        kernel_initializer=keras.initializers.GlorotUniform(seed=layer_seed(seed, name)),
        kernel_regularizer=_penalty(arm, is_output),
        kernel_constraint=_constraint(arm, conv),
    )


def augmentation_layers(arm: Arm, seed: int, flip_ok: bool, prefix: str) -> list:
    """The arm's layers right after the input stage (`INPUT`): augmentation."""
    return [layer for technique in _placed(arm, INPUT)
            for layer in INPUT[technique.kind](technique, seed, flip_ok, prefix)]


def input_layers(model: Model, arm: Arm, seed: int, prefix: str = "") -> list:
    """The model's input stage: its crop (at a random position with `random_crop`), then
    per-image standardization."""
    layers = []
    if model.crop:
        if arm.get("random_crop") is not None:
            layers.append(PerImageRandomCrop(model.crop, layer_seed(seed, "crop"),
                                             name=prefix + "crop"))
        else:
            layers.append(keras.layers.CenterCrop(model.crop, model.crop, name=prefix + "crop"))
    if model.standardize:
        layers.append(PerImageStandardization(name=prefix + "standardize"))
    return layers


def prepared(images, layers: list):
    """Images (B, S, *image), S per example (a stack's seed rows), through the input stage
    (`input_layers`) image by image, as each would go alone: (B, S, *seen image)."""
    if not layers:
        return images
    shape = ops.shape(images)
    h = ops.reshape(images, (-1, *images.shape[2:]))
    for layer in layers:
        h = layer(h)
    return ops.reshape(h, (shape[0], shape[1], *h.shape[1:]))


def _hidden_dense(model: Model, arm: Arm, seed: int, index: int, units: int,
                  prefix: str) -> list:
    """A hidden Dense layer; with batch norm `before`, Dense (affine), BN, then activation."""
    if not arm.bn_before():
        return [keras.layers.Dense(units, activation=model.activation,
                                   activity_regularizer=_activity_penalty(arm),
                                   **_weight_args(arm, seed, f"hidden_{index}", prefix))]
    batchnorm = arm.get("batchnorm")
    return [keras.layers.Dense(units, **_weight_args(arm, seed, f"hidden_{index}", prefix)),
            keras.layers.BatchNormalization(momentum=batchnorm.momentum,
                                            epsilon=batchnorm.epsilon,
                                            name=f"{prefix}bn_{index}"),
            keras.layers.Activation(model.activation, name=f"{prefix}activation_{index}",
                                    activity_regularizer=_activity_penalty(arm))]


def _after_hidden(arm: Arm, seed: int, index: int, dense: bool, prefix: str) -> list:
    """The layers the arm puts after a hidden layer (`AFTER_HIDDEN`): batch norm, dropout."""
    return [layer for technique in _placed(arm, AFTER_HIDDEN)
            for layer in AFTER_HIDDEN[technique.kind](technique, arm, seed, index, dense,
                                                      prefix)]


def model_layers(model: Model, arm: Arm, classes: int, seed: int, flip_ok: bool = False,
                 prefix: str = "") -> list:
    """The layers of one cell's network, input to softmax output, in order.

    `prefix` renames the layers (for several networks in one packed model) without changing
    their initial weights, which depend on (seed, unprefixed name) only.
    """
    layers = input_layers(model, arm, seed, prefix)
    layers += augmentation_layers(arm, seed, flip_ok, prefix)
    if model.name == "alexnet":
        for i, filters in enumerate(model.filters):
            layers.append(keras.layers.Conv2D(
                filters, 5, padding="same", activation=model.activation,
                **_weight_args(arm, seed, f"conv_{i}", prefix, conv=True)))
            layers += _after_hidden(arm, seed, i, dense=False, prefix=prefix)
            layers.append(keras.layers.MaxPooling2D(3, strides=2, padding="same",
                                                    name=f"{prefix}pool_{i}"))
            layers.append(LocalResponseNorm(**LRN, name=f"{prefix}lrn_{i}"))
    if model.name == "cnn":
        for i, filters in enumerate(model.filters):
            layers.append(keras.layers.Conv2D(
                filters, 3, padding="same", activation=model.activation,
                **_weight_args(arm, seed, f"conv_{i}", prefix, conv=True)))
            layers += _after_hidden(arm, seed, i, dense=False, prefix=prefix)
            layers.append(keras.layers.MaxPooling2D(2, name=f"{prefix}pool_{i}"))
    layers.append(keras.layers.Flatten(name=f"{prefix}flatten"))
    layers += [layer for technique in _placed(arm, FLAT_INPUT)
               for layer in FLAT_INPUT[technique.kind](technique, seed, prefix)]
    for i, units in enumerate(model.hidden):
        layers += _hidden_dense(model, arm, seed, i, units, prefix)
        layers += _after_hidden(arm, seed, i, dense=True, prefix=prefix)
    layers.append(keras.layers.Dense(classes, activation="softmax",
                                     **_weight_args(arm, seed, "output", prefix, is_output=True)))
    for layer in layers:  # a switched penalty's variable belongs to its layer's state
        penalty = getattr(layer, "kernel_regularizer", None)
        if isinstance(penalty, LateL1):
            # Tracked as the layer's own (non-trainable) variable, it is part of the state
            # JAX's compiled step reads; kept only in the regularizer, JAX would fix its value
            # when the step is traced and the switch would never turn on.
            layer.l1_late_switch = penalty.switch
    return layers


# --- placement: one function per technique, in the slot of the network it fills -----------
# Every network has these slots; each maps a technique kind to the function that places it,
# and `model_layers` fills every slot from the arm, in the slot's order. A new technique is
# one entry here (and its registry entry in recipe.py).

def _augmentation(aug, seed: int, flip_ok: bool, prefix: str) -> list:
    layers = []
    if aug.rotation:
        layers.append(keras.layers.RandomRotation(
            aug.rotation / 360.0, fill_mode="nearest", seed=layer_seed(seed, "rotate"),
            name=prefix + "rotate"))
    if aug.shift:
        layers.append(keras.layers.RandomTranslation(
            aug.shift, aug.shift, fill_mode="nearest", seed=layer_seed(seed, "shift"),
            name=prefix + "shift"))
    if aug.flip is True or (aug.flip == "auto" and flip_ok):
        layers.append(keras.layers.RandomFlip(
            "horizontal", seed=layer_seed(seed, "flip"), name=prefix + "flip"))
    return layers


def _gaussian_noise(noise, seed: int, flip_ok: bool, prefix: str) -> list:
    return [keras.layers.GaussianNoise(noise.stddev, seed=layer_seed(seed, "noise"),
                                       name=prefix + "noise")]


def _input_dropout(dropout, seed: int, prefix: str) -> list:
    if not dropout.input_rate:
        return []
    return [keras.layers.Dropout(dropout.input_rate, seed=layer_seed(seed, "dropout_input"),
                                 name=f"{prefix}dropout_input")]


def _batchnorm_after(batchnorm, arm: Arm, seed: int, index: int, dense: bool,
                     prefix: str) -> list:
    if dense and batchnorm.position == "before":  # placed inside the hidden layer instead
        return []
    return [keras.layers.BatchNormalization(
        momentum=batchnorm.momentum, epsilon=batchnorm.epsilon,
        name=f"{prefix}{'bn' if dense else 'conv_bn'}_{index}")]


def _dropout_after(dropout, arm: Arm, seed: int, index: int, dense: bool, prefix: str) -> list:
    if not dense or not dropout.rate:  # conv blocks get no dropout
        return []
    return [keras.layers.Dropout(dropout.rate, seed=layer_seed(seed, f"dropout_{index}"),
                                 name=f"{prefix}dropout_{index}")]


KERNEL_PENALTY = {  # -> (l1, l2) added to every Dense/Conv2D kernel's L1L2 penalty
    "l1": lambda t: (t.factor, 0.0),
    "l2": lambda t: (0.0, t.factor),
    "l1_l2": lambda t: (t.l1, t.l2),
    "weight_decay": lambda t: (0.0, t.factor / 2),  # tf.nn.l2_loss: factor / 2 * sum w^2
}
KERNEL_TERM = {"l1_late": lambda t, base: LateL1(t.factor, base)}  # wraps the kernel penalty
KERNEL_CONSTRAINT = {  # a unit's incoming weights: all axes but the last (output channels)
    "max_norm": lambda t, conv: keras.constraints.MaxNorm(t.c, axis=[0, 1, 2] if conv else 0),
}
ACTIVITY = {"kl_sparsity": lambda t: KLSparsityPenalty(t.target, t.weight)}  # hidden outputs
INPUT = {"augmentation": _augmentation,        # after the crop and standardization
         "gaussian_noise": _gaussian_noise}
FLAT_INPUT = {"dropout": _input_dropout}       # on the flattened input
AFTER_HIDDEN = {"batchnorm": _batchnorm_after, "dropout": _dropout_after}  # in this order


def build_model(model: Model, arm: Arm, input_shape: tuple, classes: int, seed: int,
                flip_ok: bool = False) -> keras.Model:
    """The network for one cell (regbench's own; `networks.build` also builds a user's).
    Outputs class probabilities (softmax)."""
    return keras.Sequential([keras.Input(shape=input_shape, name="image"),
                             *model_layers(model, arm, classes, seed, flip_ok)],
                            name=model.name)
