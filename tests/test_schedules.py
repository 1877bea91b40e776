"""The settings and techniques the published reproductions added: learning-rate decay,
momentum schedules, late L1, weight decay, KL sparsity, crops and standardization, sweeps,
and keys that stay stable for cells stored before these existed."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from regbench import engine, models
from regbench.engine.program import Member, make_optimizer
from regbench.errors import RegbenchError
from regbench.recipe import (
    Arm,
    BatchNorm,
    KLSparsity,
    LateL1,
    Model,
    RandomCrop,
    Training,
    WeightDecay,
    check_combination,
    from_dict,
)
from regbench.study import Cell, load_study

WHERE = "study.toml: training"


# --- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("values, message", [
    ({"lr_decay": 0.0},
     "Invalid value for argument `lr_decay`. Expected a float in (0, 1]. Received: lr_decay=0.0"),
    ({"momentum_epochs": 5},
     "Invalid value for argument `momentum_epochs`. Expected 0 unless optimizer = \"sgd\". "
     "Received: momentum_epochs=5"),
    ({"optimizer": "sgd", "momentum_start": 0.5},
     "Invalid value for argument `momentum_start`. Expected 0 unless momentum_epochs > 0. "
     "Received: momentum_start=0.5"),
    ({"curve_every": -1}, "Invalid value for argument `curve_every`. Expected an integer >= 0 "
                          "(0 = off). Received: curve_every=-1"),
])
def test_training_settings_are_validated(values, message):
    with pytest.raises(RegbenchError) as raised:
        from_dict(Training, values, WHERE)
    assert str(raised.value) == f"{WHERE}: {message}"


@pytest.mark.parametrize("cls, values, message", [
    (KLSparsity, {"target": 1.0},
     "Invalid value for argument `target`. Expected a float in (0, 1). Received: target=1.0"),
    (LateL1, {"start": 1.0},
     "Invalid value for argument `start`. Expected a float in [0, 1). Received: start=1.0"),
    (WeightDecay, {"factor": -1.0}, "Invalid value for argument `factor`. Expected a finite "
                                    "float >= 0. Received: factor=-1.0"),
    (BatchNorm, {"position": "middle"}, "Invalid value for argument `position`. Expected one "
                                        "of after, before. Received: position='middle'"),
    (Model, {"crop": -2}, "Invalid value for argument `crop`. Expected an integer >= 0 "
                          "(0 = none). Received: crop=-2"),
])
def test_new_techniques_are_validated(cls, values, message):
    with pytest.raises(RegbenchError) as raised:
        from_dict(cls, values, "t")
    assert str(raised.value) == f"t: {message}"


@pytest.mark.parametrize("pair, reason", [
    (("l1_late", "l1"), "`l1_late` and `l1` both set the L1 term; use one"),
    (("weight_decay", "l2"), "`weight_decay` and `l2` both set the L2 term; use one"),
])
def test_conflicting_penalties_are_refused(write_study, pair, reason):
    path = write_study(f"""
        datasets = ["mnist"]
        [design]
        arms = ["{pair[0]}+{pair[1]}"]
    """)
    with pytest.raises(RegbenchError) as raised:
        load_study(path)
    assert str(raised.value) == (f"{path}: arm `{pair[0]}+{pair[1]}`: conflicting techniques: "
                                 f"{reason}")


def test_random_crop_needs_a_crop_size(write_study):
    path = write_study("""
        datasets = ["cifar10"]
        [design]
        arms = ["random_crop"]
    """)
    with pytest.raises(RegbenchError) as raised:
        load_study(path)
    assert str(raised.value) == (f"{path}: arm `random_crop`: technique `random_crop` needs a "
                                 "crop size: set model.crop (e.g. 28)")


# --- schedules in closed form ----------------------------------------------------------------

def test_learning_rate_decays_per_epoch():
    t = Training(learning_rate=0.01, lr_decay=0.95)
    assert [t.learning_rate_at(e) for e in range(3)] == pytest.approx([0.01, 0.0095, 0.009025])


def test_momentum_rises_linearly_then_stays():
    t = Training(optimizer="sgd", momentum_start=0.5, momentum=0.9, momentum_epochs=4)
    assert [t.momentum_at(e) for e in range(6)] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 0.9])
    assert Training(optimizer="sgd", momentum=0.9).momentum_at(0) == 0.9


def test_late_l1_first_epoch():
    assert LateL1(start=0.5).first_epoch(10) == 5
    assert LateL1(start=0.0).first_epoch(10) == 0


def test_scheduled_momentum_follows_the_velocity_rule():
    """v <- m v - lr g; w <- w + v, with m read from the variable at each step."""
    import keras

    opt = make_optimizer(Training(optimizer="sgd", learning_rate=0.1, momentum_start=0.5,
                                        momentum=0.9, momentum_epochs=2))
    w = keras.Variable(np.zeros(1, np.float32))
    grad = np.ones(1, np.float32)
    opt.apply_gradients([(grad, w)])              # v = -0.1, w = -0.1
    opt.momentum_value.assign(0.9)
    opt.apply_gradients([(grad, w)])              # v = 0.9 * -0.1 - 0.1 = -0.19, w = -0.29
    assert float(w.numpy()[0]) == pytest.approx(-0.29, rel=1e-6)


# --- penalties in closed form ----------------------------------------------------------------

def _net(arm: Arm, hidden=(4,), activation="relu", shape=(3, 3, 1)):
    return models.build_model(Model(hidden=hidden, activation=activation), arm, shape, 2, seed=0)


def _set_kernels(net, value: float) -> int:
    n = 0
    for layer in net.layers:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(np.full(layer.kernel.shape, value, np.float32))
            n += int(np.prod(layer.kernel.shape))
    return n


def test_weight_decay_is_half_factor_times_squares():
    net = _net(Arm("weight_decay", (WeightDecay(factor=0.2),)))
    n = _set_kernels(net, 2.0)
    assert Member(net.layers).penalty() == pytest.approx(0.2 / 2 * 4.0 * n, rel=1e-6)


def test_late_l1_is_off_until_its_epoch():
    technique = LateL1(factor=0.1, start=0.5)
    arm = Arm("l1_late", (technique,))
    net = _net(arm)
    n = _set_kernels(net, -1.0)
    models.set_epoch(net.layers, arm, 4, 10)
    assert Member(net.layers).penalty() == 0.0
    models.set_epoch(net.layers, arm, 5, 10)
    assert Member(net.layers).penalty() == pytest.approx(0.1 * n, rel=1e-6)


def test_kl_sparsity_penalty_closed_form():
    """Zero kernels and bias b: every hidden unit outputs relu(b); penalty = weight * units *
    KL(target || b), whatever the batch size."""
    arm = Arm("kl", (KLSparsity(target=0.1, weight=0.5),))
    net = _net(arm, hidden=(4, 4))
    _set_kernels(net, 0.0)
    for layer in net.layers:
        if layer.name.startswith("hidden"):
            layer.bias.assign(np.full(4, 0.3, np.float32))
    kl = 0.1 * math.log(0.1 / 0.3) + 0.9 * math.log(0.9 / 0.7)
    for batch in (1, 5):
        net(np.zeros((batch, 3, 3, 1), np.float32))
        activity = sum(float(loss) for loss in net.losses)  # no kernel penalties here
        # the first hidden layer's units are relu(0.3); the second's too (zero kernel)
        assert activity == pytest.approx(0.5 * 8 * kl, rel=1e-5)


def test_batchnorm_before_sits_between_affine_map_and_activation():
    net = _net(Arm("batchnorm", (BatchNorm(position="before"),)), activation="sigmoid")
    names = [layer.name for layer in net.layers]
    assert names[:4] == ["flatten", "hidden_0", "bn_0", "activation_0"]
    assert net.get_layer("hidden_0").activation.__name__ == "linear"


# --- input processing ------------------------------------------------------------------------

def test_crop_and_standardization_match_tensorflow():
    import tensorflow as tf

    x = np.random.default_rng(0).random((3, 8, 8, 3)).astype(np.float32)
    std = models.PerImageStandardization()(x).numpy()
    np.testing.assert_allclose(std, tf.image.per_image_standardization(x).numpy(), atol=1e-5)
    crop = models.PerImageRandomCrop(6, seed=1)
    np.testing.assert_array_equal(crop(x, training=False).numpy(), x[:, 1:7, 1:7])
    random = crop(x, training=True).numpy()
    for i in range(3):  # each image a real 6x6 window of itself
        assert any(np.array_equal(random[i], x[i, t:t + 6, s:s + 6])
                   for t in range(3) for s in range(3))


def test_local_response_norm_matches_tensorflow():
    import tensorflow as tf

    x = np.random.default_rng(1).normal(size=(2, 4, 4, 16)).astype(np.float32) * 10
    ours = models.LocalResponseNorm(**models.LRN)(x).numpy()
    np.testing.assert_allclose(ours, tf.nn.local_response_normalization(x, **models.LRN).numpy(),
                               rtol=1e-5)


def test_random_crop_is_a_technique_without_parameters():
    assert RandomCrop().kind == "random_crop"
    check_combination([RandomCrop(), WeightDecay()], "t")


# --- keys and sweeps -------------------------------------------------------------------------

def test_new_settings_at_their_defaults_leave_keys_unchanged():
    """A key stored before these settings existed (reports/mnist_tutorial) is still the key."""
    study = load_study("ablations/mnist_tutorial.toml")
    first = study.cells()[0]
    assert first.key == "0456ca6f5c7d1106"
    assert replace(first, training=replace(first.training, lr_decay=0.9)).key != first.key
    bn = Cell("s", "mnist", Model(), Training(), Arm("batchnorm", (BatchNorm(),)), 0)
    assert replace(bn, arm=Arm("batchnorm", (BatchNorm(position="before"),))).key != bn.key
    assert "position" not in bn.spec()["techniques"]["batchnorm"]


def test_sweep_trains_every_arm_and_seed_per_entry(write_study):
    study = load_study(write_study("""
        datasets = ["mnist"]
        seeds = 2
        sweep = [{train_subset = 100, epochs = 4}, {train_subset = 500, epochs = 2}]
        [training]
        epochs = 9
        [design]
        arms = ["none", "dropout"]
    """))
    cells = study.cells()
    assert len(cells) == 8 and len({c.key for c in cells}) == 8
    assert {(c.training.train_subset, c.training.epochs) for c in cells} == {(100, 4), (500, 2)}
    with pytest.raises(RegbenchError, match="--epochs: the study's sweep sets epochs"):
        study.with_overrides(epochs=3)


@pytest.mark.parametrize("sweep, message", [
    ("[{epoch = 3}]", "sweep[0]: unknown key `epoch`. Valid keys: optimizer"),
    ("[{epochs = 0}]", "sweep[0]: Invalid value for argument `epochs`. Expected an integer > 0"),
    ("[{epochs = 2}, {epochs = 2}]", "sweep[1]: repeats an earlier entry"),
    ("3", "sweep: expected a list of tables of training settings"),
])
def test_bad_sweeps_are_one_line_errors(write_study, sweep, message):
    path = write_study(f'datasets = ["mnist"]\nsweep = {sweep}\n[design]\narms = ["none"]\n')
    with pytest.raises(RegbenchError) as raised:
        load_study(path)
    assert str(raised.value).startswith(f"{path}: {message}")


# --- one real training -----------------------------------------------------------------------

@pytest.mark.slow
def test_schedules_and_curve_in_a_real_training(data_dir):
    """lr decay, a momentum ramp, late L1 and the accuracy curve, trained alone."""
    training = Training(optimizer="sgd", learning_rate=0.05, lr_decay=0.5, momentum_start=0.5,
                        momentum=0.9, momentum_epochs=1, batch_size=64, epochs=2,
                        train_subset=512, curve_every=8)
    cell = Cell("t", "mnist", Model(hidden=(16,)), training,
                Arm("l1_late", (LateL1(factor=1e-3, start=0.5),)), seed=0)
    engine.configure()
    (row,) = engine.fit([cell], str(data_dir))
    assert row["status"] == "ok" and row["epochs_run"] == 2
    assert row["penalty"] == pytest.approx(1e-3 * row["l1_norm"], rel=1e-4)  # L1 is on
    curve = row["curve"]
    assert curve["step"] == sorted(curve["step"]) and curve["step"][-1] == 16  # 2 x 8 steps
    assert len(curve["test_acc"]) == len(curve["step"]) and 0 < curve["test_acc"][-1] <= 1
    assert curve["test_acc"][-1] == pytest.approx(row["test_acc"], abs=1e-6)  # float32 metric
