"""Technique, model and training settings: frozen dataclasses of plain values, validated,
and `REGISTRY`, the one table of every setting regbench knows.

Every setting a study file can hold is one of these objects. They carry no Keras objects:
`models.py` and the engine turn them into layers, regularizers and callbacks as late as
possible. Defaults follow the Keras regularization tutorial (`ablations/mnist_tutorial.toml`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from regbench.errors import RegbenchError

PENALTY_LAYERS = ("all", "hidden")
# The network computes in float32: a setting it would round to 0, to 1 or to inf trains as
# another setting, so such values are refused.
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 2.0 ** -126     # the smallest normal float32
FLOAT32_BELOW_ONE = 1 - 2.0 ** -24  # the largest float32 below 1
MAX_EPOCHS = 100_000   # far past any published schedule (Srivastava et al. 2014: 1,852)
MAX_LAYERS = 100       # hidden layers, or convolution blocks, per network
SHOWN_CHARS = 60       # a value longer than this is cut short in messages


def shown(value: Any) -> str:
    """`repr(value)` for a one-line message, cut short when long."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to write in decimal
        return f"an integer of {value.bit_length():,} bits"
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS // 2]}...({len(text):,} characters)"


def shown_name(name: Any) -> str:
    """A name from the input as a message writes it between backticks: as it is when it is
    short printable text, else as `shown` writes it (so a message stays one line)."""
    if isinstance(name, str) and name.isprintable() and len(name) <= SHOWN_CHARS:
        return name
    return shown(name)


def _check(ok: bool, name: str, expected: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"Invalid value for argument `{name}`. Expected {expected}. "
                         f"Received: {name}={shown(value)}")


def _float32(value: float) -> float:
    """`value` as float32 holds it."""
    try:
        return struct.unpack("f", struct.pack("f", float(value)))[0]
    except OverflowError:  # past float32, or an int past any float
        return math.inf if value > 0 else -math.inf


def _held(name: str, value: float, zero_ok: bool = True) -> None:
    """Refuse a value that float32 would turn into 0 or inf."""
    held = _float32(value)
    _check(math.isfinite(held), name, f"at most {FLOAT32_MAX:.4g} (float32 rounds a larger "
           "value to inf)", value)
    _check(abs(held) >= FLOAT32_TINY or value == 0, name, f"{'0 or ' if zero_ok else ''}"
           f"at least {FLOAT32_TINY:.4g} (float32 holds a smaller value as 0 or as a "
           "subnormal, which GPUs flush to 0)", value)


def _below_one(name: str, value: float) -> None:
    """Refuse a value below 1 that float32 would round up to 1 (a rate of 1, say)."""
    _check(_float32(value) < 1, name, f"at most {FLOAT32_BELOW_ONE!r} (float32 rounds a "
           "value closer to 1 up to 1)", value)


def _non_negative(name: str, value: float) -> None:
    _check(value >= 0 and math.isfinite(value), name, "a finite float >= 0", value)
    _held(name, value)


def _positive_float(name: str, value: float) -> None:
    _check(value > 0 and math.isfinite(value), name, "a finite float > 0", value)
    _held(name, value, zero_ok=False)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int in Python


def _positive_int(name: str, value: int) -> None:
    _check(_is_int(value) and value > 0, name, "an integer > 0", value)


def _rate(name: str, value: float) -> None:
    _check(0.0 <= value < 1.0, name, "a float in [0, 1)", value)
    _held(name, value)
    _below_one(name, value)


def _at_most(name: str, value: int, most: int) -> None:
    _check(value <= most, name, f"at most {most:,}", value)


def _one_of(name: str, value: Any, choices: tuple) -> None:
    _check(value in choices, name, f"one of {', '.join(map(str, choices))}", value)


# --- techniques -----------------------------------------------------------------------------
# Each technique is named by what it is; `kind` is its registry name.

