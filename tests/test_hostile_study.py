"""Hostile study files: each is refused when it is read, before anything trains or is written,
with one line `regbench: error: ...` naming the setting and exit status 2. Settings that train
alike get one key, and the plan lists each cell once."""

import math
import time

import pytest

from regbench import cli
from regbench.recipe import L2
from regbench.study import MAX_CELLS, load_study

HEAD = 'datasets = ["mnist"]\nseeds = 1\n'
NONE_ONLY = '[design]\narms = ["none"]\n'
SMOKE_LIKE = HEAD + "[training]\nbatch_size = 64\nepochs = 2\ntrain_subset = 2000\n" + NONE_ONLY
ELEVEN_ARMS = HEAD + "".join(f'[techniques.t{i}]\ntype = "l2"\nfactor = {i + 1}e-4\n'
                             for i in range(10)) + '[design]\nkind = "one_at_a_time"\n'


def techniques(n: int) -> str:
    return "".join(f'[techniques.t{i}]\ntype = "l2"\n' for i in range(n))


@pytest.fixture
def dry_run(tmp_path, monkeypatch, capsys):
    """dry_run(text, *flags) -> (status, stdout, stderr) of `regbench run study.toml
    --dry-run FLAGS`, in-process in a folder that holds only the study file, and stays so."""
    monkeypatch.chdir(tmp_path)

    def run(text: str, *flags: str) -> tuple[int, str, str]:
        path = tmp_path / "study.toml"
        path.write_text(text)
        code = cli.main(["run", str(path), "--dry-run", *flags])
        out, err = capsys.readouterr()
        assert sorted(p.name for p in tmp_path.rglob("*")) == ["study.toml"]
        return code, out, err
    return run


def assert_refused(result, setting: str) -> None:
    code, out, err = result
    assert (code, out) == (2, ""), err
    assert err.startswith("regbench: error: ") and err.endswith("\n") and err.count("\n") == 1
    assert setting in err, err


def case(text: str, setting: str, *flags: str):
    return text, flags, setting


# --- labels and arm strings ------------------------------------------------------------------

LABELS = {
    "empty label": case(HEAD + '[techniques.""]\ntype = "l2"\nfactor = 0.5\n'
                        '[design]\narms = ["none", ""]\n', "techniques: label ''"),
    "label None": case(HEAD + '[techniques.None]\ntype = "l2"\n',
                       "techniques: label 'None' reads as `none`"),
    "label NONE": case(HEAD + '[techniques.NONE]\ntype = "l2"\n', "label 'NONE' reads as `none`"),
    "label ' none'": case(HEAD + '[techniques." none"]\ntype = "l2"\n',
                          "label ' none' reads as `none`"),
    "label with a space": case(HEAD + '[techniques."my l2"]\ntype = "l2"\n',
                               "techniques: label 'my l2': expected letters, digits"),
    "label with a newline": case(HEAD + '[techniques."l2\\nx"]\ntype = "l2"\n',
                                 "techniques: label 'l2\\nx': expected letters, digits"),
    "label with a slash": case(HEAD + '[techniques."a/b"]\ntype = "l2"\n',
                               "techniques: label 'a/b': expected letters, digits"),
    "technique name of another type": case(
        HEAD + '[techniques.l2]\ntype = "l1"\n',
        "techniques.l2: label `l2` is the name of technique `l2`, not of type `l1`"),
    "technique name in capitals, another type": case(
        HEAD + '[techniques.L2]\ntype = "l1"\n',
        "techniques.L2: label `L2` is the name of technique `l2`, not of type `l1`"),
    "technique name in capitals": case(
        HEAD + '[techniques.L2]\ntype = "l2"\nfactor = 0.5\n',
        "techniques.L2: label `L2` reads as technique `l2`; write it `l2`"),
    "two labels read alike": case(
        HEAD + '[techniques.wd]\ntype = "l2"\n[techniques.WD]\ntype = "l2"\nfactor = 0.5\n',
        "techniques.WD: label `WD` reads as label `wd`"),
    "empty arm": case(HEAD + '[design]\narms = ["none", ""]\n',
                      "design.arms: arm '': expected technique labels joined by '+'"),
    "arm with a space": case(HEAD + '[design]\narms = [" l2"]\n',
                             "design.arms: arm ' l2': ' l2' is not `l2`"),
    "arm ending in +": case(HEAD + '[design]\narms = ["l2+"]\n',
                            "design.arms: arm 'l2+': expected technique labels"),
    "arm starting with +": case(HEAD + '[design]\narms = ["+l2"]\n',
                                "design.arms: arm '+l2': expected technique labels"),
    "arm naming one twice": case(HEAD + '[design]\narms = ["l2+l2"]\n',
                                 "design.arms: arm 'l2+l2': names `l2` twice"),
    "arm None": case(HEAD + '[design]\narms = ["None"]\n',
                     "design.arms: arm 'None': 'None' is not `none`"),
    "none in a combination": case(HEAD + '[design]\narms = ["none+l2"]\n',
                                  "design.arms: arm 'none+l2': `none` is the arm without"),
    "arm label in another case": case(HEAD + '[techniques.wd]\ntype = "l2"\n'
                                      '[design]\narms = ["Wd"]\n',
                                      "design.arms: arm 'Wd': 'Wd' is not `wd`"),
}


