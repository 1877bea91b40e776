"""Benchmark datasets: find them, verify them byte for byte, split them.

Every array regbench trains or evaluates on is checked against its dtype, its shape and the
SHA-256 of its raw bytes (`hashlib.sha256(arr.tobytes())`), so a result row can name exactly
the data it used.

Where `load(name)` looks, in order:

1. the `data_dir` argument, else `$REGBENCH_DATA_DIR`: a folder holding `<name>.npz`
   (uint8 arrays under the keys x_train, y_train, x_test, y_test, labels 1-D);
2. the user cache: `$REGBENCH_CACHE_DIR/<name>.npz`, by default
   `~/.cache/regbench/datasets/<name>.npz` (`$XDG_CACHE_HOME` is honoured);
3. if `download` is true, the canonical download through `keras.datasets`
   (`regbench.downloads`), written atomically to the cache in the same npz layout.

A user's own arrays (`npz:PATH`) and tensorflow-datasets (`tfds:NAME`) are found by
`regbench.user_data`; `info`, `load` and `dataset_hashes` answer for them as for the built-ins.

A folder that lacks the file falls through to the next place; a file that is found but is
unreadable or fails its checksum is an error (never silently replaced by another copy).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regbench import downloads, interrupts, user_data
from regbench.errors import RegbenchError

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")

TEST_SIZE = 10000  # examples in x_test, for every dataset here


class DataError(RegbenchError):
    """A dataset is unknown, missing, unreadable or fails its checksum (one-line message)."""


@dataclass(frozen=True)
class DatasetInfo:
    """One registry entry.

    `image_shape` is the shape one example has as the model sees it (MNIST-style data gets a
    channel axis of 1). `flip_ok` says whether a horizontal flip preserves the label and so
    may be used as augmentation. regbench's policy is to flip only natural images: CIFAR-10
    yes; digits no (a mirrored 2 or 5 is not a digit); Fashion-MNIST no as well, although
    most garments are roughly symmetric, to keep the two 28x28 benchmarks comparable.
    """

    name: str
    image_shape: tuple
    classes: int
    flip_ok: bool
    sha256: dict  # array name -> hex digest of arr.tobytes()
    train_size: int  # examples in x_train
    test_size: int = TEST_SIZE  # examples in x_test


# Hashes copied from /work/shared/datasets/README.md (SHA-256 of each array's raw bytes).
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        (28, 28, 1),
        10,
        False,
        {
            "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
            "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
            "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
            "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
        },
        60000,
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist",
        (28, 28, 1),
        10,
        False,
        {
            "x_train": "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
            "y_train": "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
            "x_test": "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
            "y_test": "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
        },
        60000,
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        (32, 32, 3),
        10,
        True,
        {
            "x_train": "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
            "y_train": "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
            "x_test": "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
            "y_test": "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
        },
        50000,
    ),
}


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays with == is ambiguous
class Arrays:
    """A verified dataset. uint8; x is NHWC, y is 1-D. The arrays are read-only because one
    in-process copy is shared by every `load` of the same file (copy before mutating)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # the file (or URL, if the cache could not be written) the data came from


def info(name: str) -> DatasetInfo:
    """The registry entry for `name` (a user's dataset: read from its arrays), or a
    DataError listing the valid names."""
    if user_data.is_user(name):
        return _user_info(name)
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}, "
                        "npz:PATH, tfds:NAME") from None


def dataset_hashes(name: str) -> dict:
    """The expected SHA-256 of each array of `name` (a copy, for provenance rows)."""
    return dict(info(name).sha256)


def resolve(name: str, folder: Path) -> str:
    """The name a study's cells carry for what its file wrote: a built-in's own, a user's
    dataset found and fixed (`user_data.resolve`)."""
    return user_data.resolve(name, folder) if user_data.is_user(name) else info(name).name


def key_name(name: str) -> str:
    """What a cell's key holds for its dataset (an npz file's SHA-256, not its path)."""
    return user_data.key_name(name) if user_data.is_user(name) else name


