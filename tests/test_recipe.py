"""regbench.recipe: settings objects are plain, validated data with Keras-style errors."""

import dataclasses
import itertools
import json
import math

import pytest

from regbench.errors import RegbenchError
from regbench.recipe import (
    CONFLICTS,
    L1,
    L1L2,
    L2,
    TECHNIQUES,
    Arm,
    Augmentation,
    BatchNorm,
    Dropout,
    EarlyStopping,
    MaxNorm,
    Model,
    Training,
    check_combination,
    from_dict,
    technique_from_dict,
    to_dict,
)

WHERE = "study.toml: techniques.x"  # where an error happened, as the study loader names it
VALID_TECHNIQUES = ("l1, l2, l1_l2, dropout, batchnorm, augmentation, early_stopping, max_norm, "
                    "kl_sparsity, l1_late, weight_decay, random_crop, gaussian_noise")

# Every settings object, at its defaults and with every field off its default.
SETTINGS = [
    L1(), L1(factor=0.5, layers="hidden"),
    L2(), L2(factor=1e-4, layers="hidden"),
    L1L2(), L1L2(l1=0.1, l2=0.2, layers="hidden"),
    Dropout(), Dropout(rate=0.2, input_rate=0.1),
    BatchNorm(), BatchNorm(momentum=0.9, epsilon=1e-5),
    Augmentation(), Augmentation(rotation=10.0, shift=0.1, flip=True),
    Augmentation(flip=False),
    EarlyStopping(), EarlyStopping(patience=0, min_delta=0.01, restore_best_weights=True),
    MaxNorm(), MaxNorm(c=2.0),
    Model(), Model(name="cnn", hidden=(128, 64), activation="tanh", filters=(8, 16)),
    Training(), Training(optimizer="sgd", learning_rate=0.1, momentum=0.9, batch_size=128,
                         epochs=3, validation_fraction=0.2, train_subset=1000),
]


def test_registry_names_every_technique_by_what_it_is():
    assert list(TECHNIQUES) == VALID_TECHNIQUES.split(", ")
    for kind, cls in TECHNIQUES.items():
        assert cls.kind == kind
        assert "kind" not in {f.name for f in dataclasses.fields(cls)}  # not a setting


@pytest.mark.parametrize("settings", SETTINGS, ids=repr)
def test_round_trip_through_plain_data(settings):
    plain = to_dict(settings)
    assert from_dict(type(settings), plain, WHERE) == settings
    # Plain means JSON: what a result row and a cell key are made of.
    assert from_dict(type(settings), json.loads(json.dumps(plain)), WHERE) == settings


@pytest.mark.parametrize("settings", [s for s in SETTINGS if hasattr(s, "kind")], ids=repr)
def test_technique_round_trip_by_kind(settings):
    assert technique_from_dict(settings.kind, to_dict(settings), WHERE) == settings


def test_to_dict_gives_lists_for_tuples():
    assert to_dict(Model(hidden=(64, 32))) == {
        "name": "mlp", "hidden": [64, 32], "activation": "relu", "filters": [32, 64], "crop": 0,
        "standardize": False}


def test_lists_become_tuples_so_settings_stay_hashable_and_equal():
    model = Model(hidden=[64, 32])
    assert model.hidden == (64, 32)
    assert model == Model(hidden=(64, 32)) and hash(model) == hash(Model(hidden=(64, 32)))


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Dropout().rate = 0.1


def test_integers_are_accepted_for_floats_and_stored_as_floats():
    l2 = from_dict(L2, {"factor": 1}, WHERE)
    assert l2 == L2(factor=1.0) and isinstance(l2.factor, float)


# --- out of range: the Keras message, word for word ------------------------------------------