@pytest.mark.parametrize("text, flags, setting", LABELS.values(), ids=LABELS)
def test_labels_that_read_as_another_are_refused(dry_run, text, flags, setting):
    assert_refused(dry_run(text, *flags), setting)


# --- TOML edge values ------------------------------------------------------------------------

TOML = {
    "5000-digit integer": case(HEAD + "description = " + "1" * 5000 + "\n",
                               "malformed TOML: an integer of more than 4,300 digits"),
    "arrays 3000 deep": case(HEAD + "description = " + "[" * 3000 + "]" * 3000 + "\n",
                             "malformed TOML: arrays or tables nested too deeply"),
    "inline tables 3000 deep": case(HEAD + "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
                                    "malformed TOML: arrays or tables nested too deeply"),
    "integer past any float": case(HEAD + "[techniques.l2]\nfactor = 1" + "0" * 400 + "\n",
                                   "techniques.l2.factor: expected a number of at most 3.403e+38"),
    "learning rate past any float": case(
        HEAD + "[training]\nlearning_rate = 1" + "0" * 400 + "\n",
        "training.learning_rate: expected a number of at most 3.403e+38"),
}


NEWLINES = {  # a name from the file, written in the message, keeps it on one line
    "unknown key": case(HEAD + '"a\\nb" = 1\n', "unknown key `'a\\nb'`"),
    "unknown model key": case(HEAD + '[model]\n"a\\nb" = 1\n', "model: unknown key `'a\\nb'`"),
    "unknown technique type": case(HEAD + '[techniques.x]\ntype = "a\\nb"\n',
                                   "techniques.x: unknown technique `'a\\nb'`"),
    "unknown dataset": case('datasets = ["a\\nb"]\n', "unknown dataset `'a\\nb'`"),
    "unknown design": case(HEAD + '[techniques.l2]\n[design]\nkind = "a\\nb"\n',
                           "design.kind: unknown design `'a\\nb'`"),
}
TOML |= NEWLINES


@pytest.mark.parametrize("text, flags, setting", TOML.values(), ids=TOML)
def test_toml_edge_values_are_one_line_naming_the_file(dry_run, text, flags, setting):
    result = dry_run(text, *flags)
    assert_refused(result, setting)
    assert result[2].startswith("regbench: error: ") and "study.toml: " in result[2]


# --- the size of a study ---------------------------------------------------------------------

SIZE = {
    "factorial over 30 techniques": case(
        HEAD + techniques(30) + '[design]\nkind = "factorial"\n',
        "design factorial over 30 techniques: 1,073,741,824 arms x 1 seed = 1,073,741,824 "
        f"cells; the limit is {MAX_CELLS:,} cells"),
    "factorial over 2000 techniques": case(
        HEAD + techniques(2000) + '[design]\nkind = "factorial"\n',
        "design factorial over 2000 techniques: about 10^602 arms x 1 seed"),
    "seeds x datasets x arms": case(
        'datasets = ["mnist", "fashion_mnist", "cifar10"]\nseeds = 10000\n'
        '[design]\narms = ["none", "l1", "l2", "dropout"]\n',
        "design.arms: 4 arms x 10,000 seeds x 3 datasets = 120,000 cells"),
    "sweep entries": case(
        'datasets = ["mnist"]\nseeds = 10000\n'
        'sweep = [{epochs = 1}, {epochs = 2}, {epochs = 3}, {epochs = 4}]\n'
        '[design]\narms = ["none", "l1", "l2"]\n',
        "design.arms: 3 arms x 10,000 seeds x 4 sweep entries = 120,000 cells"),
    "--seeds": case(ELEVEN_ARMS, "--seeds: 11 arms x 10,000 seeds = 110,000 cells", "--seeds",
                    "10000"),
}


