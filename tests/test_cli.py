"""The command line, end to end on real MNIST, as a user runs it (a fresh interpreter each time).

One session-wide run of ablations/smoke.toml (3 arms x 2 seeds, 2,000 images, 2 epochs) feeds
most tests; a smaller study is killed mid-run and resumed.
"""

import importlib.metadata
import json
import math
import re
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

import regbench
from regbench.data import DATASETS
from regbench.study import load_study

pytestmark = pytest.mark.slow  # every test starts `regbench` in a fresh interpreter

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "ablations" / "smoke.toml"
TECHNIQUES = ["l1", "l2", "l1_l2", "dropout", "batchnorm", "augmentation", "early_stopping",
              "max_norm", "kl_sparsity", "l1_late", "weight_decay", "random_crop",
              "gaussian_noise"]
VALID_TECHNIQUES = ", ".join(TECHNIQUES)
METRICS = [f"{split}_{m}" for split in ("train", "val", "test") for m in ("acc", "xent")]
SPARSITY = ["sparsity_zero", "sparsity_lt_1e-3", "sparsity_lt_1e-2", "sparsity_rel_1pct"]
PROVENANCE = ["regbench_version", "git_commit", "keras_version", "backend", "device",
              "deterministic", "dataset_sha256"]
HISTORY = ["loss", "acc", "xent", "val_loss", "val_acc", "val_xent", "epoch_s"]


def stored_lines(path):
    """Every line of a store, each of which must be one whole JSON row."""
    text = Path(path).read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


# --- the smoke study -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke(smoke_run):
    result, path = smoke_run
    assert result.returncode == 0, result.stderr
    return result, path, stored_lines(path)


def test_run_trains_every_cell_once(smoke):
    result, path, rows = smoke
    cells = load_study(SMOKE).cells()
    assert [row["key"] for row in rows] == [cell.key for cell in cells]
    assert [(row["arm"], row["seed"]) for row in rows] == [
        ("none", 0), ("l1", 0), ("dropout", 0), ("none", 1), ("l1", 1), ("dropout", 1)]
    assert f"smoke: 6 cells, 0 stored, 6 to train -> {path}" in result.stderr
    assert all(row["status"] == "ok" for row in rows)


def test_rows_have_every_field(smoke):
    for row in smoke[2]:
        assert row["study"] == "smoke" and row["dataset"] == "mnist" and row["model"] == "mlp"
        assert row["problem"] == "mnist_mlp"
        for name in METRICS:
            assert math.isfinite(row[name]), name
        for name in [m for m in METRICS if m.endswith("acc")] + SPARSITY:
            assert 0.0 <= row[name] <= 1.0, name
        assert row["gap_acc"] == pytest.approx(row["train_acc"] - row["test_acc"])
        assert row["gap_xent"] == pytest.approx(row["test_xent"] - row["train_xent"])
        assert row["epochs_run"] == 2 and row["best_epoch"] in (1, 2)
        assert row["l1_norm"] > 0 and row["l2_norm"] > 0
        assert list(row["layers"]) == ["hidden_0", "output"]
        assert row["layers"]["hidden_0"]["shape"] == [784, 32]
        assert row["n_fit"] == 2000 and row["train_subset"] == 2000 and row["epochs"] == 2
        assert row["fit_s"] > 0 and row["epoch_s"] > 0
        assert row["examples_per_s"] == pytest.approx(2000 * 2 / row["fit_s"])


def test_history_has_per_epoch_lists(smoke):
    for row in smoke[2]:
        assert set(HISTORY) <= set(row["history"])
        for name, values in row["history"].items():
            assert isinstance(values, list) and len(values) == 2, name
        best = min(range(2), key=row["history"]["val_xent"].__getitem__)
        assert row["best_epoch"] == best + 1


def test_penalty_only_where_a_penalty_technique_is(smoke):
    by_arm = {(row["arm"], row["seed"]): row for row in smoke[2]}
    for seed in (0, 1):
        assert by_arm["none", seed]["penalty"] == 0.0
        assert by_arm["dropout", seed]["penalty"] == 0.0
        l1 = by_arm["l1", seed]
        assert l1["penalty"] == pytest.approx(0.01 * l1["l1_norm"], rel=1e-4)
        assert l1["techniques"] == ["l1"] and l1["l1.factor"] == 0.01
        assert by_arm["dropout", seed]["dropout.rate"] == 0.5
        assert by_arm["none", seed]["techniques"] == []


