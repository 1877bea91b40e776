"""A user's datasets: their own arrays (`npz:PATH`) and tensorflow-datasets (`tfds:NAME`).

A study names them in `datasets` beside the built-ins. `resolve` turns what the study file
says into the name its cells carry, one that any process can find again:

- `npz:data/mine.npz` -> `npz:/abs/path/data/mine.npz` (relative to the study file's folder).
  The file holds `x_train`, `y_train`, `x_test`, `y_test` in the Keras layout: uint8 images
  (N, H, W) or (N, H, W, C), integer labels (N,) or (N, 1). The cell key holds the file's
  SHA-256, not its path: a changed file gets new cells, a moved one keeps its rows.
- `tfds:svhn_cropped` -> `tfds:svhn_cropped:3.1.0` (the version prepared, in the key). The
  dataset is read from tfds's data folder (`$TFDS_DATA_DIR`, else ~/tensorflow_datasets),
  never downloaded: tfds checks its own files. It must be supervised image classification:
  one fixed-shape uint8 image feature and a `ClassLabel`, with `train` and `test` splits.

Every array is read once per process and its SHA-256 goes into each row's provenance, with the
dataset's name, version and split sizes. Horizontal flips are never automatic here
(`flip = "auto"` does not flip): set `flip = "horizontal"` where mirrored images keep their
labels.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from regbench import interrupts, startup
from regbench.errors import RegbenchError

NPZ, TFDS = "npz:", "tfds:"
ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")
TFDS_BATCH = 4096  # examples per batch read from tfds: whole splits at once can exhaust memory


class UserDataError(RegbenchError):
    """A user's dataset is missing, malformed or not image classification (one line)."""


def is_user(name: str) -> bool:
    return isinstance(name, str) and name.startswith((NPZ, TFDS))


def resolve(name: str, folder: Path) -> str:
    """The name cells carry for what a study file wrote (see the module docstring)."""
    if name.startswith(NPZ):
        path = (folder / name[len(NPZ):]).resolve()
        if not path.is_file():
            raise UserDataError(f"{name}: no file {path}")
        _loaded(NPZ + str(path))  # the arrays in the Keras layout, or refused now
        return NPZ + str(path)
    spec = name[len(TFDS):]
    builder = _tfds_builder(name)
    config = f"/{builder.builder_config.name}" if builder.builder_config else ""
    if ":" in spec and spec.rsplit(":", 1)[1] != str(builder.version):
        raise UserDataError(f"{name}: tfds has version {builder.version} of {builder.name}")
    resolved = f"{TFDS}{builder.name}{config}:{builder.version}"
    _tfds_features(resolved)  # image classification, or refused now
    return resolved


def key_name(name: str) -> str:
    """What a cell key holds for dataset `name`: an npz file's content, not its path."""
    return NPZ + _file_sha256(name, *_stat(name)) if name.startswith(NPZ) else name


def arrays(name: str) -> dict:
    """The dataset's four arrays, checked: images uint8 NHWC, labels 1-D. Read-only, one copy
    per process."""
    return _loaded(name)[0]


def hashes(name: str) -> dict:
    """The SHA-256 of each array's bytes as the file or tfds holds it."""
    return _loaded(name)[1]


def _loaded(name: str) -> tuple[dict, dict]:
    if name.startswith(NPZ):
        return _npz_arrays(name, *_stat(name))
    return _tfds_arrays(name, _tfds_dir())


def _stat(name: str) -> tuple[int, int]:
    """(mtime, size) of an npz file: the caches below read a replaced file again."""
    try:
        st = Path(name[len(NPZ):]).stat()
    except OSError as error:
        raise UserDataError(f"{name}: cannot read it ({error.strerror})") from None
    return st.st_mtime_ns, st.st_size


def source(name: str) -> dict:
    """Provenance for every row: what the dataset is, its version and split sizes."""
    got = arrays(name)
    sizes = {"train": len(got["y_train"]), "test": len(got["y_test"])}
    if name.startswith(NPZ):
        return {"kind": "npz", "path": name[len(NPZ):], "sha256": key_name(name)[len(NPZ):],
                **sizes}
    spec, version = name[len(TFDS):].rsplit(":", 1)
    return {"kind": "tfds", "name": spec, "version": version, **sizes}


def classes(name: str) -> int:
    if name.startswith(TFDS):
        return _tfds_features(name)[1].num_classes
    got = arrays(name)
    return int(max(got["y_train"].max(), got["y_test"].max())) + 1  # labels 0 to max


# --- npz ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _file_sha256(name: str, mtime_ns: int, size: int) -> str:
    path = Path(name[len(NPZ):])
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise UserDataError(f"{name}: cannot read it ({error.strerror})") from None
    return digest.hexdigest()


@functools.lru_cache(maxsize=2)
def _npz_arrays(name: str, mtime_ns: int, size: int) -> tuple[dict, dict]:
    try:
        with np.load(name[len(NPZ):], allow_pickle=False) as f:
            missing = [k for k in ARRAY_NAMES if k not in f.files]
            if missing:
                raise UserDataError(f"{name}: lacks array(s) {', '.join(missing)}; expected "
                                    f"{', '.join(ARRAY_NAMES)} in the Keras layout")
            got = {k: f[k] for k in ARRAY_NAMES}
    except UserDataError:
        raise
    except Exception as error:  # not a zip, truncated, pickled objects...
        interrupts.reraise(error)
        raise UserDataError(f"{name}: unreadable as npz ({type(error).__name__}: "
                            f"{' '.join(str(error).split())})") from None
    return _checked(name, got)


