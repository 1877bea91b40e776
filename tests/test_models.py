"""regbench.models: where each technique goes, checked with closed forms and layer lists."""

import keras
import numpy as np
import pytest

from regbench.engine.program import kernels
from regbench.models import build_model, layer_seed
from regbench.recipe import (
    L1,
    L1L2,
    L2,
    Arm,
    Augmentation,
    BatchNorm,
    Dropout,
    EarlyStopping,
    GaussianNoise,
    MaxNorm,
    Model,
)

MNIST = (28, 28, 1)
MLP = Model(hidden=(16,))                       # kernels 784x16 and 16x10
MLP_KERNELS = {"hidden": 784 * 16, "all": 784 * 16 + 16 * 10}
CNN = Model(name="cnn", filters=(2, 3), hidden=(4,))
# conv 3x3x1x2, conv 3x3x2x3, dense (7*7*3)x4 after two 2x2 poolings, output 4x10
CNN_KERNELS = {"hidden": 18 + 54 + 147 * 4, "all": 18 + 54 + 147 * 4 + 40}


def arm(*techniques):
    return Arm("+".join(t.kind for t in techniques) or "none", techniques)


def build(*techniques, model=MLP, seed=0, flip_ok=False):
    return build_model(model, arm(*techniques), MNIST, 10, seed, flip_ok=flip_ok)


def fill_kernels(net, value):
    """Every Dense/Conv2D kernel set to `value`, every bias to zero."""
    for layer in net.layers:
        if isinstance(layer, keras.layers.Dense | keras.layers.Conv2D):
            layer.kernel.assign(np.full(layer.kernel.shape, value, dtype="float32"))
            layer.bias.assign(np.zeros(layer.bias.shape, dtype="float32"))


def penalty(net):
    return float(sum(float(keras.ops.convert_to_numpy(loss)) for loss in net.losses))


def names(net):
    return [layer.name for layer in net.layers]


# --- penalties: closed forms -----------------------------------------------------------------

PENALTIES = [
    # (techniques, penalty per kernel weight as a function of the weight value w, on: layers)
    ((L1(factor=0.01),), lambda w: 0.01 * abs(w), "all"),
    ((L1(factor=0.01, layers="hidden"),), lambda w: 0.01 * abs(w), "hidden"),
    ((L2(factor=0.01),), lambda w: 0.01 * w * w, "all"),
    ((L2(factor=0.01, layers="hidden"),), lambda w: 0.01 * w * w, "hidden"),
    ((L1L2(l1=0.01, l2=0.02),), lambda w: 0.01 * abs(w) + 0.02 * w * w, "all"),
    ((L1L2(l1=0.01, l2=0.02, layers="hidden"),), lambda w: 0.01 * abs(w) + 0.02 * w * w,
     "hidden"),
]


@pytest.mark.parametrize("model, counts", [(MLP, MLP_KERNELS), (CNN, CNN_KERNELS)],
                         ids=["mlp", "cnn"])
@pytest.mark.parametrize("value", [1.0, -2.0])
@pytest.mark.parametrize("techniques, per_weight, layers", PENALTIES,
                         ids=["l1", "l1-hidden", "l2", "l2-hidden", "l1_l2", "l1_l2-hidden"])
def test_penalty_closed_form(model, counts, value, techniques, per_weight, layers):
    net = build(*techniques, model=model)
    fill_kernels(net, value)
    assert penalty(net) == pytest.approx(per_weight(value) * counts[layers], rel=1e-5)


def test_penalties_of_several_techniques_add_up():
    net = build(L1(factor=0.01), L2(factor=0.02, layers="hidden"), Dropout())
    fill_kernels(net, 1.0)
    assert penalty(net) == pytest.approx(0.01 * MLP_KERNELS["all"] + 0.02 * MLP_KERNELS["hidden"],
                                         rel=1e-5)


@pytest.mark.parametrize("techniques", [(), (Dropout(),), (BatchNorm(),), (MaxNorm(),),
                                        (Augmentation(),), (EarlyStopping(),)],
                         ids=["none", "dropout", "batchnorm", "max_norm", "augmentation",
                              "early_stopping"])
def test_no_penalty_without_a_penalty_technique(techniques):
    assert build(*techniques).losses == []


def test_biases_are_never_penalized():
    net = build(L1L2(l1=0.1, l2=0.1))
    fill_kernels(net, 0.0)
    for layer in net.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.bias.assign(np.ones(layer.bias.shape, dtype="float32"))
    assert penalty(net) == 0.0