OUT_OF_RANGE = [
    (Dropout, {"rate": 1.5},
     "Invalid value for argument `rate`. Expected a float in [0, 1). Received: rate=1.5"),
    (Dropout, {"rate": -0.1},
     "Invalid value for argument `rate`. Expected a float in [0, 1). Received: rate=-0.1"),
    (Dropout, {"input_rate": 1.0}, "Invalid value for argument `input_rate`. "
                                   "Expected a float in [0, 1). Received: input_rate=1.0"),
    (L1, {"factor": -0.01},
     "Invalid value for argument `factor`. Expected a finite float >= 0. Received: factor=-0.01"),
    (L2, {"factor": float("inf")},
     "Invalid value for argument `factor`. Expected a finite float >= 0. Received: factor=inf"),
    (L2, {"factor": float("nan")},
     "Invalid value for argument `factor`. Expected a finite float >= 0. Received: factor=nan"),
    (L1L2, {"l2": -1.0},
     "Invalid value for argument `l2`. Expected a finite float >= 0. Received: l2=-1.0"),
    (L1, {"layers": "output"},
     "Invalid value for argument `layers`. Expected one of all, hidden. Received: layers='output'"),
    (BatchNorm, {"momentum": 1.0},
     "Invalid value for argument `momentum`. Expected a float in [0, 1). Received: momentum=1.0"),
    (BatchNorm, {"epsilon": 0.0},
     "Invalid value for argument `epsilon`. Expected a finite float > 0. Received: "
     "epsilon=0.0"),
    (BatchNorm, {"epsilon": math.inf},
     "Invalid value for argument `epsilon`. Expected a finite float > 0. Received: "
     "epsilon=inf"),
    (Augmentation, {"rotation": 181.0}, "Invalid value for argument `rotation`. "
                                        "Expected degrees in [0, 180]. Received: rotation=181.0"),
    (Augmentation, {"shift": 1.0},
     "Invalid value for argument `shift`. Expected a float in [0, 1). Received: shift=1.0"),
    (Augmentation, {"flip": "yes"},
     "Invalid value for argument `flip`. Expected one of auto, True, False. Received: flip='yes'"),
    # 1 == True in Python, but a flip of 1 is neither a bool nor "auto".
    (Augmentation, {"flip": 1},
     "Invalid value for argument `flip`. Expected one of auto, True, False. Received: flip=1"),
    (EarlyStopping, {"patience": -1},
     "Invalid value for argument `patience`. Expected an integer >= 0. Received: patience=-1"),
    (EarlyStopping, {"min_delta": -0.1}, "Invalid value for argument `min_delta`. "
                                         "Expected a finite float >= 0. Received: min_delta=-0.1"),
    (MaxNorm, {"c": 0.0},
     "Invalid value for argument `c`. Expected a finite float > 0. Received: c=0.0"),
    (Model, {"name": "resnet"},
     "Invalid value for argument `name`. Expected one of mlp, cnn, alexnet. "
     "Received: name='resnet'"),
    (Model, {"activation": "swish"}, "Invalid value for argument `activation`. Expected one of "
                                     "relu, sigmoid, tanh, elu, gelu. "
                                     "Received: activation='swish'"),
    (Model, {"hidden": []}, "Invalid value for argument `hidden`. "
                            "Expected a non-empty list of positive integers. Received: hidden=[]"),
    (Model, {"hidden": [64, 0]}, "Invalid value for argument `hidden`. "
                                 "Expected a non-empty list of positive integers. "
                                 "Received: hidden=[64, 0]"),
    (Model, {"hidden": [64.0]}, "Invalid value for argument `hidden`. "
                                "Expected a non-empty list of positive integers. "
                                "Received: hidden=[64.0]"),
    (Model, {"hidden": [True]}, "Invalid value for argument `hidden`. "
                                "Expected a non-empty list of positive integers. "
                                "Received: hidden=[True]"),
    (Model, {"filters": [-1]}, "Invalid value for argument `filters`. "
                               "Expected a list of positive integers. Received: filters=[-1]"),
    (Training, {"epochs": 0},
     "Invalid value for argument `epochs`. Expected an integer > 0. Received: epochs=0"),
    (Training, {"batch_size": 0},
     "Invalid value for argument `batch_size`. Expected an integer > 0. Received: batch_size=0"),
    (Training, {"learning_rate": 0.0}, "Invalid value for argument `learning_rate`. "
                                       "Expected a finite float > 0. Received: learning_rate=0.0"),
    (Training, {"momentum": 1.0},
     "Invalid value for argument `momentum`. Expected a float in [0, 1). Received: momentum=1.0"),
    (Training, {"validation_fraction": 1.0}, "Invalid value for argument `validation_fraction`. "
                                             "Expected a float in (0, 1). "
                                             "Received: validation_fraction=1.0"),
    (Training, {"validation_fraction": 0.0}, "Invalid value for argument `validation_fraction`. "
                                             "Expected a float in (0, 1). "
                                             "Received: validation_fraction=0.0"),
    (Training, {"train_subset": -1}, "Invalid value for argument `train_subset`. "
                                     "Expected an integer >= 0 (0 = all). "
                                     "Received: train_subset=-1"),
    (Training, {"optimizer": "adagrad"}, "Invalid value for argument `optimizer`. "
                                         "Expected one of adam, sgd, rmsprop. "
                                         "Received: optimizer='adagrad'"),
]