@pytest.mark.parametrize("text, flags, setting", SIZE.values(), ids=SIZE)
def test_a_study_past_the_cell_limit_is_refused_at_once(dry_run, text, flags, setting):
    start = time.perf_counter()
    assert_refused(dry_run(text, *flags), setting)
    assert time.perf_counter() - start < 5


# --- values that would fail or mislead only when a cell trains -------------------------------

def training(settings: str) -> str:
    return HEAD + "[training]\n" + settings + "\n" + NONE_ONLY


def model(settings: str, datasets: str = '["mnist"]') -> str:
    return f"datasets = {datasets}\nseeds = 1\n[model]\n{settings}\n" + NONE_ONLY


def technique(kind: str, settings: str) -> str:
    return HEAD + f"[techniques.{kind}]\n{settings}\n"


FITS = {
    "batch_size 10**30": case(
        training("batch_size = " + str(10**30)),
        "training.batch_size: about 10^30 is larger than the 54,000 images in mnist's fit "
        "split; expected at most 54,000"),
    "batch_size past the fit split": case(training("batch_size = 54001"),
                                          "training.batch_size: 54,001 is larger"),
    "batch_size past train_subset": case(
        training("batch_size = 2000\ntrain_subset = 1000"),
        "training.batch_size: 2,000 is larger than the 1,000 images of training.train_subset"),
    "batch_size of a sweep entry": case(
        HEAD + "sweep = [{epochs = 1}, {batch_size = 60000}]\n" + NONE_ONLY,
        "sweep[1].batch_size: 60,000 is larger"),
    "--train-subset below batch_size": case(
        SMOKE_LIKE, "training.batch_size: 64 is larger than the 10 images of --train-subset",
        "--train-subset", "10"),
    "hidden 10**30": case(model("hidden = [" + str(10**30) + "]"),
                          "model.hidden: the mlp has about 10^33 weights on mnist; the limit "
                          "is 2,147,483,648"),
    "filters 10**30": case(model('name = "cnn"\nfilters = [' + str(10**30) + "]"),
                           "model.hidden and model.filters: the cnn has about 10^"),
    "101 hidden layers": case(model("hidden = [" + ", ".join(["1"] * 101) + "]"),
                              "model: Invalid value for argument `hidden`. Expected at most "
                              "100 layers"),
    "cnn blocks past the image": case(
        model('name = "cnn"\nfilters = [8, 8, 8, 8, 8]'),
        "model.filters: 5 conv blocks, each halving the image, leave nothing of mnist's "
        "28x28 input; expected at most 4 blocks"),
    "cnn blocks past the crop": case(model('name = "cnn"\ncrop = 7\nfilters = [8, 8, 8]'),
                                     "model.filters: 3 conv blocks"),
    "validation_fraction 1e-300": case(
        training("validation_fraction = 1e-300"),
        "training.validation_fraction: 1e-300 of mnist's 60,000 training images holds out 0; "
        "expected a fraction that holds out 1 to 59,999"),
    "validation_fraction that leaves nothing": case(
        training("validation_fraction = 0.99999999"),
        "training.validation_fraction: 0.99999999 of mnist's 60,000 training images holds "
        "out 60,000"),
    "validation_fraction of the smaller dataset": case(
        'datasets = ["mnist", "cifar10"]\nseeds = 1\n[training]\nvalidation_fraction = 1e-5\n'
        + NONE_ONLY, "training.validation_fraction: 1e-05 of cifar10's 50,000 training images "
                     "holds out 0"),
    "crop 1000": case(model("crop = 1000"),
                      "model.crop: 1,000 is not smaller than mnist's 28x28 images; expected 1 "
                      "to 27 (0 = no crop)"),
    "crop the image size": case(model("crop = 28"), "model.crop: 28 is not smaller"),
    "crop past one of the datasets": case(model("crop = 30", '["cifar10", "mnist"]'),
                                          "model.crop: 30 is not smaller than mnist's"),
    "curve_every past the steps": case(
        training("curve_every = 1000000000"),
        "training.curve_every: 1,000,000,000 is more than the 33,760 steps of training on "
        "mnist; expected at most 33,760 (0 = off)"),
    "curve_every past --epochs": case(
        training("curve_every = 2000"), "training.curve_every: 2,000 is more than the 1,688 "
                                        "steps", "--epochs", "1"),
}
FLOATS = {  # every float setting: a value float32 would round to 0, to 1 or to inf
    "l2 factor 1e300": ("l2", "factor = 1e300", "factor", "at most 3.403e+38"),
    "l1 factor 1e-300": ("l1", "factor = 1e-300", "factor", "0 or at least 1.175e-38"),
    "l1_l2 l1 1e39": ("l1_l2", "l1 = 1e39", "l1", "at most 3.403e+38"),
    "l1_l2 l2 1e-40": ("l1_l2", "l2 = 1e-40", "l2", "0 or at least 1.175e-38"),
    "dropout rate near 1": ("dropout", "rate = 0.99999999999", "rate", "at most 0.99999994"),
    "dropout input_rate 1e-300": ("dropout", "input_rate = 1e-300", "input_rate",
                                  "0 or at least"),
    "batchnorm momentum near 1": ("batchnorm", "momentum = 0.99999999999", "momentum",
                                  "at most 0.99999994"),
    "batchnorm epsilon 1e-300": ("batchnorm", "epsilon = 1e-300", "epsilon",
                                 "at least 1.175e-38"),
    "augmentation rotation 1e-300": ("augmentation", "rotation = 1e-300", "rotation",
                                     "0 or at least"),
    "augmentation shift near 1": ("augmentation", "shift = 0.99999999999", "shift",
                                  "at most 0.99999994"),
    "early_stopping min_delta 1e39": ("early_stopping", "min_delta = 1e39", "min_delta",
                                      "at most 3.403e+38"),
    "max_norm c 1e39": ("max_norm", "c = 1e39", "c", "at most 3.403e+38"),
    "max_norm c 1e-300": ("max_norm", "c = 1e-300", "c", "at least 1.175e-38"),
    "kl_sparsity target 1e-300": ("kl_sparsity", "target = 1e-300", "target",
                                  "at least 1.175e-38"),
    "kl_sparsity target near 1": ("kl_sparsity", "target = 0.99999999999", "target",
                                  "at most 0.99999994"),
    "kl_sparsity weight 1e39": ("kl_sparsity", "weight = 1e39", "weight", "at most 3.403e+38"),
    "l1_late factor 1e39": ("l1_late", "factor = 1e39", "factor", "at most 3.403e+38"),
    "l1_late start near 1": ("l1_late", "start = 0.99999999999", "start", "at most 0.99999994"),
    "weight_decay factor 1e-300": ("weight_decay", "factor = 1e-300", "factor", "0 or at least"),
    "gaussian_noise stddev 1e39": ("gaussian_noise", "stddev = 1e39", "stddev",
                                   "at most 3.403e+38"),
    "gaussian_noise stddev 1e-300": ("gaussian_noise", "stddev = 1e-300", "stddev",
                                     "at least 1.175e-38"),
}
TRAINING_VALUES = {  # (settings, the refused setting, the limit)
    "learning_rate 1e-300": ("learning_rate = 1e-300", "learning_rate", "at least 1.175e-38"),
    "learning_rate 1e39": ("learning_rate = 1e39", "learning_rate", "at most 3.403e+38"),
    "learning_rate nan": ("learning_rate = nan", "learning_rate", "a finite float > 0"),
    "momentum near 1": ('optimizer = "sgd"\nmomentum = 0.99999999999', "momentum",
                        "at most 0.99999994"),
    "momentum_start near 1": ('optimizer = "sgd"\nmomentum_epochs = 2\n'
                              "momentum_start = 0.99999999999", "momentum_start",
                              "at most 0.99999994"),
    "lr_decay 1e-300": ("lr_decay = 1e-300", "lr_decay", "at least 1.175e-38"),
    "lr_decay inf": ("lr_decay = inf", "lr_decay", "a float in (0, 1]"),
    "epochs 10**9": ("epochs = 1000000000", "epochs", "at most 100,000"),
    "momentum_epochs 10**9": ('optimizer = "sgd"\nmomentum_epochs = 1000000000',
                              "momentum_epochs", "at most 100,000"),
    "train_subset -1": ("train_subset = -1", "train_subset", "an integer >= 0"),
    "batch_size 0": ("batch_size = 0", "batch_size", "an integer > 0"),
}
for name, (kind, settings, field, limit) in FLOATS.items():
    FITS[name] = case(technique(kind, settings), f"techniques.{kind}: Invalid value for "
                      f"argument `{field}`. Expected {limit}")