@dataclass(frozen=True)
class L1:
    """Penalty factor * sum|w| on Dense/Conv kernels (`layers`: all of them, or hidden only)."""
    factor: float = 0.01
    layers: str = "all"
    kind = "l1"

    def __post_init__(self):
        _non_negative("factor", self.factor)
        _one_of("layers", self.layers, PENALTY_LAYERS)


@dataclass(frozen=True)
class L2:
    """Penalty factor * sum w^2 on kernels (Keras `l2`: no 1/2 in front)."""
    factor: float = 0.01
    layers: str = "all"
    kind = "l2"

    def __post_init__(self):
        _non_negative("factor", self.factor)
        _one_of("layers", self.layers, PENALTY_LAYERS)


@dataclass(frozen=True)
class L1L2:
    """Both penalties at once, as Keras `l1_l2(l1, l2)`."""
    l1: float = 0.01
    l2: float = 0.01
    layers: str = "all"
    kind = "l1_l2"

    def __post_init__(self):
        _non_negative("l1", self.l1)
        _non_negative("l2", self.l2)
        _one_of("layers", self.layers, PENALTY_LAYERS)


@dataclass(frozen=True)
class Dropout:
    """Dropout after every hidden layer at `rate`; `input_rate` > 0 also drops input units."""
    rate: float = 0.5
    input_rate: float = 0.0
    kind = "dropout"

    def __post_init__(self):
        _rate("rate", self.rate)
        _rate("input_rate", self.input_rate)


@dataclass(frozen=True)
class BatchNorm:
    """BatchNormalization after every hidden layer's activation (the tutorial's placement);
    `position = "before"` puts it between each hidden Dense layer's affine map and its
    nonlinearity, as Ioffe & Szegedy (2015) did (convolutions keep it after)."""
    momentum: float = 0.99
    epsilon: float = 1e-3
    position: str = "after"
    kind = "batchnorm"

    def __post_init__(self):
        _rate("momentum", self.momentum)
        _positive_float("epsilon", self.epsilon)
        _one_of("position", self.position, ("after", "before"))


@dataclass(frozen=True)
class Augmentation:
    """Random rotation (degrees), shifts (fraction of size) and horizontal flip, as model layers.

    `flip = "auto"` flips only where the dataset's labels survive a mirror image (CIFAR-10);
    `true` forces the tutorial's exact policy (it flips digits too), `false` never flips.
    """
    rotation: float = 20.0
    shift: float = 0.2
    flip: str | bool = "auto"
    kind = "augmentation"

    def __post_init__(self):
        _check(0.0 <= self.rotation <= 180.0, "rotation", "degrees in [0, 180]", self.rotation)
        _held("rotation", self.rotation)
        _check(0.0 <= self.shift < 1.0, "shift", "a float in [0, 1)", self.shift)
        _held("shift", self.shift)
        _below_one("shift", self.shift)
        # Not `_one_of`: 1 == True, and a flip of 1 would silently never flip.
        _check(self.flip == "auto" or isinstance(self.flip, bool), "flip",
               "one of auto, True, False", self.flip)


@dataclass(frozen=True)
class EarlyStopping:
    """Keras EarlyStopping on the validation cross-entropy (not the penalized val_loss)."""
    patience: int = 5
    min_delta: float = 0.0
    restore_best_weights: bool = False
    kind = "early_stopping"

    def __post_init__(self):
        _check(_is_int(self.patience) and self.patience >= 0, "patience",
               "an integer >= 0", self.patience)
        _at_most("patience", self.patience, MAX_EPOCHS)
        _non_negative("min_delta", self.min_delta)


@dataclass(frozen=True)
class MaxNorm:
    """Each unit's incoming weight vector is projected onto ||w||_2 <= c after every update."""
    c: float = 3.0
    kind = "max_norm"

    def __post_init__(self):
        _positive_float("c", self.c)