@pytest.mark.parametrize("cls, values, message", OUT_OF_RANGE,
                         ids=[f"{c.__name__}-{v}" for c, v, _ in OUT_OF_RANGE])
def test_out_of_range_is_a_keras_style_value_error(cls, values, message):
    with pytest.raises(ValueError) as raised:
        cls(**values)
    assert str(raised.value) == message


@pytest.mark.parametrize("cls, values, message", OUT_OF_RANGE,
                         ids=[f"{c.__name__}-{v}" for c, v, _ in OUT_OF_RANGE])
def test_out_of_range_from_plain_data_is_one_line_naming_the_place(cls, values, message):
    with pytest.raises(RegbenchError) as raised:
        from_dict(cls, values, WHERE)
    assert str(raised.value) == f"{WHERE}: {message}"


@pytest.mark.parametrize("cls, name", [(Training, "epochs"), (Training, "batch_size"),
                                       (Training, "train_subset"), (EarlyStopping, "patience")])
def test_a_bool_is_not_an_integer(cls, name):
    with pytest.raises(ValueError, match=f"Received: {name}=True$"):
        cls(**{name: True})


@pytest.mark.parametrize("value", [0.0, 0.999])
def test_rate_bounds_are_half_open(value):
    assert Dropout(rate=value).rate == value


# --- unknown keys and wrong types ------------------------------------------------------------

VALID_KEYS = {
    L1: "factor, layers",
    L2: "factor, layers",
    L1L2: "l1, l2, layers",
    Dropout: "rate, input_rate",
    BatchNorm: "momentum, epsilon, position",
    Augmentation: "rotation, shift, flip",
    EarlyStopping: "patience, min_delta, restore_best_weights",
    MaxNorm: "c",
    Model: "name, hidden, activation, filters, crop, standardize, builder",
    Training: "optimizer, learning_rate, momentum, batch_size, epochs, validation_fraction, "
              "train_subset, lr_decay, momentum_start, momentum_epochs, curve_every",
}


@pytest.mark.parametrize("cls", VALID_KEYS, ids=lambda c: c.__name__)
def test_unknown_key_lists_the_valid_keys(cls):
    with pytest.raises(RegbenchError) as raised:
        from_dict(cls, {"bogus": 1}, WHERE)
    assert str(raised.value) == f"{WHERE}: unknown key `bogus`. Valid keys: {VALID_KEYS[cls]}"


def test_a_misspelt_key_is_reported_not_ignored():
    with pytest.raises(RegbenchError, match="unknown key `rat`. Valid keys: rate, input_rate"):
        from_dict(Dropout, {"rat": 0.1}, WHERE)