for name, (settings, field, limit) in TRAINING_VALUES.items():
    FITS[name] = case(training(settings), f"training: Invalid value for argument `{field}`. "
                      f"Expected {limit}")
FITS["patience 10**9"] = case(technique("early_stopping", "patience = 1000000000"),
                              "Invalid value for argument `patience`. Expected at most 100,000")


@pytest.mark.parametrize("text, flags, setting", FITS.values(), ids=FITS)
def test_values_that_fail_or_mislead_in_training_are_refused_when_read(dry_run, text, flags,
                                                                        setting):
    assert_refused(dry_run(text, *flags), setting)


@pytest.mark.parametrize("text", [
    training("batch_size = 54000"),                   # the whole fit split in one batch
    training("batch_size = 1000\ntrain_subset = 1000"),
    model("crop = 27"),
    model('name = "cnn"\nfilters = [8, 8, 8, 8]'),    # 28 -> 14 -> 7 -> 3 -> 1
    model('name = "alexnet"\nfilters = [8, 8, 8, 8, 8, 8]'),  # its pools round up: never 0
    model("crop = 28", '["cifar10"]'),
    training("validation_fraction = 2e-5"),           # holds out round(1.2) = 1 image
    training("curve_every = 33760"),                  # the last step
    technique("l2", "factor = 0.0"),
    technique("dropout", "rate = 0.9999999"),
    training("learning_rate = 0.9999999999999999"),   # 1 in float32, and that is no other rule
], ids=["batch = fit split", "batch = subset", "crop 27 of 28", "cnn of 4 blocks",
        "alexnet of 6 blocks", "crop 28 of 32", "one held out", "curve at the last step",
        "factor 0", "rate below 1 in float32", "learning rate 1 in float32"])
