"""regbench.study: study files -> arms and cells, content keys, one-line errors."""

import dataclasses
from pathlib import Path

import pytest

from regbench.errors import RegbenchError
from regbench.recipe import L1, L1L2, L2, Arm, Dropout, EarlyStopping, MaxNorm, Model, Training
from regbench.study import Cell, load_study, parse_study

ABLATIONS_DIR = Path(__file__).resolve().parents[1] / "ablations"
ABLATIONS = sorted(ABLATIONS_DIR.glob("*.toml"))
VALID_TECHNIQUES = ("l1, l2, l1_l2, dropout, batchnorm, augmentation, early_stopping, max_norm, "
                    "kl_sparsity, l1_late, weight_decay, random_crop, gaussian_noise")
HEAD = 'datasets = ["mnist"]\nseeds = 1\n'
THREE = HEAD + """
[techniques.l1]
factor = 0.001
[techniques.l2]
factor = 0.0001
[techniques.dropout]
rate = 0.3
"""


def labels(study):
    return [arm.label for arm in study.arms]


# --- designs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("design, expected", [
    ("one_at_a_time", ["none", "l1", "l2", "dropout"]),
    ("leave_one_out", ["l1+l2+dropout", "l2+dropout", "l1+dropout", "l1+l2"]),
    ("factorial", ["none", "l1", "l2", "dropout", "l1+l2", "l1+dropout", "l2+dropout",
                   "l1+l2+dropout"]),
])
def test_generated_designs_give_exactly_these_arms(write_study, design, expected):
    study = load_study(write_study(THREE + f'[design]\nkind = "{design}"\n'))
    assert labels(study) == expected


def test_explicit_design_gives_the_listed_arms_in_order(write_study):
    study = load_study(write_study(THREE + """
        [design]
        kind = "explicit"
        arms = ["l2+dropout", "none", "l1"]
    """))
    assert labels(study) == ["l2+dropout", "none", "l1"]


def test_arms_carry_the_settings_from_the_techniques_table(write_study):
    study = load_study(write_study(THREE + '[design]\narms = ["none", "l2+dropout", "l1"]\n'))
    assert [arm.techniques for arm in study.arms] == [
        (), (L2(factor=1e-4), Dropout(rate=0.3)), (L1(factor=1e-3),)]


def test_design_defaults(write_study):
    # No [design]: one technique at a time. `arms` without `kind`: explicit.
    assert labels(load_study(write_study(THREE))) == ["none", "l1", "l2", "dropout"]
    study = load_study(write_study(THREE + '[design]\narms = ["l1", "none"]\n'))
    assert labels(study) == ["l1", "none"]


def test_explicit_arms_may_name_a_technique_at_its_defaults(write_study):
    study = load_study(write_study(HEAD + '[design]\narms = ["none", "max_norm+early_stopping"]\n'))
    assert study.arms[1].techniques == (MaxNorm(), EarlyStopping())


def test_technique_variants_by_type(write_study):
    study = load_study(write_study(HEAD + """
        [techniques.l2_small]
        type = "l2"
        factor = 0.0001
        [techniques.l2_big]
        type = "l2"
        factor = 0.01
    """))
    assert labels(study) == ["none", "l2_small", "l2_big"]
    assert [arm.techniques for arm in study.arms] == [(), (L2(factor=1e-4),), (L2(factor=0.01),)]


def test_two_variants_of_one_kind_cannot_share_an_arm(write_study):
    path = write_study(HEAD + """
        [techniques.l2_small]
        type = "l2"
        [techniques.l2_big]
        type = "l2"
        factor = 0.1
        [design]
        arms = ["l2_small+l2_big"]
    """)
    with pytest.raises(RegbenchError) as raised:
        load_study(path)
    assert str(raised.value) == (f"{path}: arm `l2_small+l2_big`: technique `l2` appears "
                                 f"twice in one arm")


# --- seeds, datasets, cells ------------------------------------------------------------------

@pytest.mark.parametrize("seeds, expected", [("3", (0, 1, 2)), ("1", (0,)), ("[7, 3]", (7, 3))])
def test_seeds_as_count_or_list(write_study, seeds, expected):
    study = load_study(write_study(f'datasets = ["mnist"]\nseeds = {seeds}\n'
                                   '[design]\narms = ["none"]\n'))
    assert study.seeds == expected


def test_seeds_default_to_five(write_study):
    assert load_study(write_study('datasets = "mnist"\n[design]\narms = ["none"]\n')).seeds == (
        0, 1, 2, 3, 4)