def test_rows_carry_provenance(smoke):
    for row in smoke[2]:
        assert set(PROVENANCE) <= set(row)
        assert row["regbench_version"] == regbench.__version__
        assert row["keras_version"] == importlib.metadata.version("keras")
        assert row["backend"] == "tensorflow"
        assert isinstance(row["device"], str) and row["device"]
        assert row["deterministic"] is True
        assert row["dataset_sha256"] == DATASETS["mnist"].sha256
        if (REPO / ".git").exists():
            assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", row["git_commit"])


def test_pandas_reads_the_store(smoke):
    df = pd.read_json(smoke[1], lines=True)
    assert len(df) == 6 and df.groupby("arm")["test_acc"].count().to_dict() == {
        "none": 2, "l1": 2, "dropout": 2}


def test_running_again_trains_nothing(smoke, regbench_cli, data_dir):
    _, path, _ = smoke
    before = path.read_bytes()
    again = regbench_cli("run", SMOKE, "--store", path, cwd=path.parent, data_dir=data_dir)
    assert again.returncode == 0, again.stderr
    assert f"smoke: 6 cells, 6 stored, 0 to train -> {path}" in again.stderr
    assert "[1/" not in again.stderr  # no cell started
    assert path.read_bytes() == before


def test_show_prints_one_line_per_arm(smoke, regbench_cli):
    _, path, _ = smoke
    shown = regbench_cli("show", path, cwd=path.parent)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "mnist_mlp:" and lines[1].split()[:4] == ["arm", "n", "test", "acc"]
    assert [line.split()[:2] for line in lines[3:]] == [["none", "2"], ["l1", "2"],
                                                        ["dropout", "2"]]
    assert all(re.search(r"\d\.\d{4}±\d\.\d{4}", line) for line in lines[3:])
    assert all(re.search(r"[+-]\d+\.\d\d \[[+-]\d+\.\d,[+-]\d+\.\d\]", line)
               for line in lines[4:])  # against none, with its interval