def test_values_at_their_limits_are_accepted(dry_run, text):
    code, out, err = dry_run(text)
    assert (code, err) == (0, ""), err


# --- one key for settings that train alike -----------------------------------------------

def cells_of(write_study, text: str, **overrides) -> list:
    return load_study(write_study(text)).with_overrides(**overrides).cells()


def test_minus_zero_trains_as_zero_and_has_its_key(write_study):
    [minus] = cells_of(write_study, technique("l2", "factor = -0.0") + '[design]\narms = ["l2"]\n')
    [plus] = cells_of(write_study, technique("l2", "factor = 0.0") + '[design]\narms = ["l2"]\n')
    assert minus.key == plus.key
    assert math.copysign(1.0, minus.arm.get("l2").factor) == 1.0  # the row records 0.0


def test_an_integer_for_a_float_setting_has_the_float_key(write_study):
    [whole] = cells_of(write_study, technique("l2", "factor = 1") + '[design]\narms = ["l2"]\n')
    [point] = cells_of(write_study, technique("l2", "factor = 1.0") + '[design]\narms = ["l2"]\n')
    assert whole.key == point.key and whole.arm.get("l2") == L2(factor=1.0)


@pytest.mark.parametrize("subset", [54000, 54001, 1_000_000, 10**30])
def test_a_subset_as_large_as_the_fit_split_is_the_whole_split(write_study, subset):
    [whole] = cells_of(write_study, training("train_subset = 0"))
    [cell] = cells_of(write_study, training(f"train_subset = {subset}"))
    assert cell.key == whole.key and cell.training.train_subset == 0  # what the row records
    [smaller] = cells_of(write_study, training("train_subset = 53999"))
    assert smaller.key != whole.key and smaller.training.train_subset == 53999


