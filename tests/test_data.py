"""regbench.data against the real datasets in $REGBENCH_DATA_DIR and a real local HTTP server.

CI sets REGBENCH_DATA_DIR=../shared/datasets (relative to the repo root). Locally, set it, or
keep the datasets at <repo>/../shared/datasets; without either, these tests are skipped.
"""

import gzip
import hashlib
import http.server
import io
import os
import pickle
import shutil
import tarfile
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from regbench import data
from regbench.data import DATASETS, Arrays, DataError, dataset_hashes, load, split

REPO = Path(__file__).resolve().parents[1]
_ENV_DIR = os.environ.get("REGBENCH_DATA_DIR")
DATA_DIR = REPO / (_ENV_DIR or "../shared/datasets")  # an absolute env value wins the `/`
pytestmark = pytest.mark.skipif(
    not _ENV_DIR and not (DATA_DIR / "mnist.npz").is_file(),
    reason="real datasets not found: set REGBENCH_DATA_DIR",
)

# Verification numbers of the shared copies (from their provenance notes), pinned here: shapes
# and the first ten labels, class counts, and the pixel mean / 255 (per channel for CIFAR-10).
EXPECTED = {
    "mnist": ((60000, 28, 28, 1), (10000, 28, 28, 1), [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]),
    "fashion_mnist": ((60000, 28, 28, 1), (10000, 28, 28, 1), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]),
    "cifar10": ((50000, 32, 32, 3), (10000, 32, 32, 3), [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]),
}
Y_TEST_10 = {
    "mnist": [7, 2, 1, 0, 4, 1, 4, 9, 5, 9],
    "fashion_mnist": [9, 2, 1, 1, 6, 1, 4, 6, 5, 7],
    "cifar10": [3, 8, 8, 0, 6, 6, 1, 6, 3, 1],
}
CLASS_COUNTS = {  # (train, test)
    "mnist": ([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
              [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    "fashion_mnist": ([6000] * 10, [1000] * 10),
    "cifar10": ([5000] * 10, [1000] * 10),
}
PIXEL_MEAN = {  # (train, test), of x / 255, to 4 digits
    "mnist": ([0.1307], [0.1325]),
    "fashion_mnist": ([0.2860], [0.2868]),
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.4942, 0.4851, 0.4504]),
}
# A test that reads the whole of CIFAR-10 (170 MB compressed) takes a few seconds.
ALL = ["mnist", "fashion_mnist", pytest.param("cifar10", marks=pytest.mark.slow)]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Never touch the user's cache or the internet: a tmp cache and a dead download URL."""
    monkeypatch.setenv("REGBENCH_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("REGBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REGBENCH_DOWNLOAD_URL", "http://127.0.0.1:9/")  # discard port: refused
    import keras  # its download cache: $KERAS_HOME is read once, when Keras is imported

    (tmp_path / "keras").mkdir()  # Keras falls back to /tmp/.keras for a missing folder
    monkeypatch.setattr(keras.src.backend.config, "_KERAS_DIR", str(tmp_path / "keras"))


def raw(name):
    """The shared arrays as plain writable numpy arrays, bypassing regbench.data."""
    with np.load(DATA_DIR / f"{name}.npz") as f:
        return {k: f[k] for k in data.ARRAY_NAMES}


# --- the real datasets ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_registry_hashes_are_those_of_the_real_arrays(name):
    """Each array read straight from the file (numpy, not regbench.data) and hashed here has
    the registry's SHA-256, and is the known dataset: its class counts and pixel mean."""
    arrays = raw(name)
    assert {key: hashlib.sha256(arr.tobytes()).hexdigest() for key, arr in arrays.items()} == (
        DATASETS[name].sha256)
    for split_, (x, y) in {"train": (arrays["x_train"], arrays["y_train"]),
                           "test": (arrays["x_test"], arrays["y_test"])}.items():
        i = 0 if split_ == "train" else 1
        assert np.bincount(y, minlength=10).tolist() == CLASS_COUNTS[name][i], split_
        channels = x.reshape(len(x), -1, len(PIXEL_MEAN[name][i]))
        mean = channels.mean(axis=(0, 1), dtype=np.float64) / 255
        assert mean.round(4).tolist() == PIXEL_MEAN[name][i], split_


@pytest.mark.parametrize("name", ALL)
def test_load_real_dataset(name):
    train_shape, test_shape, y_train_10 = EXPECTED[name]
    a = load(name)
    assert isinstance(a, Arrays)
    assert a.source == str((DATA_DIR / f"{name}.npz").resolve())
    assert a.x_train.shape == train_shape and a.x_test.shape == test_shape
    assert a.y_train.shape == train_shape[:1] and a.y_test.shape == test_shape[:1]
    for arr in (a.x_train, a.y_train, a.x_test, a.y_test):
        assert arr.dtype == np.uint8
        assert not arr.flags.writeable  # shared by every load in this process
    assert a.y_train[:10].tolist() == y_train_10
    assert a.y_test[:10].tolist() == Y_TEST_10[name]
    assert np.bincount(a.y_train).size == 10 and np.bincount(a.y_train).min() > 0
    assert a.x_train.shape[1:] == DATASETS[name].image_shape
    for key, expected in dataset_hashes(name).items():
        assert hashlib.sha256(getattr(a, key).tobytes()).hexdigest() == expected
    assert load(name) is a  # verified once per process


@pytest.mark.slow  # reads CIFAR-10
def test_cifar10_is_hwc_rgb():
    # The first red-channel bytes of x_train[0] are those of the official binary release.
    assert load("cifar10").x_train[0, 0, :6, 0].tolist() == [59, 43, 50, 68, 98, 119]


def test_registry():
    assert list(DATASETS) == ["mnist", "fashion_mnist", "cifar10"]
    assert [d.flip_ok for d in DATASETS.values()] == [False, False, True]
    assert all(d.classes == 10 for d in DATASETS.values())
    h = dataset_hashes("mnist")
    h["x_train"] = "changed"
    assert DATASETS["mnist"].sha256["x_train"] != "changed"  # a copy


def test_unknown_name_lists_valid_names():
    for bad in (lambda: load("cifar100"), lambda: dataset_hashes("cifar100")):
        with pytest.raises(DataError, match="valid names: mnist, fashion_mnist, cifar10"):
            bad()


def test_file_replaced_on_disk_is_verified_again(tmp_path):
    shutil.copy(DATA_DIR / "mnist.npz", tmp_path / "mnist.npz")
    first = load("mnist", data_dir=tmp_path)
    assert load("mnist", data_dir=tmp_path) is first
    os.utime(tmp_path / "mnist.npz", ns=(1, 1))
    assert load("mnist", data_dir=tmp_path) is not first


# --- corrupt files ---------------------------------------------------------------------------


def test_one_changed_byte_fails_checksum(tmp_path):
    arrays = raw("mnist")
    arrays["x_test"][1234, 5, 6] ^= 1
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(DataError) as e:
        load("mnist", data_dir=tmp_path)
    msg = str(e.value)
    assert str((tmp_path / "mnist.npz").resolve()) in msg
    assert "x_test fails its checksum" in msg and dataset_hashes("mnist")["x_test"] in msg
    assert "\n" not in msg


def test_truncated_file_is_unreadable(tmp_path):
    blob = (DATA_DIR / "mnist.npz").read_bytes()
    (tmp_path / "mnist.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="is unreadable") as e:
        load("mnist", data_dir=tmp_path)
    assert str((tmp_path / "mnist.npz").resolve()) in str(e.value) and "\n" not in str(e.value)


def test_missing_array_is_named(tmp_path):
    arrays = raw("mnist")
    del arrays["y_test"]
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(DataError, match="lacks array.*y_test"):
        load("mnist", data_dir=tmp_path)


# --- lookup order and the how-to message ---------------------------------------------------


def test_missing_everywhere_says_how_to_provide_it(monkeypatch, tmp_path):
    monkeypatch.delenv("REGBENCH_DATA_DIR")
    with pytest.raises(DataError) as e:
        load("mnist", download=False)
    msg = str(e.value)
    assert "REGBENCH_DATA_DIR (not set)" in msg and str(tmp_path / "cache") in msg
    assert "download disabled" in msg and "put mnist.npz" in msg and "--data-dir" in msg

    with pytest.raises(DataError) as e:  # explicit empty folder; download refused
        load("fashion_mnist", data_dir=tmp_path)
    msg = str(e.value)
    assert f"data_dir={tmp_path}" in msg and "download failed (URL fetch failure on https://" in msg
    assert "Connection refused" in msg
    assert "put fashion_mnist.npz" in msg and "\n" not in msg


def test_folder_without_the_file_falls_through_to_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(DATA_DIR / "mnist.npz", cache / "mnist.npz")
    a = load("mnist", data_dir=tmp_path, download=False)
    assert a.source == str((cache / "mnist.npz").resolve())


# --- downloads through keras.datasets from a real local HTTP server --------------------------
# Keras checks each file it downloads against the SHA-256 of the canonical file. The files
# served here are rebuilt from the shared arrays (the canonical bytes are not on this
# machine), so `keras_accepts_them` stands in for that one check; everything else (the
# mirror, Keras's download and parsing, regbench's per-array checksums and cache) is real.
# `test_keras_checks_the_files_it_downloads` shows the check is live without it.

FASHION_FILES = (  # Keras's order: (array, canonical file name)
    ("y_train", "train-labels-idx1-ubyte.gz"),
    ("x_train", "train-images-idx3-ubyte.gz"),
    ("y_test", "t10k-labels-idx1-ubyte.gz"),
    ("x_test", "t10k-images-idx3-ubyte.gz"),
)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serves tmp_path/www over HTTP on 127.0.0.1 and records every request path; Keras's
    download cache is a fresh folder (`isolated`)."""
    root = tmp_path / "www"
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.delenv("REGBENCH_DATA_DIR")
    monkeypatch.setenv("REGBENCH_DOWNLOAD_URL", f"http://127.0.0.1:{httpd.server_port}")
    yield SimpleNamespace(root=root, hits=hits, cache=tmp_path / "cache",
                          keras=tmp_path / "keras" / "datasets")
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def keras_accepts_them(monkeypatch):
    import keras

    monkeypatch.setattr(keras.src.utils.file_utils, "validate_file", lambda *a, **k: True)


def assert_same(a, name):
    for key, arr in raw(name).items():
        assert np.array_equal(getattr(a, key).reshape(arr.shape), arr), key


def test_download_mnist_then_cache(server, keras_accepts_them, capsys):
    shutil.copy(DATA_DIR / "mnist.npz", server.root / "mnist.npz")
    a = load("mnist")
    assert server.hits == ["/mnist.npz"]
    assert_same(a, "mnist")
    cached = server.cache / "mnist.npz"
    assert a.source == str(cached) and cached.is_file()
    assert [p.name for p in server.cache.iterdir()] == ["mnist.npz"]  # no temp files left
    assert (server.keras / "mnist.npz").is_file()  # Keras's own copy, in Keras's cache
    out = capsys.readouterr()
    assert out.out == "" and out.err == (f"regbench: downloading mnist from "
                                         f"{os.environ['REGBENCH_DOWNLOAD_URL']}/mnist.npz\n")

    b = load("mnist")
    assert server.hits == ["/mnist.npz"]  # served from the cache
    assert b.source == str(cached.resolve())
    assert_same(b, "mnist")


def test_keras_checks_the_files_it_downloads(server):
    shutil.copy(DATA_DIR / "mnist.npz", server.root / "mnist.npz")  # not the canonical bytes
    with pytest.raises(DataError) as e:
        load("mnist")
    msg = str(e.value)
    assert server.hits == ["/mnist.npz"] and "\n" not in msg
    assert "download failed (ValueError: Incomplete or corrupted file detected" in msg
    assert not server.cache.exists() or not any(server.cache.iterdir())  # nothing cached


def idx_gz(arr):
    header = bytes([0, 0, 8, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    return gzip.compress(header + arr.tobytes(), compresslevel=1)


@pytest.mark.slow  # gzips the whole of Fashion-MNIST
def test_download_fashion_mnist_idx_files(server, keras_accepts_them):
    arrays = raw("fashion_mnist")
    for key, fname in FASHION_FILES:
        (server.root / fname).write_bytes(idx_gz(arrays[key]))
    a = load("fashion_mnist")
    assert server.hits == ["/" + f for _, f in FASHION_FILES]
    assert_same(a, "fashion_mnist")
    assert (server.cache / "fashion_mnist.npz").is_file()


def test_download_serving_a_corrupted_file_fails_checksum(server, keras_accepts_them):
    arrays = raw("mnist")
    arrays["y_train"][7] = (arrays["y_train"][7] + 1) % 10
    np.savez(server.root / "mnist.npz", **arrays)
    with pytest.raises(DataError) as e:
        load("mnist")
    msg = str(e.value)
    assert "y_train fails its checksum" in msg
    assert dataset_hashes("mnist")["y_train"] in msg
    assert not server.cache.exists() or not any(server.cache.iterdir())  # nothing cached


def test_download_unreadable_and_missing_files(server, keras_accepts_them, capsys):
    (server.root / "mnist.npz").write_bytes(b"<html>not a zip</html>")
    with pytest.raises(DataError, match=r"mnist: .*download failed \(ValueError: This file "
                                        r"contains pickled.*--data-dir"):
        load("mnist")
    with pytest.raises(DataError, match=r"download failed \(URL fetch failure on "
                                        r"https://.*train-labels-idx1-ubyte.gz: 404.*--data-dir"):
        load("fashion_mnist")
    assert server.hits[-1] == "/train-labels-idx1-ubyte.gz"
    assert capsys.readouterr().err.splitlines() == [  # said for the file served, not the 404
        f"regbench: downloading mnist from {os.environ['REGBENCH_DOWNLOAD_URL']}/mnist.npz"]


def cifar_tar(arrays, n=10000, extra_member=None):
    """A cifar-10-python.tar.gz in the original layout, n images per batch."""

    def batch(x, y):  # {b"data": (N, 3072) CHW rows, b"labels": [int]} like the original
        rows = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)
        d = {b"batch_label": b"b", b"labels": y.tolist(), b"data": rows, b"filenames": []}
        return pickle.dumps(d, protocol=4)

    members = {
        f"data_batch_{i}": batch(
            arrays["x_train"][(i - 1) * 10000 :][:n], arrays["y_train"][(i - 1) * 10000 :][:n]
        )
        for i in range(1, 6)
    }
    members["test_batch"] = batch(arrays["x_test"][:n], arrays["y_test"][:n])
    members.update(extra_member or {})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


@pytest.mark.slow  # builds and reads the whole 180 MB tarball
def test_download_cifar10_tarball(server, keras_accepts_them):
    (server.root / "cifar-10-python.tar.gz").write_bytes(cifar_tar(raw("cifar10")))
    a = load("cifar10")
    assert server.hits == ["/cifar-10-python.tar.gz"]
    assert_same(a, "cifar10")  # Keras's (N, 1) labels come out 1-D


def test_cifar10_pickle_may_not_run_code(server, keras_accepts_them):
    tiny = {k: np.zeros((1, 32, 32, 3) if k[0] == "x" else 1, np.uint8) for k in data.ARRAY_NAMES}
    blob = cifar_tar(tiny, 1, {"data_batch_1": pickle.dumps(os.getcwd)})
    (server.root / "cifar-10-python.tar.gz").write_bytes(blob)
    with pytest.raises(DataError, match=r"download failed \(UnpicklingError: Refusing to "
                                        r"deserialize `posix.getcwd`"):
        load("cifar10")


# --- split -----------------------------------------------------------------------------------


def test_split_is_seeded_stratified_and_disjoint():
    y = load("mnist").y_train
    x = np.arange(len(y))  # x identifies each example
    x_fit, y_fit, x_val, y_val = split(x, y, 0.1, seed=0)
    assert len(x_val) == 6000 and len(x_fit) == 54000
    assert np.intersect1d(x_fit, x_val).size == 0
    assert np.array_equal(np.sort(np.concatenate([x_fit, x_val])), x)
    assert np.array_equal(y[x_fit], y_fit) and np.array_equal(y[x_val], y_val)
    assert np.all(np.diff(x_val) > 0)  # original order kept
    share = np.bincount(y_val, minlength=10) - np.bincount(y, minlength=10) * 0.1
    assert np.all(np.abs(share) <= 1)

    again = split(x, y, 0.1, seed=0)
    assert all(
        np.array_equal(p, q) for p, q in zip(again, (x_fit, y_fit, x_val, y_val), strict=True)
    )
    assert not np.array_equal(split(x, y, 0.1, seed=1)[2], x_val)


def test_split_real_images_without_mutation():
    a = load("mnist")
    x_fit, y_fit, x_val, y_val = split(a.x_train, a.y_train, 0.25, seed=3)
    assert x_fit.shape == (45000, 28, 28, 1) and x_val.shape == (15000, 28, 28, 1)
    assert x_fit.dtype == np.uint8 and y_val.dtype == np.uint8
    assert load("mnist").x_train is a.x_train  # inputs untouched (they are read-only anyway)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 0.00001])
def test_split_rejects_empty_parts(fraction):
    with pytest.raises(DataError, match="empty fit or validation set"):
        split(np.zeros((100, 2)), np.zeros(100, np.uint8), fraction, seed=0)