# --- max_norm --------------------------------------------------------------------------------

def unit_norms(layer):
    """The L2 norm of each output unit's incoming weights."""
    k = keras.ops.convert_to_numpy(layer.kernel)
    return np.sqrt(np.square(k).reshape(-1, k.shape[-1]).sum(axis=0))


@pytest.mark.parametrize("model", [MLP, CNN], ids=["mlp", "cnn"])
def test_max_norm_holds_after_an_update(model):
    c = 0.5
    net = build(MaxNorm(c=c), model=model)
    weighted = [layer for layer in net.layers if hasattr(layer, "kernel")]
    assert all(unit_norms(layer).max() > c for layer in weighted)  # the constraint must act
    net.compile(optimizer=keras.optimizers.SGD(1.0), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    net.train_on_batch(rng.random((8, *MNIST), dtype=np.float32), rng.integers(0, 10, 8))
    for layer in weighted:
        assert unit_norms(layer).max() <= c * (1 + 1e-5), layer.name


# --- which layers, where ---------------------------------------------------------------------

ALL_EXTRAS = (Augmentation(flip=True), BatchNorm(momentum=0.9, epsilon=1e-4),
              Dropout(rate=0.4, input_rate=0.2))


@pytest.mark.parametrize("model, techniques, expected", [
    (MLP, (), ["flatten", "hidden_0", "output"]),
    (Model(hidden=(8, 4)), (Dropout(),),
     ["flatten", "hidden_0", "dropout_0", "hidden_1", "dropout_1", "output"]),
    (Model(hidden=(8, 4)), (BatchNorm(),),
     ["flatten", "hidden_0", "bn_0", "hidden_1", "bn_1", "output"]),
    (Model(hidden=(8, 4)), ALL_EXTRAS,
     ["rotate", "shift", "flip", "flatten", "dropout_input", "hidden_0", "bn_0", "dropout_0",
      "hidden_1", "bn_1", "dropout_1", "output"]),
    (CNN, (), ["conv_0", "pool_0", "conv_1", "pool_1", "flatten", "hidden_0", "output"]),
    # The convolutional blocks get batch normalization but no dropout.
    (CNN, (Dropout(),),
     ["conv_0", "pool_0", "conv_1", "pool_1", "flatten", "hidden_0", "dropout_0", "output"]),
    (CNN, ALL_EXTRAS,
     ["rotate", "shift", "flip", "conv_0", "conv_bn_0", "pool_0", "conv_1", "conv_bn_1",
      "pool_1", "flatten", "dropout_input", "hidden_0", "bn_0", "dropout_0", "output"]),
], ids=["mlp-none", "mlp-dropout", "mlp-batchnorm", "mlp-all", "cnn-none", "cnn-dropout",
        "cnn-all"])
def test_layers_are_where_the_docstring_says(model, techniques, expected):
    assert names(build(*techniques, model=model)) == expected


def test_extra_layers_carry_their_settings():
    net = build(*ALL_EXTRAS, model=Model(hidden=(8, 4)))
    layer = {layer.name: layer for layer in net.layers}
    assert isinstance(layer["rotate"], keras.layers.RandomRotation)
    assert layer["rotate"].get_config()["factor"] == pytest.approx((-20 / 360, 20 / 360))
    assert isinstance(layer["shift"], keras.layers.RandomTranslation)
    assert layer["shift"].get_config()["height_factor"] == pytest.approx(0.2)
    assert layer["shift"].get_config()["width_factor"] == pytest.approx(0.2)
    assert isinstance(layer["flip"], keras.layers.RandomFlip)
    assert layer["flip"].get_config()["mode"] == "horizontal"
    assert isinstance(layer["bn_1"], keras.layers.BatchNormalization)
    assert (layer["bn_1"].momentum, layer["bn_1"].epsilon) == (0.9, 1e-4)
    assert isinstance(layer["dropout_1"], keras.layers.Dropout)
    assert layer["dropout_1"].rate == 0.4 and layer["dropout_input"].rate == 0.2
    assert layer["output"].get_config()["activation"] == "softmax"


def test_zero_rotation_and_shift_add_no_layers():
    assert names(build(Augmentation(rotation=0.0, shift=0.0))) == ["flatten", "hidden_0",
                                                                   "output"]


@pytest.mark.parametrize("flip, flip_ok, flips", [
    ("auto", False, False), ("auto", True, True),
    (True, False, True), (True, True, True),
    (False, False, False), (False, True, False),
])
def test_flip_only_where_allowed(flip, flip_ok, flips):
    net = build(Augmentation(flip=flip), flip_ok=flip_ok)
    assert ("flip" in names(net)) == flips


def test_penalty_and_constraint_placement():
    for techniques, output_regularized in [((L2(),), True), ((L2(layers="hidden"),), False)]:
        layers = {layer.name: layer for layer in build(*techniques, MaxNorm(), model=CNN).layers}
        for name in ("conv_0", "conv_1", "hidden_0"):
            assert layers[name].kernel_regularizer is not None
        assert (layers["output"].kernel_regularizer is not None) == output_regularized
        for name in ("conv_0", "conv_1", "hidden_0", "output"):
            assert layers[name].bias_regularizer is None
            assert isinstance(layers[name].kernel_constraint, keras.constraints.MaxNorm)


# --- the control: shared layers start from identical weights ---------------------------------

SAME_START = [(), (Dropout(),), (BatchNorm(),), (L2(),), (MaxNorm(),), (Augmentation(),),
              (L2(), Dropout(), EarlyStopping())]


@pytest.mark.parametrize("model", [MLP, CNN], ids=["mlp", "cnn"])
def test_shared_layers_start_identical_across_arms_at_one_seed(model):
    start = [kernels(build(*techniques, model=model, seed=3).layers)
             for techniques in SAME_START]
    for other in start[1:]:
        assert other.keys() == start[0].keys()
        for name in start[0]:
            np.testing.assert_array_equal(other[name], start[0][name], err_msg=name)


@pytest.mark.parametrize("model", [MLP, CNN], ids=["mlp", "cnn"])
def test_seeds_give_different_initial_weights(model):
    a = kernels(build(model=model, seed=0).layers)
    b = kernels(build(model=model, seed=1).layers)
    for name in a:
        assert not np.array_equal(a[name], b[name]), name


def test_initial_weights_do_not_depend_on_build_history():
    first = kernels(build(Dropout(), seed=5).layers)
    build(BatchNorm(), seed=6)
    keras.utils.set_random_seed(123)
    again = kernels(build(Dropout(), seed=5).layers)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])