def test_fractions_that_hold_out_the_same_images_have_one_key(write_study):
    [tenth] = cells_of(write_study, training("validation_fraction = 0.1"))
    [same] = cells_of(write_study, training("validation_fraction = 0.10000000001"))
    assert same.key == tenth.key and same.training.validation_fraction == 0.1  # 6,000 of 60,000
    [other] = cells_of(write_study, training("validation_fraction = 0.10001"))  # 6,001
    assert other.key != tenth.key


def test_an_mlp_has_the_key_of_an_mlp_whatever_its_unused_filters(write_study):
    [plain] = cells_of(write_study, model("hidden = [16]"))
    [filters] = cells_of(write_study, model("hidden = [16]\nfilters = [8]"))
    assert filters.key == plain.key
    [cnn] = cells_of(write_study, model('name = "cnn"\nhidden = [16]'))
    [cnn8] = cells_of(write_study, model('name = "cnn"\nhidden = [16]\nfilters = [8]'))
    assert cnn8.key != cnn.key


@pytest.mark.parametrize("dataset, same, other", [("mnist", "false", "true"),
                                                  ("cifar10", "true", "false")])
def test_a_flip_set_to_what_auto_does_there_has_the_key_of_auto(write_study, dataset, same,
                                                                other):
    def cell(flip):
        text = (f'datasets = ["{dataset}"]\nseeds = 1\n[techniques.augmentation]\nflip = {flip}'
                '\n[design]\narms = ["augmentation"]\n')
        return cells_of(write_study, text)[0]
    assert cell(same).key == cell('"auto"').key != cell(other).key


def test_train_subset_from_the_command_line_is_the_whole_split_when_larger(write_study):
    [whole] = cells_of(write_study, training("train_subset = 0"))
    [cell] = cells_of(write_study, training("train_subset = 500"), train_subset=1_000_000)
    assert cell.key == whole.key and cell.training.train_subset == 0


def test_the_whole_split_depends_on_the_dataset_and_validation_fraction(write_study):
    cells = cells_of(write_study, 'datasets = ["mnist", "cifar10"]\nseeds = 1\n[training]\n'
                                  "train_subset = 45000\n" + NONE_ONLY)
    assert [(c.dataset, c.training.train_subset) for c in cells] == [("mnist", 45000),
                                                                     ("cifar10", 0)]
    [cell] = cells_of(write_study, training("train_subset = 48000\nvalidation_fraction = 0.2"))
    assert cell.training.train_subset == 0  # 60,000 less 12,000 held out


def test_momentum_of_an_optimizer_that_has_none_trains_as_zero(write_study):
    [adam] = cells_of(write_study, training("momentum = 0.5"))
    [plain] = cells_of(write_study, training("momentum = 0.0"))
    assert adam.key == plain.key and adam.training.momentum == 0.0
    [sgd] = cells_of(write_study, training('optimizer = "sgd"\nmomentum = 0.5'))
    assert sgd.training.momentum == 0.5


# --- each cell listed once ---------------------------------------------------------------

SWEEP_AS_TRAINING = HEAD + """sweep = [{}, {epochs = 2}, {train_subset = 54000}]
[training]
epochs = 2
[techniques.l1]
[techniques.dropout]
"""


def test_sweep_entries_that_train_alike_are_one_cell(write_study):
    cells = cells_of(write_study, SWEEP_AS_TRAINING)
    assert [c.arm.label for c in cells] == ["none", "l1", "dropout"]
    assert len({c.key for c in cells}) == 3


def test_the_plan_lists_each_cell_once(dry_run):
    code, out, err = dry_run(SWEEP_AS_TRAINING)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "3 cells, 3 to train, store results/study.jsonl"


# --- the command line --------------------------------------------------------------------

def test_a_dry_run_refuses_pack_size_0_like_a_run(dry_run):
    assert_refused(dry_run(SMOKE_LIKE, "--pack-size", "0"),
                   "regbench: error: --pack-size: expected an integer >= 1, got 0")


@pytest.mark.parametrize("flag", ["--pack-size", "--workers"])
def test_reproduce_refuses_a_packing_option_below_1_before_it_trains(flag, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["reproduce", "ioffe2015_bn_mnist", flag, "0"])
    out, err = capsys.readouterr()
    assert_refused((code, out, err), f"regbench: error: {flag}: expected an integer >= 1, got")
    assert list(tmp_path.iterdir()) == []