def test_cells_are_dataset_then_seed_major(write_study):
    study = load_study(write_study("""
        datasets = ["mnist", "fashion_mnist"]
        seeds = [4, 2]
        [design]
        arms = ["none", "dropout"]
    """))
    assert [(c.dataset, c.seed, c.arm.label) for c in study.cells()] == [
        ("mnist", 4, "none"), ("mnist", 4, "dropout"), ("mnist", 2, "none"),
        ("mnist", 2, "dropout"),
        ("fashion_mnist", 4, "none"), ("fashion_mnist", 4, "dropout"),
        ("fashion_mnist", 2, "none"), ("fashion_mnist", 2, "dropout")]
    assert all(c.study == "study" and c.model == Model() and c.training == Training()
               for c in study.cells())


def test_name_defaults_to_the_file_stem(write_study):
    path = write_study(HEAD + '[design]\narms = ["none"]\n', name="my_ablation.toml")
    study = load_study(path)
    assert study.name == "my_ablation" and study.path == str(path)


def test_model_and_training_tables(write_study):
    study = load_study(write_study(HEAD + """
        [model]
        name = "cnn"
        hidden = [16]
        filters = [4, 8]
        [training]
        optimizer = "sgd"
        learning_rate = 1
        epochs = 3
        [design]
        arms = ["none"]
    """))
    assert study.model == Model(name="cnn", hidden=(16,), filters=(4, 8))
    assert study.training == Training(optimizer="sgd", learning_rate=1.0, epochs=3)


# --- command-line overrides ------------------------------------------------------------------

@pytest.fixture
def seeded(write_study):
    return load_study(write_study(THREE.replace("seeds = 1", "seeds = [7, 3, 5]")))


@pytest.mark.parametrize("count, expected", [(2, (7, 3)), (3, (7, 3, 5)), (5, (0, 1, 2, 3, 4))])
def test_override_seeds_takes_the_first_n_or_seeds_0_to_n(seeded, count, expected):
    assert seeded.with_overrides(seeds=count).seeds == expected


def test_overrides_change_only_what_they_name(seeded):
    assert seeded.with_overrides() == seeded
    changed = seeded.with_overrides(epochs=1, train_subset=100)
    assert changed.training == dataclasses.replace(seeded.training, epochs=1, train_subset=100)
    assert dataclasses.replace(changed, training=seeded.training) == seeded


@pytest.mark.parametrize("overrides, message", [
    (dict(seeds=0), "--seeds: expected an integer in [1, 10000], got 0"),
    (dict(epochs=0), "--epochs: Invalid value for argument `epochs`. Expected an integer > 0. "
                     "Received: epochs=0"),
    # The flag named is the one that is wrong, not the first one given.
    (dict(epochs=2, train_subset=-1), "--train-subset: Invalid value for argument "
                                      "`train_subset`. Expected an integer >= 0 (0 = all). "
                                      "Received: train_subset=-1"),
])
def test_bad_overrides_name_the_flag(seeded, overrides, message):
    with pytest.raises(RegbenchError) as raised:
        seeded.with_overrides(**overrides)
    assert str(raised.value) == message


# --- cell keys -------------------------------------------------------------------------------

BASE = Cell("smoke", "mnist", Model(hidden=(32,)), Training(batch_size=64, epochs=2,
                                                              train_subset=2000),
            Arm("l1", (L1(),)), 0)


def test_key_is_pinned():
    # Every stored result is found by this hash. If it changes, every store is orphaned:
    # change it only on purpose, with KEY_VERSION bumped.
    assert BASE.key == "8863b1ed1c1c3740"


def changed(**kwargs):
    return dataclasses.replace(BASE, **kwargs)


DIFFERENT = {
    "dataset": changed(dataset="fashion_mnist"),
    "seed": changed(seed=1),
    "model.name": changed(model=Model(name="cnn", hidden=(32,))),
    "model.hidden": changed(model=Model(hidden=(33,))),
    "model.activation": changed(model=Model(hidden=(32,), activation="tanh")),
    "model.filters": changed(model=Model(hidden=(32,), filters=(32, 32))),
    **{f"training.{name}": changed(training=dataclasses.replace(BASE.training, **{name: value}))
       for name, value in [("optimizer", "sgd"), ("learning_rate", 0.01), ("momentum", 0.5),
                           ("batch_size", 32), ("epochs", 3), ("validation_fraction", 0.2),
                           ("train_subset", 0)]},
    "technique setting": changed(arm=Arm("l1", (L1(factor=0.02),))),
    "technique layers": changed(arm=Arm("l1", (L1(layers="hidden"),))),
    "technique kind": changed(arm=Arm("l1", (L2(),))),
    "technique added": changed(arm=Arm("l1", (L1(), Dropout()))),
    "no technique": changed(arm=Arm("none")),
}


