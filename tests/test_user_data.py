"""A user's datasets: npz arrays and tensorflow-datasets, read, keyed, refused and trained.

The npz files are cut from the real MNIST of $REGBENCH_DATA_DIR. The tfds tests need no
network: one uses `tfds.testing.mock_data` on a catalogue dataset, and one prepares a dataset
in tfds's own format from local arrays and trains a real study on it end to end.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regbench import data, user_data
from regbench.errors import RegbenchError
from regbench.study import load_study

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / (os.environ.get("REGBENCH_DATA_DIR") or "../shared/datasets")
pytestmark = pytest.mark.skipif(not (DATA_DIR / "mnist.npz").is_file(),
                                reason="real datasets not found: set REGBENCH_DATA_DIR")

STUDY = """name = "mine"
datasets = ["{dataset}"]
seeds = 2
[model]
hidden = [16]
[training]
epochs = 3
batch_size = 32
[techniques.dropout]
[design]
kind = "explicit"
arms = ["none", "dropout"]
"""


@pytest.fixture(autouse=True)
def fresh_caches():
    """Each test reads its datasets anew (the caches are per process and keyed by name)."""
    for cached in (user_data._tfds_arrays, user_data._tfds_features, user_data._npz_arrays):
        cached.cache_clear()


def mnist_part(train=600, test=200):
    with np.load(DATA_DIR / "mnist.npz") as f:
        return {"x_train": f["x_train"][:train], "y_train": f["y_train"][:train],
                "x_test": f["x_test"][:test], "y_test": f["y_test"][:test]}


def study_file(folder: Path, dataset: str) -> Path:
    path = folder / "study.toml"
    path.write_text(STUDY.format(dataset=dataset))
    return path


def run(*args, env=None, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "regbench", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=600)


# --- npz ------------------------------------------------------------------------------------

def test_npz_is_found_beside_the_study_and_keyed_by_content_not_path(tmp_path):
    arrays = mnist_part()
    (tmp_path / "a").mkdir()
    np.savez(tmp_path / "a" / "mine.npz", **arrays)
    study = load_study(study_file(tmp_path / "a", "npz:mine.npz"))
    assert study.datasets == (f"npz:{tmp_path / 'a' / 'mine.npz'}",)
    info = data.info(study.datasets[0])
    assert (info.image_shape, info.classes, info.train_size, info.test_size) == (
        (28, 28, 1), 10, 600, 200)
    assert info.sha256["y_test"] == hashlib.sha256(arrays["y_test"].tobytes()).hexdigest()
    assert not info.flip_ok  # "auto" never flips a user's images

    (tmp_path / "b").mkdir()  # the same bytes elsewhere: the same cells
    (tmp_path / "b" / "mine.npz").write_bytes((tmp_path / "a" / "mine.npz").read_bytes())
    moved = load_study(study_file(tmp_path / "b", "npz:mine.npz"))
    assert [c.key for c in moved.cells()] == [c.key for c in study.cells()]

    arrays["y_train"] = arrays["y_train"].copy()
    arrays["y_train"][0] = (arrays["y_train"][0] + 1) % 10  # one label changed: new cells
    np.savez(tmp_path / "b" / "mine.npz", **arrays)
    changed = load_study(study_file(tmp_path / "b", "npz:mine.npz"))
    assert not {c.key for c in changed.cells()} & {c.key for c in study.cells()}


def test_npz_labels_of_shape_n_1_and_images_with_channels(tmp_path):
    arrays = mnist_part()
    arrays["y_train"] = arrays["y_train"].reshape(-1, 1).astype(np.int64)  # keras cifar10's
    arrays["x_test"] = arrays["x_test"][..., None]
    np.savez(tmp_path / "mine.npz", **arrays)
    got = data.load(data.resolve("npz:mine.npz", tmp_path))
    assert got.y_train.shape == (600,) and got.x_test.shape == (200, 28, 28, 1)
    assert np.array_equal(got.y_train, mnist_part()["y_train"])


BAD_NPZ = {
    "a missing array": (lambda a: a.pop("y_test"), "lacks array(s) y_test"),
    "float images": (lambda a: a.update(x_train=a["x_train"] / 255.0),
                     "x_train has dtype float64 and shape (600, 28, 28); expected uint8"),
    "labels of another length": (lambda a: a.update(y_train=a["y_train"][:10]),
                                 "y_train has dtype uint8 and shape (10,); expected integer"),
    "float labels": (lambda a: a.update(y_test=a["y_test"].astype(np.float32)),
                     "y_test has dtype float32"),
    "images of two sizes": (lambda a: a.update(x_test=a["x_test"][:, :20, :20]),
                            "x_train's images are (28, 28, 1), x_test's (20, 20, 1)"),
    "negative labels": (lambda a: a.update(y_test=a["y_test"].astype(np.int8) - 1),
                        "y_test has a negative label (-1)"),
}


@pytest.mark.parametrize("case", BAD_NPZ)
def test_a_malformed_npz_is_one_line_naming_the_array(tmp_path, case):
    arrays = mnist_part()
    change, expected = BAD_NPZ[case]
    change(arrays)
    np.savez(tmp_path / "mine.npz", **arrays)
    with pytest.raises(RegbenchError) as error:
        load_study(study_file(tmp_path, "npz:mine.npz"))
    assert expected in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith(f"{tmp_path / 'study.toml'}: datasets: npz:")


@pytest.mark.slow  # starts regbench
def test_bad_npz_on_the_command_line_is_status_2_and_writes_nothing(tmp_path):
    np.savez(tmp_path / "mine.npz", x_train=np.zeros((4, 2, 2), np.uint8))
    (tmp_path / "notzip.npz").write_text("not a zip")
    for name, expected in (("mine.npz", "lacks array(s) y_train, x_test, y_test"),
                           ("notzip.npz", "unreadable as npz"), ("absent.npz", "no file")):
        result = run("run", str(study_file(tmp_path, f"npz:{name}")), "--store",
                     str(tmp_path / "s.jsonl"))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], result.stderr
        assert not (tmp_path / "s.jsonl").exists() and result.stdout == ""


# --- tensorflow-datasets --------------------------------------------------------------------

tfds = pytest.importorskip("tensorflow_datasets")


def test_a_catalogue_dataset_under_tfds_mock_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with tfds.testing.mock_data(num_examples=24):
        name = data.resolve("tfds:svhn_cropped", tmp_path)
        assert name == "tfds:svhn_cropped:3.1.0"
        info = data.info(name)
        got = data.load(name)
    assert (info.image_shape, info.classes, info.train_size, info.test_size) == (
        (32, 32, 3), 10, 24, 24)
    assert got.x_train.shape == (24, 32, 32, 3) and got.x_train.dtype == np.uint8
    assert got.y_test.shape == (24,) and 0 <= got.y_test.min() and got.y_test.max() < 10
    assert data.source(name) == {"kind": "tfds", "name": "svhn_cropped", "version": "3.1.0",
                                 "train": 24, "test": 24}
    assert info.sha256["x_train"] == hashlib.sha256(got.x_train.tobytes()).hexdigest()


@pytest.mark.parametrize("name, expected", [
    ("tfds:imdb_reviews", "tfds:imdb_reviews/plain_text:1.0.0 is not image classification: "
                          "needs an image feature and a ClassLabel label, has text: Text, "
                          "label: ClassLabel"),
    ("tfds:cats_vs_dogs", "its images have shape (None, None, 3)"),
    ("tfds:no_such_dataset_xyz", "no such tensorflow-datasets dataset"),
    ("tfds:mnist:9.9.9", "tfds:mnist:9.9.9:"),
])
def test_a_tfds_name_that_cannot_be_trained_is_refused_in_one_line(tmp_path, name, expected):
    with pytest.raises(RegbenchError) as error:
        load_study(study_file(tmp_path, name))
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_a_dataset_not_prepared_says_how_to_prepare_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(RegbenchError) as error:
        data.load(data.resolve("tfds:mnist", tmp_path))
    message = str(error.value)
    assert message.startswith(f"tfds:mnist:3.0.1 is not prepared in {tmp_path / 'empty'}")
    assert "tfds build mnist:3.0.1 --data_dir DIR" in message and "\n" not in message


def prepare_tfds(folder: Path, arrays: dict) -> None:
    """`local_digits` 1.0.0 in tfds's format (tfrecords and dataset_info.json) under `folder`,
    in a process of its own, as a user would prepare it."""
    np.savez(folder / "arrays.npz", **arrays)
    script = f"""