@dataclass(frozen=True)
class KLSparsity:
    """Activity penalty weight * sum_j KL(target || mean activation of hidden unit j).

    The mean is over the batch, as in sparse autoencoders (Srivastava et al. 2014, Table 9).
    ReLU units are unbounded, so the mean is clipped into (0, 1) before the KL divergence.
    """
    target: float = 0.05
    weight: float = 1e-3
    kind = "kl_sparsity"

    def __post_init__(self):
        _check(0.0 < self.target < 1.0, "target", "a float in (0, 1)", self.target)
        _held("target", self.target, zero_ok=False)
        _below_one("target", self.target)
        _non_negative("weight", self.weight)


@dataclass(frozen=True)
class LateL1:
    """L1 penalty factor * sum|w| on kernels, switched on after a `start` fraction of epochs."""
    factor: float = 1e-4
    start: float = 0.5
    layers: str = "all"
    kind = "l1_late"

    def __post_init__(self):
        _non_negative("factor", self.factor)
        _rate("start", self.start)
        _one_of("layers", self.layers, PENALTY_LAYERS)

    def first_epoch(self, epochs: int) -> int:
        """The first epoch (0-based) trained with the penalty on."""
        return math.floor(self.start * epochs)


@dataclass(frozen=True)
class WeightDecay:
    """Weight decay as TensorFlow papers wrote it: penalty factor * sum w^2 / 2 on kernels.

    That is `tf.nn.l2_loss` added to the loss, so the penalty's gradient is factor * w.
    """
    factor: float = 5e-4
    layers: str = "all"
    kind = "weight_decay"

    def __post_init__(self):
        _non_negative("factor", self.factor)
        _one_of("layers", self.layers, PENALTY_LAYERS)


@dataclass(frozen=True)
class RandomCrop:
    """The model's crop at a random position per image in training, the centre at inference.

    Needs `model.crop`.
    """
    kind = "random_crop"


@dataclass(frozen=True)
class GaussianNoise:
    """Zero-mean Gaussian noise of standard deviation `stddev` added to the input in training
    (Keras `GaussianNoise`), after any augmentation; nothing at inference."""
    stddev: float = 0.1
    kind = "gaussian_noise"

    def __post_init__(self):
        _positive_float("stddev", self.stddev)


NONE = "none"  # the label of the arm without any technique


# --- model and training settings -------------------------------------------------------------

MODEL_NAMES = ("mlp", "cnn", "alexnet")