@pytest.mark.parametrize("cell", DIFFERENT.values(), ids=DIFFERENT)
def test_key_differs_when_a_result_determining_setting_differs(cell):
    assert cell.key != BASE.key


def test_keys_of_all_variants_are_distinct():
    keys = [BASE.key] + [cell.key for cell in DIFFERENT.values()]
    assert len(set(keys)) == len(keys)
    assert all(len(k) == 16 and int(k, 16) >= 0 for k in keys)


def test_key_ignores_study_name_arm_label_and_technique_order():
    assert changed(study="another_study").key == BASE.key
    assert changed(arm=Arm("sparse", (L1(),))).key == BASE.key
    pair = changed(arm=Arm("l2+dropout", (L2(), Dropout()))).key
    assert changed(arm=Arm("dropout+l2", (Dropout(), L2()))).key == pair


def test_same_cell_from_differently_written_files_has_the_same_key(write_study):
    a = load_study(write_study(HEAD + """
        name = "first"
        [techniques.l2]
        factor = 1
        [design]
        arms = ["l2+dropout"]
    """, name="a.toml"))
    b = load_study(write_study(HEAD + """
        name = "second"
        [techniques.decay]
        type = "l2"
        factor = 1.0
        [techniques.dropout]
        rate = 0.5
        [design]
        arms = ["dropout+decay"]
    """, name="b.toml"))
    [cell_a], [cell_b] = a.cells(), b.cells()
    assert cell_a.arm.label != cell_b.arm.label and cell_a.study != cell_b.study
    assert cell_a.key == cell_b.key


# --- duplicates ------------------------------------------------------------------------------

@pytest.mark.parametrize("techniques, arms, first, second", [
    ("", '["l2", "none", "l2"]', "l2", "l2"),
    ("", '["l2+dropout", "dropout+l2"]', "l2+dropout", "dropout+l2"),
    ('[techniques.l2]\n[techniques.wd]\ntype = "l2"\nfactor = 0.01\n', '["l2", "wd"]', "l2",
     "wd"),
])
def test_duplicate_arms_are_refused(write_study, techniques, arms, first, second):
    path = write_study(HEAD + techniques + f"[design]\narms = {arms}\n")
    with pytest.raises(RegbenchError) as raised:
        load_study(path)
    assert str(raised.value) == (f"{path}: arms `{first}` and `{second}` are the same set of "
                                 f"techniques")


# --- errors name the file and the field ------------------------------------------------------