def test_dry_run_lists_the_cells(smoke, regbench_cli, tmp_path):
    _, done, _ = smoke
    keys = [cell.key for cell in load_study(SMOKE).cells()]
    fresh = tmp_path / "fresh.jsonl"
    for path, state in [(done, "done"), (fresh, "todo")]:
        listed = regbench_cli("run", SMOKE, "--store", path, "--dry-run", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert [line.split()[:2] for line in lines[:-1]] == [[key, state] for key in keys]
        assert lines[0].split()[2:] == ["mnist", "mlp", "none", "seed=0"]
        to_train = 0 if state == "done" else 6
        assert lines[-1] == f"6 cells, {to_train} to train, store {path}"
    assert not fresh.exists()


def test_list_mentions_every_technique(regbench_cli, tmp_path):
    listed = regbench_cli("list", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stderr == ""
    for name in [*TECHNIQUES, "none", "mnist", "fashion_mnist", "cifar10", "mlp", "cnn",
                 "explicit", "one_at_a_time", "leave_one_out", "factorial"]:
        assert re.search(rf"\b{name}\b", listed.stdout), name


# --- bad input: one line, status 2, before TensorFlow, nothing written -----------------------

GOOD = """
datasets = ["mnist"]
seeds = 1
[training]
epochs = 1
train_subset = 100
[design]
arms = ["none"]
"""

BAD = {  # case: (study file text or None for no file, extra arguments, message after the path)
    "malformed TOML": ('datasets = ["mnist"\n', [], None),
    "unknown key": ("epoch = 3\n" + GOOD, [], "unknown key `epoch`. Valid keys: name, "
                                             "description, datasets, seeds, model, training, "
                                             "sweep, techniques, design"),
    "unknown technique": (
        GOOD + '[techniques.decay]\nfactor = 0.1\n', [],
        f"techniques.decay: unknown technique `decay`. Valid techniques: {VALID_TECHNIQUES}"),
    "unknown dataset": (
        GOOD.replace('"mnist"', '"svhn"'), [],
        "datasets: unknown dataset `svhn`. Valid datasets: mnist, fashion_mnist, cifar10, "
        "npz:PATH (your arrays), tfds:NAME (tensorflow-datasets)"),
    "dropout rate 1.5": (
        GOOD + "[techniques.dropout]\nrate = 1.5\n", [],
        "techniques.dropout: Invalid value for argument `rate`. Expected a float in [0, 1). "
        "Received: rate=1.5"),
    "missing file": (None, [], "cannot read study file (No such file or directory)"),
}
BAD_ARGS = {  # case: (extra arguments, the whole message)
    "zero epochs": (["--epochs", "0"], "--epochs: Invalid value for argument `epochs`. "
                                       "Expected an integer > 0. Received: epochs=0"),
    "zero seeds": (["--seeds", "0"], "--seeds: expected an integer in [1, 10000], got 0"),
    "negative subset": (["--train-subset", "-5"], "--train-subset: Invalid value for argument "
                                                  "`train_subset`. Expected an integer >= 0 "
                                                  "(0 = all). Received: train_subset=-5"),
    "unknown flag": (["--bogus"], "unrecognized arguments: --bogus"),
    "not a number": (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
}


def assert_refused(result, message):
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"regbench: error: {message}"]  # nothing from TF
    assert result.stdout == ""


@pytest.mark.parametrize("text, extra, message", BAD.values(), ids=BAD)
def test_bad_study_file(regbench_cli, tmp_path, text, extra, message):
    path = tmp_path / "bad.toml"
    if text is not None:
        path.write_text(text)
    results = tmp_path / "out" / "results.jsonl"
    refused = regbench_cli("run", path, "--store", results, *extra, cwd=tmp_path)
    if message is None:  # the TOML parser's own words, after ours
        assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
        assert refused.stderr.startswith(f"regbench: error: {path}: malformed TOML: ")
    else:
        assert_refused(refused, f"{path}: {message}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, message", BAD_ARGS.values(), ids=BAD_ARGS)
def test_bad_arguments(regbench_cli, write_study, tmp_path, extra, message):
    results = tmp_path / "out" / "results.jsonl"
    refused = regbench_cli("run", write_study(GOOD), "--store", results, *extra, cwd=tmp_path)
    assert_refused(refused, message)
    assert not (tmp_path / "out").exists()


def test_an_existing_store_is_left_alone(regbench_cli, write_study, tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_text('{"key": "x", "status": "ok"}\n{"key": "y", "sta')  # partial last line
    before = results.read_bytes()
    path = write_study(GOOD + "[techniques.dropout]\nrate = 1.5\n")
    refused = regbench_cli("run", path, "--store", results, "--epochs", "1", cwd=tmp_path)
    assert_refused(refused, f"{path}: techniques.dropout: Invalid value for argument `rate`. "
                            "Expected a float in [0, 1). Received: rate=1.5")
    assert results.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl", "study.toml"]


def test_show_without_results(regbench_cli, tmp_path):
    assert_refused(regbench_cli("show", tmp_path / "none.jsonl", cwd=tmp_path),
                   f"{tmp_path / 'none.jsonl'}: no such results file")


def test_no_command_prints_the_usage_and_the_commands(regbench_cli, tmp_path):
    bare = regbench_cli(cwd=tmp_path)
    assert bare.returncode == 2 and bare.stderr == ""
    assert bare.stdout.startswith("usage: regbench [-h] [--version] COMMAND ...")
    assert "studies and reports:" in bare.stdout and list(tmp_path.iterdir()) == []


# --- killed and resumed ----------------------------------------------------------------------

KILLABLE = """
name = "killable"
datasets = ["mnist"]
seeds = 1
[model]
hidden = [16]
[training]
epochs = 1
batch_size = 64
train_subset = 1000
validation_fraction = 0.05
[design]
arms = ["none", "dropout"]
"""


def test_a_killed_run_resumes_with_each_cell_stored_once(start_cli, regbench_cli, data_dir,
                                                        write_study, tmp_path):
    study = write_study(KILLABLE)
    results = tmp_path / "killable.jsonl"
    keys = [cell.key for cell in load_study(study).cells()]
    with open(tmp_path / "first.log", "w") as log:
        runner = start_cli("run", study, "--store", results, cwd=tmp_path, data_dir=data_dir,
                           stdout=log, stderr=log)
        deadline = time.monotonic() + 240
        while not (results.exists() and b"\n" in results.read_bytes()):
            assert runner.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "no row written in time"
            time.sleep(0.05)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=60)
    assert runner.returncode == -signal.SIGKILL  # killed mid-study, not finished
    first = stored_lines(results)
    assert [row["key"] for row in first] == keys[:1]
    with open(results, "a") as f:
        f.write('{"key": "half a row from a writer killed in mid-wr')

    resumed = regbench_cli("run", study, "--store", results, cwd=tmp_path, data_dir=data_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "killable: 2 cells, 1 stored, 1 to train" in resumed.stderr
    final = stored_lines(results)  # the partial line is gone; every line is a whole row
    assert sorted(row["key"] for row in final) == sorted(keys)
    assert len(final) == len(keys) == len(set(keys))
    assert final[:len(first)] == first