def test_layer_seed_depends_on_seed_and_name_only():
    assert layer_seed(0, "hidden_0") == layer_seed(0, "hidden_0")
    assert len({layer_seed(0, "hidden_0"), layer_seed(1, "hidden_0"),
                layer_seed(0, "output")}) == 3
    assert 0 <= layer_seed(2**40, "x" * 100) < 2**31


@pytest.mark.parametrize("techniques", [(Dropout(rate=0.5, input_rate=0.5),),
                                        (Augmentation(flip=True),), (GaussianNoise(),)],
                         ids=["dropout", "augmentation", "gaussian_noise"])
def test_train_time_layers_are_inactive_at_inference(techniques):
    x = np.random.default_rng(0).random((4, *MNIST), dtype=np.float32)
    plain = keras.ops.convert_to_numpy(build(seed=2)(x, training=False))
    net = build(*techniques, seed=2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(net(x, training=False)), plain,
                               rtol=1e-6)
    assert not np.allclose(keras.ops.convert_to_numpy(net(x, training=True)), plain)


def test_gaussian_noise_adds_noise_of_its_stddev_to_the_input_after_augmentation():
    net = build(Augmentation(), GaussianNoise(stddev=0.3), seed=1)
    names = [layer.name for layer in net.layers]
    assert names[:3] == ["rotate", "shift", "noise"]
    x = np.zeros((256, *MNIST), np.float32)
    noisy = keras.ops.convert_to_numpy(net.get_layer("noise")(x, training=True))
    assert noisy.std() == pytest.approx(0.3, rel=0.02) and abs(noisy.mean()) < 0.01
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(net.get_layer("noise")(x, training=False)), x)


def test_kernels_lists_dense_and_conv_kernels_in_model_order():
    found = kernels(build(BatchNorm(), model=CNN).layers)
    assert list(found) == ["conv_0", "conv_1", "hidden_0", "output"]
    assert [k.shape for k in found.values()] == [(3, 3, 1, 2), (3, 3, 2, 3), (147, 4), (4, 10)]