ERRORS = {
    "unknown top-level key": (
        HEAD + "epochs = 3\n",
        "unknown key `epochs`. Valid keys: name, description, datasets, seeds, model, "
        "training, sweep, techniques, design"),
    "missing datasets": (
        "seeds = 1\n",
        "missing key `datasets` (one or more of mnist, fashion_mnist, cifar10, npz:PATH, "
        "tfds:NAME)"),
    "unknown dataset": (
        'datasets = ["mnist", "svhn"]\n',
        "datasets: unknown dataset `svhn`. Valid datasets: mnist, fashion_mnist, cifar10, "
        "npz:PATH (your arrays), tfds:NAME (tensorflow-datasets)"),
    "empty datasets": ("datasets = []\n", "datasets: expected a non-empty list of names"),
    "zero seeds": ('datasets = ["mnist"]\nseeds = 0\n',
                   "seeds: expected a count in [1, 10000], got 0"),
    "repeated seeds": (
        'datasets = ["mnist"]\nseeds = [1, 1]\n',
        "seeds: expected a count or a list of distinct integers in [0, 2147483647], got [1, 1]"),
    "negative seed": (
        'datasets = ["mnist"]\nseeds = [-1]\n',
        "seeds: expected a count or a list of distinct integers in [0, 2147483647], got [-1]"),
    "seeds of the wrong type": (
        'datasets = ["mnist"]\nseeds = [[1], [2]]\n',
        "seeds: expected a count or a list of distinct integers in [0, 2147483647], "
        "got [[1], [2]]"),
    "bad name": (
        HEAD + 'name = "my study"\n',
        "name: expected letters, digits, '_', '-' or '.', got 'my study'"),
    "a name that is the folder above": (
        HEAD + 'name = ".."\n',
        "name: '..' names a folder, not a study; give a name with a letter or digit"),
    "a name that is this folder": (
        HEAD + 'name = "."\n',
        "name: '.' names a folder, not a study; give a name with a letter or digit"),
    "model unknown key": (
        HEAD + "[model]\nunits = 64\n",
        "model: unknown key `units`. Valid keys: name, hidden, activation, filters, crop, "
        "standardize, builder"),
    "model wrong type": (HEAD + "[model]\nhidden = 64\n", "model.hidden: expected a list, got 64"),
    "training wrong type": (
        HEAD + '[training]\nepochs = "10"\n', "training.epochs: expected an integer, got '10'"),
    "training zero epochs": (
        HEAD + "[training]\nepochs = 0\n",
        "training: Invalid value for argument `epochs`. Expected an integer > 0. "
        "Received: epochs=0"),
    "training zero batch size": (
        HEAD + "[training]\nbatch_size = 0\n",
        "training: Invalid value for argument `batch_size`. Expected an integer > 0. "
        "Received: batch_size=0"),
    "dropout rate": (
        HEAD + "[techniques.dropout]\nrate = 1.5\n",
        "techniques.dropout: Invalid value for argument `rate`. Expected a float in [0, 1). "
        "Received: rate=1.5"),
    "negative factor": (
        HEAD + "[techniques.l2]\nfactor = -0.01\n",
        "techniques.l2: Invalid value for argument `factor`. Expected a finite float >= 0. "
        "Received: factor=-0.01"),
    "technique unknown key": (
        HEAD + "[techniques.dropout]\np = 0.5\n",
        "techniques.dropout: unknown key `p`. Valid keys: rate, input_rate"),
    "technique wrong type": (
        HEAD + '[techniques.dropout]\nrate = "high"\n',
        "techniques.dropout.rate: expected a number, got 'high'"),
    "unknown technique": (
        HEAD + "[techniques.decay]\nfactor = 0.1\n",
        f"techniques.decay: unknown technique `decay`. "
        f"Valid techniques: {VALID_TECHNIQUES}"),
    "unknown technique type": (
        HEAD + '[techniques.wd]\ntype = "decay"\n',
        f"techniques.wd: unknown technique `decay`. Valid techniques: {VALID_TECHNIQUES}"),
    "technique not a table": (
        HEAD + "[techniques]\ndropout = 0.5\n",
        "techniques.dropout: expected a table of parameters"),
    "label none": (
        HEAD + '[techniques.none]\ntype = "l2"\n',
        "techniques: label 'none' reads as `none`, the arm without techniques; choose "
        "another label"),
    "label with plus": (
        HEAD + '[techniques."l2+l1"]\ntype = "l2"\n',
        "techniques: label 'l2+l1': expected letters, digits, '_', '-' or '.'"),
    "unknown design": (
        HEAD + '[techniques.l2]\n[design]\nkind = "grid"\n',
        "design.kind: unknown design `grid`. Valid designs: explicit, one_at_a_time, "
        "leave_one_out, factorial, tuned"),
    "design unknown key": (
        HEAD + '[design]\narm = ["none"]\n', "design: unknown key `arm`. Valid keys: kind, arms"),
    "empty explicit arms": (
        HEAD + "[design]\narms = []\n",
        'design.arms: expected a non-empty list of arm labels such as "none" or "l2+dropout"'),
    "unknown technique in an arm": (
        HEAD + '[techniques.dropout]\n[design]\narms = ["none", "l3+dropout"]\n',
        "design.arms: unknown technique `l3` in arm `l3+dropout`. Valid names: none, dropout, "
        "l1, l2, l1_l2, batchnorm, augmentation, early_stopping, max_norm, kl_sparsity, l1_late, "
        "weight_decay, random_crop, gaussian_noise"),
    "arms for a generated design": (
        HEAD + '[techniques.l2]\n[design]\nkind = "factorial"\narms = ["none"]\n',
        'design.arms: only for kind = "explicit" or "tuned"'),
    "generated design without techniques": (
        HEAD + '[design]\nkind = "factorial"\n',
        "design `factorial` needs a [techniques] table"),
    "conflict in an explicit arm": (
        HEAD + '[design]\narms = ["l1_l2+l1"]\n',
        "arm `l1_l2+l1`: conflicting techniques: `l1_l2` already holds an L1 term; "
        "use `l1_l2` or `l1`"),
    "conflict in a factorial design": (
        HEAD + '[techniques.l2]\n[techniques.l1_l2]\n[design]\nkind = "factorial"\n',
        "arm `l2+l1_l2`: conflicting techniques: `l1_l2` already holds an L2 term; "
        "use `l1_l2` or `l2`"),
}