import numpy as np, tensorflow as tf, tensorflow_datasets as tfds
a = np.load({str(folder / 'arrays.npz')!r})
features = tfds.features.FeaturesDict({{"image": tfds.features.Image(shape=(28, 28, 1)),
                                        "label": tfds.features.ClassLabel(num_classes=10)}})
split = lambda s: tf.data.Dataset.from_tensor_slices(
    {{"image": a["x_" + s][..., None], "label": a["y_" + s].astype("int64")}})
tfds.dataset_builders.store_as_tfds_dataset(
    name="local_digits", version="1.0.0", features=features, config=None,
    split_datasets={{"train": split("train"), "test": split("test")}}, data_dir={str(folder)!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                   timeout=300)


@pytest.mark.slow  # prepares a tfds dataset and trains a study in real processes
def test_a_dataset_prepared_in_tfds_format_trains_a_study_end_to_end(tmp_path):
    arrays = mnist_part(train=2000, test=500)
    prepare_tfds(tmp_path, arrays)
    env = {"TFDS_DATA_DIR": str(tmp_path)}
    store, study = tmp_path / "s.jsonl", study_file(tmp_path, "tfds:local_digits")
    result = run("run", str(study), "--store", str(store), env=env)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert {r["dataset"] for r in rows} == {"tfds:local_digits:1.0.0"}
    assert rows[0]["dataset_source"] == {"kind": "tfds", "name": "local_digits",
                                         "version": "1.0.0", "train": 2000, "test": 500}
    # tfds shuffles examples when it writes them: the hashes name the arrays as it gives them
    assert rows[0]["n_test"] == 500 and rows[0]["n_fit"] + rows[0]["n_val"] == 2000
    assert all(r["test_acc"] > 0.6 for r in rows)  # 10 classes: real learning, not chance
    result = run("report", str(store), "--out", str(tmp_path / "report"), env=env)
    assert result.returncode == 0, result.stderr
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "tfds:local_digits:1.0.0" in readme
    assert ("tensorflow-datasets `local_digits` version 1.0.0: 2000 training examples "
            "(validation carved from them), 500 test examples.") in readme