@dataclass(frozen=True)
class Model:
    """`mlp`: Flatten -> Dense(hidden...) -> Dense(classes). `cnn`: conv blocks, then a Dense.
    `alexnet`: the small AlexNet of Zhang et al. (2017): per filter count, conv 5x5, max-pool
    3x3 stride 2, local response normalization; then the Dense layers.

    `crop` > 0 crops every image to crop x crop (the centre; see `random_crop`) and
    `standardize` rescales each image to mean 0 and std 1 (TensorFlow's
    `per_image_standardization`), both as the first layers of the network.

    `builder`: a network of the user's instead (`regbench.user_models`): "module:function" or
    a saved ".keras" file; `name` then names it in reports. `source_sha256` (the module's or
    file's bytes) is part of the key, so a changed model gets new cells; `location`, where it
    was found on this machine, is not.
    """
    name: str = "mlp"
    hidden: tuple[int, ...] = (64,)
    activation: str = "relu"
    filters: tuple[int, ...] = (32, 64)
    crop: int = 0
    standardize: bool = False
    builder: str = field(default="", metadata={"omitted_at_default": True})
    source_sha256: str = field(default="", metadata={"set_by": "regbench",
                                                     "omitted_at_default": True})
    location: str = field(default="", metadata={"set_by": "regbench",
                                                "omitted_at_default": True})

    def __post_init__(self):
        if self.builder:
            if self.name == "mlp":  # not given: the builder's function, or its file's stem
                named = self.builder.rpartition(":")[2] if ":" in self.builder else \
                    self.builder.rpartition("/")[2].removesuffix(".keras")
                _check(named not in MODEL_NAMES, "name", "given: the builder's name "
                       f"`{named}` is a built-in network's; name it", named)
                object.__setattr__(self, "name", named)
            _check(isinstance(self.name, str) and re.fullmatch(r"[A-Za-z0-9_]+", self.name)
                   is not None and self.name not in MODEL_NAMES, "name",
                   "a plain word naming the builder's network, not one of "
                   + ", ".join(MODEL_NAMES), self.name)
            layers = (self.hidden, self.activation, self.filters) != (
                (64,), "relu", (32, 64))
            _check(not layers, "hidden",
                   "no hidden, activation or filters with a builder: its network has the "
                   "builder's layers", self.hidden)
            _check(not self.crop and not self.standardize, "crop",
                   "no crop or standardize with a builder: the builder's network is the whole "
                   "network", self.crop or self.standardize)
        else:
            _one_of("name", self.name, MODEL_NAMES)
        _check(_is_int(self.crop) and self.crop >= 0, "crop", "an integer >= 0 (0 = none)",
               self.crop)
        _one_of("activation", self.activation, ("relu", "sigmoid", "tanh", "elu", "gelu"))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "filters", tuple(self.filters))
        _check(len(self.hidden) > 0 and all(_is_int(h) and h > 0 for h in self.hidden),
               "hidden", "a non-empty list of positive integers", list(self.hidden))
        _check(all(_is_int(f) and f > 0 for f in self.filters),
               "filters", "a list of positive integers", list(self.filters))
        for name in ("hidden", "filters"):
            _check(len(getattr(self, name)) <= MAX_LAYERS, name, f"at most {MAX_LAYERS} layers",
                   list(getattr(self, name)))

    def seen_shape(self, image_shape: tuple) -> tuple:
        """The shape of an image (H, W, C) once the network's input stage has cropped it."""
        return (self.crop, self.crop, image_shape[-1]) if self.crop else tuple(image_shape)