@pytest.mark.parametrize("text, message", ERRORS.values(), ids=ERRORS)
def test_errors_are_one_line_naming_file_and_field(write_study, text, message):
    path = write_study(text)
    with pytest.raises(RegbenchError) as raised:
        load_study(path)
    assert str(raised.value) == f"{path}: {message}"


def test_malformed_toml(write_study):
    path = write_study('datasets = ["mnist"\nseeds = 1\n')
    with pytest.raises(RegbenchError) as raised:
        load_study(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: malformed TOML: ") and "line" in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(RegbenchError) as raised:
        load_study(path)
    assert str(raised.value) == f"{path}: cannot read study file (No such file or directory)"


def test_a_folder_is_not_a_study_file(tmp_path):
    with pytest.raises(RegbenchError) as raised:
        load_study(tmp_path)
    assert str(raised.value) == f"{tmp_path}: cannot read study file (Is a directory)"


def test_binary_file(tmp_path):
    path = tmp_path / "image.toml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(RegbenchError) as raised:
        load_study(path)
    assert str(raised.value) == f"{path}: not a UTF-8 text file (TOML must be UTF-8)"


def test_parse_study_names_its_source():
    with pytest.raises(RegbenchError) as raised:
        parse_study({"datasets": ["mnist"], "seeds": -2}, "<inline>")
    assert str(raised.value) == "<inline>: seeds: expected a count in [1, 10000], got -2"


# --- the shipped study files -----------------------------------------------------------------

@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: p.name)
def test_every_shipped_study_file_parses(path):
    study = load_study(path)
    cells = study.cells()
    seeds = study.tuning.seeds if study.tuning else study.seeds
    tuned = [p for p in study.arms if study.tuning is None or "@" in p.label or p.label == "none"]
    assert cells and len(cells) == len(study.datasets) * len(seeds) * len(tuned)
    assert len({c.key for c in cells}) == len(cells)
    assert len(set(labels(study))) == len(study.arms)
    assert study.description


def test_the_tutorial_study_holds_the_tutorial_arms():
    study = load_study(ABLATIONS_DIR / "mnist_tutorial.toml")
    assert labels(study) == ["none", "l1", "l2", "l1_l2", "dropout", "batchnorm", "augmentation",
                             "early_stopping", "l2+dropout+early_stopping"]
    assert study.model == Model(hidden=(64,))
    assert study.arms[3].techniques == (L1L2(l1=0.01, l2=0.01, layers="hidden"),)
    assert study.arms[-1].get("early_stopping") == EarlyStopping(patience=5)


def test_the_smoke_study_is_small():
    study = load_study(ABLATIONS_DIR / "smoke.toml")
    assert labels(study) == ["none", "l1", "dropout"] and study.seeds == (0, 1)
    assert study.training.epochs <= 2 and 0 < study.training.train_subset <= 2000


def test_cell_keys_of_every_shipped_study_are_pinned():
    """Stored results are found by key: a change to the key (or to a study file) would
    orphan every stored row. tests/data/cell_keys.json holds each study's keys in order."""
    import json

    repo = Path(__file__).parents[1]
    pinned = json.loads((repo / "tests/data/cell_keys.json").read_text())
    assert len(pinned) >= 12
    for study, keys in pinned.items():
        cells = load_study(repo / study).cells(backend="tensorflow")
        assert [cell.key for cell in cells] == keys, study


def test_a_study_file_is_read_as_utf8_whatever_the_locale(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "study.toml"
    path.write_text('datasets = ["mnist"]\ndescription = "caf\u00e9"\n'
                    '[design]\narms = ["none"]\n', encoding="utf-8")
    code = ("import sys; from regbench.study import load_study; "
            "print(load_study(sys.argv[1]).description == 'caf\\u00e9')")
    done = subprocess.run([sys.executable, "-X", "utf8=0", "-c", code, str(path)],
                          env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0",
                               "PYTHONPATH": ":".join(sys.path)},
                          capture_output=True, text=True, encoding="utf-8")
    assert done.stdout.strip() == "True", done.stderr


def test_a_backend_other_than_tensorflow_enters_the_key():
    study = parse_study({"datasets": ["mnist"], "seeds": 1, "design": {"arms": ["none"]}}, "b")
    tf, jax, torch = (study.cells(backend=name)[0] for name in ("tensorflow", "jax", "torch"))
    assert "backend" not in tf.spec() and jax.spec()["backend"] == "jax"
    assert len({tf.key, jax.key, torch.key}) == 3

