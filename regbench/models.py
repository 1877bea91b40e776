"""Model builders: (model settings, arm, input shape, classes, seed) -> keras.Model.

Where each technique goes, for both models:
- l1 / l2 / l1_l2: kernel regularizer on every Dense and Conv2D kernel (`layers="all"`, the
  tutorial's choice) or on all but the output layer (`layers="hidden"`). Biases are never
  penalized. Several penalty techniques on one layer add up.
- max_norm: kernel constraint on every Dense and Conv2D kernel, per output unit.
- dropout: after every hidden Dense layer (after its batch normalization, if any); with
  `input_rate` > 0 also on the flattened input. The CNN's convolutional blocks get no dropout:
  dropout sits on the fully connected part, as in AlexNet and Srivastava et al.
- batchnorm: after the activation of every hidden Dense layer and every convolution.
- augmentation: random rotation, translation and (where allowed) flip layers right after the
  input, so they run on the training device and are inactive at inference.

Every weight-bearing layer has a fixed name and an initializer seeded from (seed, name), so arms
at one seed start from identical weights in every layer they share, whatever else they add.
"""

from __future__ import annotations

import zlib

import keras

from regbench.recipe import Arm, Model


def layer_seed(seed: int, name: str) -> int:
    """A per-layer seed that does not depend on which other layers the model has."""
    return zlib.crc32(f"{seed}/{name}".encode()) & 0x7FFFFFFF


def _penalty(arm: Arm, is_output: bool):
    l1 = l2 = 0.0
    for technique in arm.techniques:
        if technique.kind in ("l1", "l2", "l1_l2"):
            if is_output and technique.layers == "hidden":
                continue
            l1 += technique.l1 if technique.kind == "l1_l2" else (
                technique.factor if technique.kind == "l1" else 0.0)
            l2 += technique.l2 if technique.kind == "l1_l2" else (
                technique.factor if technique.kind == "l2" else 0.0)
    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


def _constraint(arm: Arm, conv: bool):
    max_norm = arm.get("max_norm")
    if max_norm is None:
        return None
    # A unit's incoming weights: all axes but the last (output channels).
    return keras.constraints.MaxNorm(max_norm.c, axis=[0, 1, 2] if conv else 0)


def _weight_args(arm: Arm, seed: int, name: str, prefix: str, is_output=False,
                 conv=False) -> dict:
    return dict(
        name=prefix + name,
        kernel_initializer=keras.initializers.GlorotUniform(seed=layer_seed(seed, name)),
        kernel_regularizer=_penalty(arm, is_output),
        kernel_constraint=_constraint(arm, conv),
    )


def _augmentation_layers(arm: Arm, seed: int, flip_ok: bool, prefix: str) -> list:
    aug = arm.get("augmentation")
    if aug is None:
        return []
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


def _after_hidden(arm: Arm, seed: int, index: int, dense: bool, prefix: str) -> list:
    """Batch normalization, then dropout (dense layers only), after a hidden layer."""
    layers = []
    batchnorm = arm.get("batchnorm")
    if batchnorm is not None:
        layers.append(keras.layers.BatchNormalization(
            momentum=batchnorm.momentum, epsilon=batchnorm.epsilon,
            name=f"{prefix}{'bn' if dense else 'conv_bn'}_{index}"))
    dropout = arm.get("dropout")
    if dense and dropout is not None and dropout.rate > 0:
        layers.append(keras.layers.Dropout(
            dropout.rate, seed=layer_seed(seed, f"dropout_{index}"),
            name=f"{prefix}dropout_{index}"))
    return layers


def model_layers(model: Model, arm: Arm, classes: int, seed: int, flip_ok: bool = False,
                 prefix: str = "") -> list:
    """The layers of one cell's network, input to softmax output, in order.

    `prefix` renames the layers (for several networks in one packed model) without changing
    their initial weights, which depend on (seed, unprefixed name) only.
    """
    layers = _augmentation_layers(arm, seed, flip_ok, prefix)
    if model.name == "cnn":
        for i, filters in enumerate(model.filters):
            layers.append(keras.layers.Conv2D(
                filters, 3, padding="same", activation=model.activation,
                **_weight_args(arm, seed, f"conv_{i}", prefix, conv=True)))
            layers += _after_hidden(arm, seed, i, dense=False, prefix=prefix)
            layers.append(keras.layers.MaxPooling2D(2, name=f"{prefix}pool_{i}"))
    layers.append(keras.layers.Flatten(name=f"{prefix}flatten"))
    dropout = arm.get("dropout")
    if dropout is not None and dropout.input_rate > 0:
        layers.append(keras.layers.Dropout(
            dropout.input_rate, seed=layer_seed(seed, "dropout_input"),
            name=f"{prefix}dropout_input"))
    for i, units in enumerate(model.hidden):
        layers.append(keras.layers.Dense(units, activation=model.activation,
                                         **_weight_args(arm, seed, f"hidden_{i}", prefix)))
        layers += _after_hidden(arm, seed, i, dense=True, prefix=prefix)
    layers.append(keras.layers.Dense(classes, activation="softmax",
                                     **_weight_args(arm, seed, "output", prefix, is_output=True)))
    return layers


def build_model(model: Model, arm: Arm, input_shape: tuple, classes: int, seed: int,
                flip_ok: bool = False) -> keras.Model:
    """The network for one cell. Outputs class probabilities (softmax)."""
    return keras.Sequential([keras.Input(shape=input_shape, name="image"),
                             *model_layers(model, arm, classes, seed, flip_ok)],
                            name=model.name)


def kernels(layers: list) -> dict:
    """Layer name -> kernel array of every Dense and Conv2D layer, in order."""
    return {layer.name: keras.ops.convert_to_numpy(layer.kernel)
            for layer in layers if isinstance(layer, keras.layers.Dense | keras.layers.Conv2D)}
