"""regbench.macs: multiply-add counts checked against closed forms computed by hand."""

from __future__ import annotations

import random

import numpy as np
import pytest

from regbench import macs
from regbench.bench import cases, timing
from regbench.recipe import Model

# --- pure helpers ---------------------------------------------------------------------------


def test_dense_and_conv_macs_closed_forms():
    assert macs.dense_macs(784, 64) == 50_176
    assert macs.dense_macs(3, 5, positions=7) == 105
    # 4x5 output positions, 3x2 kernel over 2 input channels, 3 filters.
    assert macs.conv2d_macs(4, 5, 3, 2, 2, 3) == 4 * 5 * 3 * 2 * 2 * 3
    assert macs.conv2d_macs(4, 4, 3, 3, 8, 8, groups=4) == 4 * 4 * 3 * 3 * 2 * 8


def test_train_flops_leave_out_the_first_layers_input_gradient():
    assert macs.train_flops(1) == 2 + 4
    # 784-64-10: forward 2 x 50,816; weight gradients 2 x 50,816; input gradients only for
    # the output layer's 640 multiply-adds (nobody needs the gradient for the pixels).
    assert macs.train_flops(50_816, first_layer_macs=50_176) == 4 * 50_816 + 2 * 640


def test_the_tutorial_mlps_training_flops_from_the_built_network():
    from regbench.recipe import Model

    assert macs.cell_train_flops(Model(hidden=(64,)), "mnist") == 4 * 50_816 + 2 * 640


# --- a built network ------------------------------------------------------------------------


def test_forward_macs_of_a_small_model_by_hand():
    import keras

    net = keras.Sequential([
        keras.Input(shape=(8, 8, 3)),
        keras.layers.Conv2D(4, 3, padding="same"),       # 8*8 positions * 3*3*3 * 4 = 6912
        keras.layers.MaxPooling2D(2),                    # 4x4x4
        keras.layers.Conv2D(2, (3, 2), padding="valid"),  # 2*3 positions * 3*2*4 * 2 = 288
        keras.layers.Flatten(),                          # 12
        keras.layers.BatchNormalization(),               # not counted
        keras.layers.Dense(5),                           # 12 * 5 = 60
        keras.layers.Dropout(0.5),
        keras.layers.Dense(2),                           # 5 * 2 = 10
    ])
    assert macs.forward_macs(net) == 6912 + 288 + 60 + 10


def test_dense_on_a_sequence_counts_every_position():
    import keras

    net = keras.Sequential([keras.Input(shape=(7, 3)), keras.layers.Dense(5)])
    assert macs.forward_macs(net) == 7 * 3 * 5


@pytest.mark.parametrize(("problem", "expected"), [
    ("mnist_mlp", 784 * 64 + 64 * 10),
    ("mnist_mlp_wide", 784 * 1024 + 1024 * 1024 + 1024 * 2048 + 2048 * 10),
    # conv 32x32 x 3x3x3 x 32, pool, conv 16x16 x 3x3x32 x 64, pool, 8*8*64 -> 128 -> 10
    ("cifar10_cnn", 32 * 32 * 27 * 32 + 16 * 16 * 288 * 64 + 4096 * 128 + 128 * 10),
])
@pytest.mark.parametrize("technique", ["none", "l2+dropout+batchnorm+augmentation", "max_norm"])
def test_problem_macs_do_not_depend_on_the_technique(problem, expected, technique):
    assert macs.forward_macs(timing.make_model(problem, technique)) == expected
    p = cases.PROBLEMS[problem]
    assert macs.cell_macs(p.model, p.dataset) == expected


# --- a cell's settings ----------------------------------------------------------------------

# The small AlexNet of Zhang et al. (2017) as ablations/published/zhang2017_table1_alexnet.toml
# sets it: a 28x28 centre crop of CIFAR-10; per block conv 5x5 'same', max-pool 3x3 stride 2
# 'same' (28 -> 14 -> 7), local response norm; then 7*7*64 -> 384 -> 192 -> 10.
ALEXNET = Model(name="alexnet", hidden=(384, 192), filters=(64, 64), crop=28, standardize=True)
ALEXNET_MACS = (28 * 28 * (5 * 5 * 3) * 64 + 14 * 14 * (5 * 5 * 64) * 64
                + 7 * 7 * 64 * 384 + 384 * 192 + 192 * 10)


@pytest.mark.parametrize(("model", "dataset", "expected"), [
    (Model(hidden=(64,)), "mnist", 784 * 64 + 64 * 10),  # the Keras tutorial's 784-64-10
    (Model(hidden=(64,)), "cifar10", 32 * 32 * 3 * 64 + 64 * 10),
    (Model(name="cnn", hidden=(128,), filters=(32, 64)), "mnist",
     28 * 28 * 9 * 32 + 14 * 14 * 288 * 64 + 7 * 7 * 64 * 128 + 128 * 10),
    # crop=28 on 32x32x3: the layers after the crop see 28x28x3.
    (Model(hidden=(64,), crop=28), "cifar10", 28 * 28 * 3 * 64 + 64 * 10),
    (Model(name="cnn", hidden=(128,), filters=(32, 64), crop=28), "cifar10",
     28 * 28 * 27 * 32 + 14 * 14 * 288 * 64 + 7 * 7 * 64 * 128 + 128 * 10),
    (ALEXNET, "cifar10", ALEXNET_MACS),
])
def test_cell_macs_closed_forms(model, dataset, expected):
    assert macs.cell_macs(model, dataset) == expected


def test_cell_macs_builds_once_per_model_and_dataset():
    macs.cell_layer_macs.cache_clear()
    for _ in range(3):
        macs.cell_macs(Model(hidden=(64,)), "mnist")
    macs.cell_macs(Model(hidden=(64,)), "fashion_mnist")
    assert macs.cell_layer_macs.cache_info().misses == 2


def _draws():
    """One draw from each random state a later training could start from."""
    import keras

    return (random.random(), np.random.random(),
            float(keras.ops.convert_to_numpy(keras.random.uniform(()))),
            keras.ops.convert_to_numpy(keras.initializers.GlorotUniform()((3, 2))).tolist())


def test_cell_macs_leaves_the_random_state_alone():
    """Counting between seeding and training changes nothing that training draws."""
    import keras

    keras.utils.set_random_seed(7)
    expected = _draws()
    keras.utils.set_random_seed(7)
    macs.cell_layer_macs.cache_clear()
    macs.cell_macs(ALEXNET, "cifar10")  # crop, standardization, convolutions, LRN
    macs.cell_macs(Model(name="cnn", filters=(8,)), "cifar10")
    assert _draws() == expected