WRONG_TYPES = [
    (Dropout, {"rate": "0.5"}, "rate: expected a number, got '0.5'"),
    (Dropout, {"rate": True}, "rate: expected a number, got True"),
    (L1L2, {"l1": [0.01]}, "l1: expected a number, got [0.01]"),
    (Training, {"epochs": 2.5}, "epochs: expected an integer, got 2.5"),
    (Training, {"epochs": True}, "epochs: expected an integer, got True"),
    (Training, {"batch_size": "32"}, "batch_size: expected an integer, got '32'"),
    (EarlyStopping, {"patience": 1.0}, "patience: expected an integer, got 1.0"),
    (EarlyStopping, {"restore_best_weights": "yes"},
     "restore_best_weights: expected true or false, got 'yes'"),
    (EarlyStopping, {"restore_best_weights": 1}, "restore_best_weights: expected true or false, "
                                                 "got 1"),
    (Model, {"hidden": 64}, "hidden: expected a list, got 64"),
    (Model, {"name": 3}, "name: expected a string, got 3"),
    (L1, {"layers": 1}, "layers: expected a string, got 1"),
]


@pytest.mark.parametrize("cls, values, message", WRONG_TYPES,
                         ids=[f"{c.__name__}-{v}" for c, v, _ in WRONG_TYPES])
def test_wrong_type_names_the_field(cls, values, message):
    with pytest.raises(RegbenchError) as raised:
        from_dict(cls, values, WHERE)
    assert str(raised.value) == f"{WHERE}.{message}"


def test_parameters_must_be_a_table():
    with pytest.raises(RegbenchError) as raised:
        from_dict(Dropout, [0.5], WHERE)
    assert str(raised.value) == f"{WHERE}: expected a table, got list"


@pytest.mark.parametrize("kind", ["decay", "L2", "none", 3, ["l2"]])
def test_unknown_technique_lists_the_valid_names(kind):
    with pytest.raises(RegbenchError) as raised:
        technique_from_dict(kind, {}, WHERE)
    assert str(raised.value) == (f"{WHERE}: unknown technique `{kind}`. "
                                 f"Valid techniques: {VALID_TECHNIQUES}")


# --- combinations ----------------------------------------------------------------------------

@pytest.mark.parametrize("techniques, reason", [
    ([L1L2(), L1()], "`l1_l2` already holds an L1 term; use `l1_l2` or `l1`"),
    ([L1(), L1L2()], "`l1_l2` already holds an L1 term; use `l1_l2` or `l1`"),
    ([L2(), Dropout(), L1L2()], "`l1_l2` already holds an L2 term; use `l1_l2` or `l2`"),
])
def test_conflicting_techniques_are_refused(techniques, reason):
    with pytest.raises(RegbenchError) as raised:
        check_combination(techniques, "s.toml: arm `a`")
    assert str(raised.value) == f"s.toml: arm `a`: conflicting techniques: {reason}"


def test_a_kind_twice_is_refused_even_with_different_settings():
    with pytest.raises(RegbenchError) as raised:
        check_combination([L2(factor=0.1), Dropout(), L2(factor=0.2)], "s.toml: arm `a`")
    assert str(raised.value) == "s.toml: arm `a`: technique `l2` appears twice in one arm"


ALLOWED_PAIRS = [pair for pair in itertools.combinations(TECHNIQUES, 2)
                 if frozenset(pair) not in CONFLICTS]


@pytest.mark.parametrize("pair", ALLOWED_PAIRS, ids="+".join)
def test_every_other_pair_combines(pair):
    check_combination([TECHNIQUES[kind]() for kind in pair], WHERE)


def test_all_compatible_techniques_in_one_arm():
    check_combination([cls() for kind, cls in TECHNIQUES.items()
                       if kind not in ("l1_l2", "l1_late", "weight_decay")], WHERE)


def test_arm_get_finds_a_technique_by_kind():
    arm = Arm("l2+dropout", (L2(factor=0.1), Dropout()))
    assert arm.get("l2") == L2(factor=0.1)
    assert arm.get("l1") is None
    assert Arm("none").techniques == () and Arm("none").get("dropout") is None