@dataclass(frozen=True)
class Training:
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.0          # SGD only; the final value when momentum_epochs > 0
    batch_size: int = 32
    epochs: int = 20
    validation_fraction: float = 0.1   # carved from the training set; never the test set
    train_subset: int = 0          # 0: the whole (post-split) training set
    lr_decay: float = 1.0          # the learning rate is multiplied by this after every epoch
    momentum_start: float = 0.0    # SGD momentum in epoch 1, rising linearly to `momentum`...
    momentum_epochs: int = 0       # ...over this many epochs (0: constant `momentum`)
    curve_every: int = 0           # record validation and test accuracy every N steps (0: off)

    def __post_init__(self):
        _one_of("optimizer", self.optimizer, ("adam", "sgd", "rmsprop"))
        _positive_float("learning_rate", self.learning_rate)
        _rate("momentum", self.momentum)
        _positive_int("batch_size", self.batch_size)
        _positive_int("epochs", self.epochs)
        _at_most("epochs", self.epochs, MAX_EPOCHS)
        _check(0.0 < self.validation_fraction < 1.0, "validation_fraction",
               "a float in (0, 1)", self.validation_fraction)
        _check(_is_int(self.train_subset) and self.train_subset >= 0, "train_subset",
               "an integer >= 0 (0 = all)", self.train_subset)
        _check(0.0 < self.lr_decay <= 1.0, "lr_decay", "a float in (0, 1]", self.lr_decay)
        _held("lr_decay", self.lr_decay, zero_ok=False)
        _rate("momentum_start", self.momentum_start)
        _check(_is_int(self.momentum_epochs) and self.momentum_epochs >= 0, "momentum_epochs",
               "an integer >= 0 (0 = constant momentum)", self.momentum_epochs)
        _at_most("momentum_epochs", self.momentum_epochs, MAX_EPOCHS)
        _check(self.momentum_epochs == 0 or self.optimizer == "sgd", "momentum_epochs",
               "0 unless optimizer = \"sgd\"", self.momentum_epochs)
        _check(self.momentum_epochs > 0 or self.momentum_start == 0.0, "momentum_start",
               "0 unless momentum_epochs > 0", self.momentum_start)
        _check(_is_int(self.curve_every) and self.curve_every >= 0, "curve_every",
               "an integer >= 0 (0 = off)", self.curve_every)

    def momentum_at(self, epoch: int) -> float:
        """SGD momentum during `epoch` (0-based): linear from momentum_start to momentum."""
        if epoch >= self.momentum_epochs:
            return self.momentum
        return self.momentum_start + (self.momentum - self.momentum_start) * (
            epoch / self.momentum_epochs)

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate during `epoch` (0-based)."""
        return self.learning_rate * self.lr_decay ** epoch


# --- construction from plain data ------------------------------------------------------------

def from_dict(cls: type, data: dict, where: str) -> Any:
    """Build a settings object from a plain dict; any problem is a one-line RegbenchError.

    `where` names the place in the input (e.g. "study.toml: techniques.dropout").
    """
    if not isinstance(data, dict):
        raise RegbenchError(f"{where}: expected a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if "set_by" not in f.metadata}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RegbenchError(f"{where}: unknown key `{shown_name(unknown[0])}`. "
                            f"Valid keys: {', '.join(fields)}")
    values = {}
    for name, value in data.items():
        values[name] = _coerce(value, fields[name], f"{where}.{name}")
    try:
        return cls(**values)
    except (ValueError, TypeError) as error:
        raise RegbenchError(f"{where}: {error}") from None


def _coerce(value: Any, f: dataclasses.Field, where: str) -> Any:
    """Accept TOML's natural types for a field: int for float, list for tuple."""
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool) or f.type in ("bool",):
        if not isinstance(value, bool):
            raise RegbenchError(f"{where}: expected true or false, got {shown(value)}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RegbenchError(f"{where}: expected a number, got {shown(value)}")
        try:
            return float(value) + 0.0  # + 0.0: -0.0 trains as 0.0, and keys it the same
        except OverflowError:  # an integer past any float
            raise RegbenchError(f"{where}: expected a number of at most {FLOAT32_MAX:.4g}, "
                                f"got {shown(value)}") from None
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise RegbenchError(f"{where}: expected an integer, got {shown(value)}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise RegbenchError(f"{where}: expected a list, got {shown(value)}")
        return tuple(value)
    if isinstance(default, str) and f.type == "str" and not isinstance(value, str):
        raise RegbenchError(f"{where}: expected a string, got {shown(value)}")
    return value


def technique_from_dict(kind: str, params: dict, where: str) -> Any:
    if not isinstance(kind, str) or kind not in TECHNIQUES:
        raise RegbenchError(f"{where}: unknown technique `{shown_name(kind)}`. "
                            f"Valid techniques: {', '.join(TECHNIQUES)}")
    return from_dict(TECHNIQUES[kind], params, where)


def to_dict(settings: Any) -> dict:
    """Plain-data form (tuples become lists) used for keys, rows and round trips; a field
    marked `omitted_at_default` (a user model's) is left out while it has its default."""
    out = dataclasses.asdict(settings)
    unset = {f.name for f in dataclasses.fields(settings)
             if f.metadata.get("omitted_at_default") and getattr(settings, f.name) == f.default}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items() if k not in unset}


def check_model(techniques: list, model: Model, where: str) -> None:
    """Techniques that need something of the model."""
    if any(t.kind == "random_crop" for t in techniques) and not model.crop:
        raise RegbenchError(f"{where}: technique `random_crop` needs a crop size: set "
                            "model.crop (e.g. 28)")


def check_combination(techniques: list, where: str) -> None:
    """An arm may combine any techniques except the same kind twice or a listed conflict."""
    kinds = [t.kind for t in techniques]
    for kind in set(kinds):
        if kinds.count(kind) > 1:
            raise RegbenchError(f"{where}: technique `{kind}` appears twice in one arm")
    for pair, reason in CONFLICTS.items():
        if pair <= set(kinds):
            raise RegbenchError(f"{where}: conflicting techniques: {reason}")


@dataclass(frozen=True)
class Arm:
    """A named set of techniques; `label` joins technique labels with `+`, `none` if empty."""
    label: str
    techniques: tuple = field(default=())

    def get(self, kind: str):
        """The technique of this kind in the arm, or None."""
        return next((t for t in self.techniques if t.kind == kind), None)

    def bn_before(self) -> bool:
        """Whether batch norm sits between each hidden Dense layer's affine map and its
        activation (`position = "before"`)."""
        batchnorm = self.get("batchnorm")
        return batchnorm is not None and batchnorm.position == "before"


# --- the registry ------------------------------------------------------------------------------
# Execution strategies (regbench/engine/): a cell trained alone, as a branch of a packed model,
# or as a member of a stacked network.
ALONE, BRANCH, STACK = "alone", "branch", "stack"
EVERY = frozenset({ALONE, BRANCH, STACK})


@dataclass(frozen=True)
class Entry:
    """One technique or setting: what it is, where it acts, which strategies implement it.

    `name` is a technique kind (`dropout`), one of a technique's parameters (`batchnorm.position`)
    or a model or training setting (`model.crop`, `training.lr_decay`). A cell uses a
    technique entry when its arm has the technique, and a parameter or setting entry when the
    value differs from its default. `later` marks settings added after cells were first
    stored: they enter a cell's key only when they differ from their defaults, so stored keys
    stay valid. `input_cost`: multiply-adds one input value costs the technique per example
    (the planner's work estimate).
    """
    name: str
    where: str
    strategies: frozenset[str]
    settings: type | None = None
    conflicts: tuple[tuple[str, str], ...] = ()   # (other technique, why not together)
    later: bool = False
    input_cost: int = 0

    @property
    def scope(self) -> str:
        return self.name.split(".")[0]

    @property
    def field(self) -> str | None:
        return self.name.split(".")[1] if "." in self.name else None

    def uses(self, model: Model, training: Training, arm: Arm) -> bool:
        if self.scope == "model":
            return getattr(model, self.field) != getattr(Model(), self.field)
        if self.scope == "training":
            return getattr(training, self.field) != getattr(Training(), self.field)
        technique = arm.get(self.scope)
        if technique is None or self.field is None:
            return technique is not None
        return getattr(technique, self.field) != getattr(type(technique)(), self.field)


def _technique(cls, where: str, strategies=EVERY, conflicts=(), input_cost=0) -> Entry:
    return Entry(cls.kind, where, strategies, cls, conflicts, input_cost=input_cost)


_PENALTY = "kernel regularizer on every Dense/Conv2D kernel (`layers = \"hidden\"`: not the " \
           "output layer); biases never"
ENTRIES = (
    _technique(L1, _PENALTY),
    _technique(L2, _PENALTY),
    _technique(L1L2, _PENALTY, conflicts=(
        ("l1", "`l1_l2` already holds an L1 term; use `l1_l2` or `l1`"),
        ("l2", "`l1_l2` already holds an L2 term; use `l1_l2` or `l2`"))),
    _technique(Dropout, "after every hidden Dense layer (after its batch norm); `input_rate` "
                        "drops the flattened input; conv blocks get none"),
    _technique(BatchNorm, "after the activation of every hidden Dense layer and convolution"),
    Entry("batchnorm.position", "`before`: between each hidden Dense layer's affine map and "
                                "its activation", EVERY, later=True),
    # An augmented input value costs about 280 multiply-adds (rotation and shift of MNIST:
    # measured in stacks of 5 members of the tutorial MLP on a 2-core CPU, 12 to 14 us an
    # image against 3 us for its forward and backward pass; see `plan.pack_cost`).
    _technique(Augmentation, "Keras preprocessing layers after the input (training only)",
               input_cost=280),
    _technique(EarlyStopping, "the epoch loop: Keras EarlyStopping on validation cross-entropy"),
    _technique(MaxNorm, "MaxNorm constraint on each unit's incoming weights, every layer"),
    _technique(KLSparsity, "activity regularizer on every hidden Dense layer's output"),
    _technique(LateL1, "an L1 kernel term switched on by the epoch loop from its first epoch",
               conflicts=(
                   ("l1", "`l1_late` and `l1` both set the L1 term; use one"),
                   ("l1_l2", "`l1_late` and `l1_l2` both set the L1 term; use one"))),
    _technique(WeightDecay, "as l2, with factor / 2", conflicts=(
        ("l2", "`weight_decay` and `l2` both set the L2 term; use one"),
        ("l1_l2", "`weight_decay` and `l1_l2` both set the L2 term; use one"))),
    _technique(RandomCrop, "the model's crop at a random position per image in training"),
    _technique(GaussianNoise, "Keras GaussianNoise on the input, after augmentation"),
    Entry("model.name", "the network: `mlp`, `cnn` or `alexnet` (conv blocks, then Dense)",
          EVERY),
    Entry("model.hidden", "Dense layer sizes", EVERY),
    Entry("model.activation", "hidden layers' nonlinearity", EVERY),
    Entry("model.filters", "convolution channels (cnn, alexnet; unused by the mlp)", EVERY),
    Entry("model.crop", "a centre crop as the first layer", EVERY, later=True),
    Entry("model.builder", "a network of the user's (`user_models`): trained alone",
          frozenset({ALONE}), later=True),
    Entry("model.source_sha256", "the bytes of the builder's module or model file", EVERY,
          later=True),
    Entry("model.location", "where the builder was found on this machine (not in the key)",
          EVERY, later=True),
    Entry("model.standardize", "per-image standardization after the crop", EVERY,
          later=True),
    Entry("training.optimizer", "the optimizer (adam, sgd, rmsprop)", EVERY),
    Entry("training.learning_rate", "the optimizer's learning rate", EVERY),
    Entry("training.momentum", "SGD momentum (its final value with a ramp)", EVERY),
    Entry("training.batch_size", "examples per step", EVERY),
    Entry("training.epochs", "passes over the fit split", EVERY),
    Entry("training.validation_fraction", "the validation split carved from train", EVERY),
    Entry("training.train_subset", "a random subset of the fit split per seed", EVERY),
    Entry("training.lr_decay", "the epoch loop: learning rate x lr_decay after every epoch",
          EVERY, later=True),
    Entry("training.momentum_start", "the epoch loop: SGD momentum ramp, first value", EVERY,
          later=True),
    Entry("training.momentum_epochs", "the epoch loop: SGD momentum ramp, its length", EVERY,
          later=True),
    Entry("training.curve_every", "the epoch loop: validation and test accuracy every N steps",
          EVERY, later=True),
)
REGISTRY: dict[str, Entry] = {entry.name: entry for entry in ENTRIES}
TECHNIQUES: dict[str, type] = {e.name: e.settings for e in ENTRIES if e.settings is not None}
# Pairs that cannot sit in one arm: both would set the same thing twice.
CONFLICTS = {frozenset({e.name, other}): why for e in ENTRIES for other, why in e.conflicts}


def settings_used(model: Model, training: Training, arm: Arm) -> list[Entry]:
    """The registry entries a cell with these settings uses."""
    return [entry for entry in ENTRIES if entry.uses(model, training, arm)]


def strategies_for(model: Model, training: Training, arm: Arm) -> frozenset[str]:
    """The strategies that implement every setting of such a cell (alone implements all)."""
    out = EVERY
    for entry in settings_used(model, training, arm):
        out &= entry.strategies
    return out


def later_fields(scope: str) -> tuple[str, ...]:
    """The fields of `scope` ("model", "training" or a technique kind) added after cells were
    first stored (see `Entry.later`)."""
    return tuple(e.field for e in ENTRIES if e.later and e.scope == scope)

