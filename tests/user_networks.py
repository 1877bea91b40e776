"""A user network for the engine's scenarios (`[model] builder = "user_networks:small"`)."""

import keras
from keras import layers


def small(input_shape, classes, reg):
    return keras.Sequential([
        keras.Input(shape=input_shape), reg.augment(), layers.Flatten(),
        reg.dense(16, activation="relu"), reg.batchnorm(), reg.dropout(),
        reg.dense(classes, activation="softmax", output=True)])
