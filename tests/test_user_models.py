"""User models (`[model] builder`): every technique of an arm applied to the user's network,
paired initial weights across arms, keys that follow the builder's source, and bad builders
refused in one line when the study is read."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from regbench import engine, user_models
from regbench.engine import plan
from regbench.errors import RegbenchError
from regbench.study import load_study

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "keras_convnet.toml"
MNIST = ((28, 28, 1), 10)

PLAIN = '''
import keras
from keras import layers


def dense_net(input_shape, classes, reg):  # plain Keras layers: no helper at all
    return keras.Sequential([keras.Input(shape=input_shape), layers.Flatten(),
                             layers.Dense(16, activation="relu"),
                             layers.Dense(classes, activation="softmax")])


def not_a_model(input_shape, classes, reg):
    return "a string"


def raises(input_shape, classes, reg):
    raise ValueError("no such layer size")


def wrong_output(input_shape, classes, reg):
    return keras.Sequential([keras.Input(shape=input_shape), layers.Flatten(),
                             layers.Dense(classes + 1, activation="softmax")])


def wrong_input(input_shape, classes, reg):
    return keras.Sequential([keras.Input(shape=(32, 32, 3)), layers.Flatten(),
                             layers.Dense(classes, activation="softmax")])
'''

TECHNIQUES = '''
[techniques.l2]
factor = 0.01
[techniques.hidden_l1]
type = "l1"
factor = 0.001
layers = "hidden"
[techniques.max_norm]
c = 2.0
[techniques.dropout]
rate = 0.5
[techniques.batchnorm]
[techniques.augmentation]
rotation = 10.0
shift = 0.1
'''


def study_text(builder: str, arms: list[str], techniques: str = TECHNIQUES) -> str:
    return textwrap.dedent(f'''
        name = "user"
        datasets = ["mnist"]
        seeds = 1
        [model]
        builder = "{builder}"
        [training]
        epochs = 1
        train_subset = 256
        ''') + techniques + f"[design]\narms = {arms!r}\n".replace("'", '"')


@pytest.fixture
def plain(tmp_path):
    (tmp_path / "plain.py").write_text(PLAIN)
    return tmp_path


def arms_of(study) -> dict:
    return {arm.label: arm for arm in study.arms}


def built(study, label: str, seed: int = 0):
    return user_models.build(study.model, arms_of(study)[label], *MNIST, seed)


def kernels(net) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(layer.kernel) for layer in user_models.weight_layers(net)]


# --- the keras.io convnet ------------------------------------------------------------------

def test_the_keras_io_convnet_has_its_34826_weights_in_none_and_fits_in_25_lines():
    study = load_study(EXAMPLE)
    net = built(study, "none")
    assert net.count_params() == 34_826
    source = (REPO / "examples" / "keras_convnet.py").read_text()
    body = source[source.index("import keras"):].strip().splitlines()
    assert len(body) <= 25, len(body)


def test_each_arm_puts_its_technique_where_the_builder_placed_it():
    study = load_study(EXAMPLE)
    layers = {label: [type(layer).__name__
                      for layer in user_models.flat_layers(built(study, label))]
              for label in ("none", "dropout", "batchnorm", "augmentation")}
    assert "Dropout" not in layers["none"] and "BatchNormalization" not in layers["none"]
    assert layers["dropout"].count("Dropout") == 1
    assert built(study, "dropout").get_layer("dropout_1").rate == 0.5
    assert layers["batchnorm"].count("BatchNormalization") == 2
    assert {"RandomRotation", "RandomTranslation"} <= set(layers["augmentation"])
    assert "RandomFlip" not in layers["augmentation"]  # flip "auto": no flip for digits
    l2 = built(study, "l2")
    assert all(isinstance(layer.kernel.regularizer, keras.regularizers.L1L2)
               and layer.kernel.regularizer.l2 == pytest.approx(0.01)
               for layer in user_models.weight_layers(l2))
    assert all(layer.kernel.regularizer is None
               for layer in user_models.weight_layers(built(study, "none")))


def test_arms_at_one_seed_start_from_the_same_weights_in_every_layer_they_share():
    study = load_study(EXAMPLE)
    reference = kernels(built(study, "none", seed=3))
    for label in ("l2", "dropout", "batchnorm", "augmentation"):
        for a, b in zip(reference, kernels(built(study, label, seed=3)), strict=True):
            np.testing.assert_array_equal(a, b)
    other = kernels(built(study, "none", seed=4))
    assert not np.array_equal(reference[0], other[0])


# --- a network of plain Keras layers ---------------------------------------------------------

def test_a_plain_keras_network_gets_every_kernel_penalty_and_constraint(write_study, plain):
    study = load_study(write_study(study_text(
        "plain:dense_net", ["none", "l2", "hidden_l1", "max_norm", "augmentation"])))
    hidden, output = user_models.weight_layers(built(study, "l2"))
    assert hidden.kernel.regularizer.l2 == output.kernel.regularizer.l2 == pytest.approx(0.01)
    hidden, output = user_models.weight_layers(built(study, "hidden_l1"))
    assert hidden.kernel.regularizer.l1 == pytest.approx(0.001)
    assert output.kernel.regularizer is None  # layers = "hidden": not the output layer
    assert all(isinstance(layer.kernel.constraint, keras.constraints.MaxNorm)
               for layer in user_models.weight_layers(built(study, "max_norm")))
    net = built(study, "augmentation")  # put in front of a network that never calls augment()
    assert "RandomRotation" in [type(layer).__name__ for layer in user_models.flat_layers(net)]
    assert net.count_params() == built(study, "none").count_params()


@pytest.mark.parametrize("technique", ["dropout", "batchnorm"])
def test_an_arm_whose_technique_the_builder_never_places_is_refused(write_study, plain,
                                                                     technique):
    path = write_study(study_text("plain:dense_net", ["none", technique]))
    with pytest.raises(RegbenchError) as raised:
        load_study(path)
    assert str(raised.value) == (
        f"{path}: arm `{technique}`: plain:dense_net places no reg.{technique}(), so `{technique}` "
        f"would change nothing; call reg.{technique}() where it belongs, or drop the arm")


# --- bad builders: one line when the study is read ------------------------------------------

@pytest.mark.parametrize("builder, message", [
    ("nowhere:convnet", "model.builder: no module `nowhere` beside the study file ({folder}) "
                        "or on sys.path"),
    ("plain:missing", "model.builder: {folder}/plain.py has no function `missing`"),
    ("plain", 'model.builder: expected "module:function" or a ".keras" file, got \'plain\''),
    ("plain:not_a_model", "model.builder: plain:not_a_model returned str, not a keras.Model"),
    ("plain:raises", "model.builder: plain:raises raised ValueError: no such layer size"),
    ("plain:wrong_output", "model.builder: plain:wrong_output gives output [(11,)]; expected "
                           "(10,), one probability per class"),
    ("plain:wrong_input", "model.builder: plain:wrong_input takes input [(32, 32, 3)]; "
                          "expected images of shape (28, 28, 1)"),
    ("missing.keras", "model.builder: no model file {folder}/missing.keras"),
])
def test_a_bad_builder_is_one_line_naming_the_study_file(write_study, plain, builder, message):
    path = write_study(study_text(builder, ["none"]))
    with pytest.raises(RegbenchError) as raised:
        load_study(path)
    assert str(raised.value) == f"{path}: " + message.format(folder=plain.resolve())


def test_a_bad_builder_on_the_command_line_is_exit_2_and_writes_nothing(regbench_cli, plain,
                                                                        write_study):
    write_study(study_text("plain:raises", ["none"]))
    before = sorted(p.name for p in plain.iterdir())
    done = regbench_cli("run", "study.toml", cwd=plain)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "regbench: error: study.toml: model.builder: plain:raises raised ValueError: no such "
        "layer size"]
    assert sorted(p.name for p in plain.iterdir() if p.name != "__pycache__") == before


# --- keys --------------------------------------------------------------------------------------

def test_keys_follow_the_builders_source_not_where_it_lies(write_study, plain, tmp_path):
    keys = [c.key for c in load_study(write_study(study_text("plain:dense_net", ["none", "l2"])))
            .cells()]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(plain / "plain.py", elsewhere)
    shutil.copy(plain / "study.toml", elsewhere)
    assert [c.key for c in load_study(elsewhere / "study.toml").cells()] == keys
    (plain / "plain.py").write_text(PLAIN.replace("Dense(16", "Dense(17"))
    changed = [c.key for c in load_study(plain / "study.toml").cells()]
    assert set(changed).isdisjoint(keys)


def test_a_builder_edited_after_the_study_was_read_is_refused_at_training(write_study, plain):
    study = load_study(write_study(study_text("plain:dense_net", ["none"])))
    (plain / "plain.py").write_text(PLAIN + "\n# edited\n")
    with pytest.raises(RegbenchError, match="changed since the study was read"):
        built(study, "none")


# --- a saved .keras model as the architecture --------------------------------------------------

def test_a_saved_keras_file_is_the_architecture_reinitialized_per_seed(write_study, plain):
    net = built(load_study(EXAMPLE), "none")
    keras.utils.set_random_seed(123)
    saved = keras.Sequential([keras.Input((28, 28, 1)), *[
        type(layer).from_config(layer.get_config()) for layer in net.layers]])
    saved.save(plain / "convnet.keras")
    study = load_study(write_study(study_text("convnet.keras", ["none", "l2", "augmentation"])))
    assert study.model.name == "convnet"
    none = built(study, "none", seed=0)
    assert none.count_params() == 34_826
    assert not np.array_equal(kernels(none)[0], kernels(saved)[0])  # not the saved weights
    for a, b in zip(kernels(none), kernels(built(study, "augmentation", seed=0)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(layer.kernel.regularizer is not None
               for layer in user_models.weight_layers(built(study, "l2")))


# --- training ------------------------------------------------------------------------------

def test_user_model_cells_train_alone_with_their_rows(write_study, plain, data_dir):
    study = load_study(write_study(study_text("plain:dense_net", ["none", "l2"])))
    cells = study.cells()
    assert [strategy for strategy, _, _ in plan.route(cells)] == ["alone", "alone"]
    engine.configure()
    rows = engine.fit(cells, str(data_dir))
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert rows[0]["model"] == "dense_net" and rows[0]["model_builder"] == "plain:dense_net"
    assert len(rows[0]["model_source_sha256"]) == 64 and "model_hidden" not in rows[0]
    assert rows[1]["l2_norm"] < rows[0]["l2_norm"]  # the penalty acted on the kernels
    assert 0 < rows[0]["test_acc"] <= 1 and rows[0]["n_fit"] == 256
