"""The keras.io MNIST convnet (keras.io/examples/vision/mnist_convnet) as a regbench builder.

Its Conv2D and Dense layers come from `reg`, so they carry each arm's kernel penalty and
max-norm; its Dropout(0.5) is `reg.dropout()`, the arm's dropout (none in `none`).
"""

import keras
from keras import layers


def convnet(input_shape, classes, reg):
    return keras.Sequential([
        keras.Input(shape=input_shape),
        reg.augment(),
        reg.conv(32, kernel_size=(3, 3), activation="relu"),
        reg.batchnorm(),
        layers.MaxPooling2D(pool_size=(2, 2)),
        reg.conv(64, kernel_size=(3, 3), activation="relu"),
        reg.batchnorm(),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        reg.dropout(),
        reg.dense(classes, activation="softmax", output=True),
    ])