def _checked(name: str, got: dict) -> tuple[dict, dict]:
    """The arrays in regbench's layout (channels axis, 1-D labels) and the SHA-256 of each as
    given, or one line saying what is wrong with them."""
    sha256 = {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
              for k, v in got.items()}
    out = {}
    for split in ("train", "test"):
        x, y = got[f"x_{split}"], got[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim not in (3, 4):
            raise UserDataError(f"{name}: x_{split} has dtype {x.dtype} and shape {x.shape}; "
                                "expected uint8 images (N, H, W) or (N, H, W, C)")
        if not np.issubdtype(y.dtype, np.integer) or y.shape not in ((len(x),), (len(x), 1)):
            raise UserDataError(f"{name}: y_{split} has dtype {y.dtype} and shape {y.shape}; "
                                f"expected integer labels ({len(x)},) or ({len(x)}, 1)")
        if len(y) and y.min() < 0:
            raise UserDataError(f"{name}: y_{split} has a negative label ({y.min()})")
        out[f"x_{split}"] = x if x.ndim == 4 else x[..., None]
        out[f"y_{split}"] = y.reshape(-1)
    if out["x_train"].shape[1:] != out["x_test"].shape[1:]:
        raise UserDataError(f"{name}: x_train's images are {out['x_train'].shape[1:]}, "
                            f"x_test's {out['x_test'].shape[1:]}; they must match")
    if len(out["y_train"]) < 2 or not len(out["y_test"]):
        raise UserDataError(f"{name}: needs at least 2 training and 1 test example")
    for arr in out.values():
        arr.flags.writeable = False
    return out, sha256


# --- tensorflow-datasets --------------------------------------------------------------------

def _tfds():
    startup.import_keras()  # TensorFlow's start-up lines filtered, as everywhere else
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise UserDataError(f"tfds datasets need tensorflow-datasets and TensorFlow "
                            f"({error})") from None
    return tfds


def _tfds_dir() -> str | None:
    """tfds's data folder: `$TFDS_DATA_DIR` as it is now (tfds reads it once, at import)."""
    return os.environ.get("TFDS_DATA_DIR") or None


def _tfds_builder(name: str):
    tfds = _tfds()
    try:
        return tfds.builder(name[len(TFDS):], data_dir=_tfds_dir())
    except tfds.core.registered.DatasetNotFoundError:
        raise UserDataError(f"{name}: no such tensorflow-datasets dataset (see `tfds "
                            "build --help`, or https://www.tensorflow.org/datasets/catalog)"
                            ) from None
    except Exception as error:  # a malformed name or version
        interrupts.reraise(error)
        raise UserDataError(f"{name}: {' '.join(str(error).split())[:300]}") from None


@functools.lru_cache(maxsize=8)
def _tfds_features(name: str) -> tuple:
    """(image key, label feature, label key) of an image-classification dataset."""
    tfds = _tfds()
    builder = _tfds_builder(name)
    features = builder.info.features
    keys = builder.info.supervised_keys
    if keys and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        image_key, label_key = keys
    else:  # no supervised keys: its one image and its one label
        images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
        labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
        image_key, label_key = (images[0], labels[0]) if len(images) == len(labels) == 1 \
            else (None, None)
    image, label = features[image_key] if image_key else None, \
        features[label_key] if label_key else None
    described = ", ".join(f"{k}: {type(f).__name__}" for k, f in features.items())
    if not (isinstance(image, tfds.features.Image) and isinstance(label, tfds.features.ClassLabel)):
        raise UserDataError(f"{name} is not image classification: needs an image feature "
                            f"and a ClassLabel label, has {described}")
    if None in image.shape or str(image.dtype) not in ("uint8", "<dtype: 'uint8'>"):
        raise UserDataError(f"{name}: its images have shape {image.shape} and dtype "
                            f"{image.dtype}; regbench needs one fixed shape of uint8")
    return image_key, label, label_key


@functools.lru_cache(maxsize=2)
def _tfds_arrays(name: str, data_dir: str | None) -> tuple[dict, dict]:
    image_key, _, label_key = _tfds_features(name)
    builder = _tfds_builder(name)
    splits = set(builder.info.splits)
    if splits and not {"train", "test"} <= splits:
        raise UserDataError(f"{name}: has splits {', '.join(sorted(splits))}; regbench needs "
                            "train and test (validation is carved from train)")
    got = {}
    for split in ("train", "test"):
        x, y = _read_split(builder, name, split, image_key, label_key)
        got[f"x_{split}"], got[f"y_{split}"] = x, y
    return _checked(name, got)


def _read_split(builder, name: str, split: str, image_key: str, label_key: str):
    tfds = _tfds()
    try:
        dataset = builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError:  # tfds's way of saying the files are not there
        folder = _tfds_dir() or "~/tensorflow_datasets"
        raise UserDataError(
            f"{name} is not prepared in {folder}: run `tfds build {name[len(TFDS):]} "
            "--data_dir DIR` where there is network and copy DIR here, or set TFDS_DATA_DIR "
            "to a folder that holds it") from None
    xs, ys = [], []
    for batch in tfds.as_numpy(dataset.batch(TFDS_BATCH)):
        xs.append(batch[image_key])
        ys.append(batch[label_key])
    if not xs:
        raise UserDataError(f"{name}: its {split} split is empty")
    return np.concatenate(xs), np.concatenate(ys)