def source(name: str) -> dict:
    """A user's dataset as every row records it (kind, name or file, version, split sizes);
    empty for the built-ins, which `dataset_sha256` names exactly."""
    return user_data.source(name) if user_data.is_user(name) else {}


def _user_info(name: str) -> DatasetInfo:
    got = user_data.arrays(name)
    return DatasetInfo(name, got["x_train"].shape[1:], user_data.classes(name), False,
                       user_data.hashes(name), len(got["y_train"]), len(got["y_test"]))


def _user_arrays(name: str) -> Arrays:
    return Arrays(**user_data.arrays(name), source=name)


def cache_dir() -> Path:
    """Where downloaded datasets are kept: $REGBENCH_CACHE_DIR or ~/.cache/regbench/datasets."""
    if os.environ.get("REGBENCH_CACHE_DIR"):
        return Path(os.environ["REGBENCH_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "regbench" / "datasets"


def load(name: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> Arrays:
    """Find, verify and return dataset `name` (see the module docstring for the lookup)."""
    if user_data.is_user(name):
        return _user_arrays(name)
    ds = info(name)
    fname = f"{name}.npz"
    looked = []  # every place tried, for the final error message

    if data_dir is not None:
        folder, label = Path(data_dir), "data_dir"
    elif os.environ.get("REGBENCH_DATA_DIR"):
        folder, label = Path(os.environ["REGBENCH_DATA_DIR"]), "REGBENCH_DATA_DIR"
    else:
        folder, label = None, "REGBENCH_DATA_DIR"
    if folder is None:
        looked.append("REGBENCH_DATA_DIR (not set)")
    elif (folder / fname).is_file():
        return _read_verified(ds, folder / fname)
    else:
        looked.append(f"{label}={folder}")

    cached = cache_dir() / fname
    if cached.is_file():
        return _read_verified(ds, cached)
    looked.append(f"cache {cached.parent}")

    if not download:
        reason = "download disabled"
    else:
        try:
            arrays, origin = downloads.fetch(name)
        except downloads.DownloadError as error:
            reason = f"download failed ({error})"
        else:
            _check(ds, arrays, origin)  # Keras checked the files; these are the arrays
            return _write_cache(ds, arrays, cached, origin)
    raise DataError(
        f"{name}: not found in {', '.join(looked)}, and {reason}; put {fname} (uint8 arrays "
        f"{', '.join(ARRAY_NAMES)}) in a folder and set REGBENCH_DATA_DIR or pass --data-dir"
    )


def split(x, y, validation_fraction: float, seed: int) -> tuple:
    """Hold out a stratified, seeded validation set from training data.

    Returns `(x_fit, y_fit, x_val, y_val)`, new arrays in the original order; the inputs are
    not modified. See `split_indices` for how the examples are chosen.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise DataError(f"split: need labels matching x, got x {len(x)}, y {y.shape}")
    fit, val = split_indices(y, validation_fraction, seed)
    return x[fit], y[fit], x[val], y[val]


def split_indices(y, validation_fraction: float, seed: int) -> tuple:
    """Indices `(fit, val)` into the training arrays, each in ascending order.

    Exactly `round(len(y) * validation_fraction)` examples are held out, each class
    contributing its proportional share (within one). Same seed, same split.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"split: need 1-D labels, got shape {y.shape}")
    n = len(y)
    n_val = round(n * validation_fraction)
    if not 0 < n_val < n:
        raise DataError(
            f"split: validation_fraction={validation_fraction} of {n} examples leaves an "
            "empty fit or validation set"
        )
    rng = np.random.default_rng(seed)
    # Shuffle, then group by class (stable sort keeps the shuffle within each class); taking
    # evenly spaced positions of that order gives each class its share, chosen at random.
    order = rng.permutation(n)
    order = order[np.argsort(y[order], kind="stable")]
    val = np.zeros(n, dtype=bool)
    val[order[np.arange(n_val) * n // n_val]] = True
    return np.flatnonzero(~val), np.flatnonzero(val)


# --- reading and verifying -----------------------------------------------------------------


def _read_verified(ds: DatasetInfo, path: Path) -> Arrays:
    st = path.stat()
    # Keyed on mtime and size, so a file replaced on disk is read and hashed again.
    return _read_verified_cached(ds.name, str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)  # CIFAR-10 is 180 MB; keep a few datasets, not all history
def _read_verified_cached(name: str, path: str, mtime_ns: int, size: int) -> Arrays:
    ds = DATASETS[name]
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ARRAY_NAMES if k not in f.files]
            if missing:
                raise DataError(f"{name}: {path} lacks array(s) {', '.join(missing)}")
            arrays = {k: f[k] for k in ARRAY_NAMES}
    except DataError:
        raise
    except Exception as e:  # BadZipFile, zlib.error, EOFError, ValueError...: all mean corrupt
        interrupts.reraise(e)
        raise DataError(
            f"{name}: {path} is unreadable ({_why(e)}); replace it with a good copy"
        ) from None
    _check(ds, arrays, path)
    return _to_arrays(ds, arrays, path)


def _why(e: Exception) -> str:
    """An exception as one line, for messages that must stay on one line."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def _check(ds: DatasetInfo, arrays: dict, where: str) -> None:
    """Raise a one-line DataError unless every array is uint8, has its shape and matches its
    SHA-256."""
    for key in ARRAY_NAMES:
        _check_array(ds, key, arrays[key], where)


def expected_shape(ds: DatasetInfo, key: str) -> tuple:
    """The shape of array `key` in the Keras layout: images (N, H, W), or (N, H, W, C) with
    more than one channel; labels (N,)."""
    n = ds.train_size if key.endswith("train") else ds.test_size
    if key.startswith("y"):
        return (n,)
    height, width, channels = ds.image_shape
    return (n, height, width) if channels == 1 else (n, height, width, channels)


def _check_array(ds: DatasetInfo, key: str, arr: np.ndarray, where: str) -> None:
    expected = ds.sha256[key]
    if arr.dtype != np.uint8:
        raise DataError(f"{ds.name}: {where}: {key} has dtype {arr.dtype}, expected uint8")
    # The bytes alone do not fix the shape: the same pixels reshaped hash the same.
    shape = expected_shape(ds, key)
    with_channels = (shape[0], *ds.image_shape)  # as the model sees it: accepted as well
    if arr.shape != shape and not (key.startswith("x") and arr.shape == with_channels):
        raise DataError(f"{ds.name}: {where}: {key} has shape {arr.shape}, expected {shape}; "
                        "the file is not in the Keras layout")
    got = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
    if got != expected:
        raise DataError(
            f"{ds.name}: {where}: {key} fails its checksum (sha256 {got}, expected "
            f"{expected}); the file is corrupt or a different version"
        )


def _to_arrays(ds: DatasetInfo, arrays: dict, source) -> Arrays:
    out = {}
    for key in ARRAY_NAMES:
        arr = arrays[key]
        if key.startswith("x"):
            arr = arr.reshape((len(arr), *ds.image_shape))  # MNIST: add the channel axis
        arr.flags.writeable = False
        out[key] = arr
    return Arrays(**out, source=str(source))


def _write_cache(ds: DatasetInfo, arrays: dict, path: Path, url: str) -> Arrays:
    """Write the npz atomically (temp file + os.replace) so a crash never leaves half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{ds.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                # Uncompressed: loaded on every run, and decompression costs more than disk.
                np.savez(f, **{k: arrays[k] for k in ARRAY_NAMES})
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        print(f"regbench: could not cache {ds.name} at {path} ({e})", file=sys.stderr)
        return _to_arrays(ds, arrays, url)
    return _to_arrays(ds, arrays, path)
