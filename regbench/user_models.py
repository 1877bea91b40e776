"""Your own network: a study file's `[model] builder`, trained with every technique of an arm.

    [model]
    builder = "my_models:convnet"   # a function of my_models.py: beside the study file, else
                                    # on sys.path
    builder = "convnet.keras"       # or a saved Keras model: its architecture, freshly
                                    # initialized per seed (its saved weights are not used)

The function is called as `convnet(input_shape, classes, reg)` and returns a `keras.Model`
from images of `input_shape` to `classes` probabilities (softmax). `reg` (a `Regularization`)
places the arm's techniques where the network wants them:

- `reg.dense(units, ...)`, `reg.conv(filters, kernel_size, ...)`: Keras Dense and Conv2D
  layers (any of their arguments) carrying the arm's kernel penalty and max-norm constraint;
  `output=True` marks the output layer (a penalty with `layers = "hidden"` skips it; a KL
  sparsity penalty sits on the other Dense layers' outputs).
- `reg.dropout()`: the arm's Dropout (its `rate`), where the network wants it; nothing (an
  Identity layer) in arms without dropout. `reg.batchnorm()` likewise.
- `reg.augment()`: the arm's augmentation and noise layers, to apply to the input; if the
  builder never calls it, they are put in front of its network.

A network built with plain Keras layers gets the arm's kernel penalties and constraints on
every Dense and Conv2D kernel all the same (set on its variables after building); an arm whose
dropout or batch norm the builder never places is refused when the study is read, never
trained as if it were `none`.

Paired seeds: every weight layer's initial values are drawn from its initializer seeded by
(seed, its position among the network's weight layers), so arms at one seed start from the
same weights in every layer they share, whatever layers (dropout, batch norm, augmentation)
an arm adds between them. The cell key holds the builder and the SHA-256 of its module's (or
file's) bytes: editing the module gives new cells; a module it imports is not hashed.

User networks train alone (one network per cell, never stacked or packed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from regbench.errors import RegbenchError
from regbench.recipe import Arm, Model

UNSUPPORTED = {"random_crop": "needs regbench's own crop (model.crop)"}


class Regularization:
    """What a builder receives to place an arm's techniques (see the module's docstring)."""

    def __init__(self, arm: Arm, seed: int, flip_ok: bool):
        self.arm, self.seed, self.flip_ok = arm, seed, flip_ok
        self.placed: set[str] = set()  # the techniques the builder placed itself
        self.made: set[int] = set()    # ids of the weight layers made here
        self.counts: dict[str, int] = {}

    def _name(self, kind: str, name: str | None) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return name or f"{kind}_{self.counts[kind]}"

    def _weights(self, output: bool, conv: bool) -> dict:
        from regbench import models

        return {"kernel_regularizer": models._penalty(self.arm, output),
                "kernel_constraint": models._constraint(self.arm, conv)}

    def dense(self, units: int, activation=None, output: bool = False, name=None, **kwargs):
        import keras

        from regbench import models

        extra = {} if output else {"activity_regularizer": models._activity_penalty(self.arm)}
        layer = keras.layers.Dense(units, activation=activation, name=self._name("dense", name),
                                   **self._weights(output, conv=False), **extra, **kwargs)
        self.made.add(id(layer))
        return layer

    def conv(self, filters: int, kernel_size, name=None, **kwargs):
        import keras

        layer = keras.layers.Conv2D(filters, kernel_size, name=self._name("conv", name),
                                    **self._weights(False, conv=True), **kwargs)
        self.made.add(id(layer))
        return layer

    def dropout(self, name=None):
        import keras

        name = self._name("dropout", name)
        dropout = self.arm.get("dropout")
        self.placed.add("dropout")
        if dropout is None or not dropout.rate:
            return keras.layers.Identity(name=name)
        from regbench.models import layer_seed

        return keras.layers.Dropout(dropout.rate, seed=layer_seed(self.seed, name), name=name)

    def batchnorm(self, name=None):
        import keras

        name = self._name("batchnorm", name)
        batchnorm = self.arm.get("batchnorm")
        self.placed.add("batchnorm")
        if batchnorm is None:
            return keras.layers.Identity(name=name)
        return keras.layers.BatchNormalization(momentum=batchnorm.momentum,
                                               epsilon=batchnorm.epsilon, name=name)

    def augment(self):
        """One layer applying the arm's augmentation and noise (an Identity without them)."""
        self.placed.add("augmentation")
        return input_layer(self.arm, self.seed, self.flip_ok, "augment")


def input_layer(arm: Arm, seed: int, flip_ok: bool, name: str):
    import keras

    from regbench.models import augmentation_layers

    layers = augmentation_layers(arm, seed, flip_ok, prefix="")
    return keras.Sequential(layers, name=name) if layers else keras.layers.Identity(name=name)


# --- finding the builder --------------------------------------------------------------------

def resolve(model: Model, folder: Path, where: str) -> Model:
    """`model` with the builder found: its `location` and `source_sha256` filled in."""
    spec = model.builder
    if spec.endswith(".keras"):
        path = (folder / spec).resolve()
        if not path.is_file():
            raise RegbenchError(f"{where}: model.builder: no model file {path}")
    else:
        module, _, function = spec.partition(":")
        if not module or not function or not function.isidentifier():
            raise RegbenchError(f"{where}: model.builder: expected \"module:function\" or a "
                                f"\".keras\" file, got {spec!r}")
        path = _module_file(module, folder, where)
    try:
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise RegbenchError(f"{where}: model.builder: cannot read {path} "
                            f"({error.strerror})") from None
    try:
        return Model(name=model.name, builder=spec, source_sha256=sha256, location=str(path))
    except ValueError as error:
        raise RegbenchError(f"{where}: model.{error}") from None


def _module_file(module: str, folder: Path, where: str) -> Path:
    """The file of `module` (dotted names allowed): in `folder` first, then on sys.path."""
    beside = folder.joinpath(*module.split("."))
    for candidate in (beside.with_suffix(".py"), beside / "__init__.py"):
        if candidate.is_file():
            return candidate.resolve()
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin or not Path(found.origin).is_file():
        raise RegbenchError(f"{where}: model.builder: no module `{module}` beside the study "
                            f"file ({folder}) or on sys.path")
    return Path(found.origin).resolve()


def _load_function(model: Model):
    path = Path(model.location)
    function = model.builder.partition(":")[2]
    name = f"regbench_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    loaded = sys.modules.get(name)
    if loaded is None:
        spec = importlib.util.spec_from_file_location(name, path)
        loaded = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent))  # its own imports of modules beside it
        try:
            spec.loader.exec_module(loaded)
        except Exception as error:
            raise RegbenchError(f"model.builder: importing {path} raised "
                                f"{type(error).__name__}: {error}") from None
        finally:
            sys.path.remove(str(path.parent))
        sys.modules[name] = loaded
    builder = getattr(loaded, function, None)
    if not callable(builder):
        raise RegbenchError(f"model.builder: {path} has no function `{function}`")
    return builder


# --- building ---------------------------------------------------------------------------------

def build(model: Model, arm: Arm, input_shape: tuple, classes: int, seed: int,
          flip_ok: bool = False):
    """The user's network for one cell, with the arm's techniques applied (module docstring)."""
    import keras

    _check_unchanged(model)
    for kind, why in UNSUPPORTED.items():
        if arm.get(kind) is not None:
            raise RegbenchError(f"arm `{arm.label}`: `{kind}` {why}; not available with "
                                "model.builder")
    reg = Regularization(arm, seed, flip_ok)
    if model.builder.endswith(".keras"):
        try:
            net = keras.models.load_model(model.location, compile=False)
        except Exception as error:
            raise RegbenchError(f"model.builder: cannot load {model.location} "
                                f"({type(error).__name__}: {error})") from None
    else:
        builder = _load_function(model)
        try:
            net = builder(tuple(input_shape), classes, reg)
        except RegbenchError:
            raise
        except Exception as error:
            raise RegbenchError(f"model.builder: {model.builder} raised "
                                f"{type(error).__name__}: {error}") from None
    _check_network(net, model, input_shape, classes)
    missing = [kind for kind in ("dropout", "batchnorm")
               if arm.get(kind) is not None and kind not in reg.placed]
    if missing:
        raise RegbenchError(f"arm `{arm.label}`: {model.builder} places no "
                            f"reg.{missing[0]}(), so `{missing[0]}` would change nothing; "
                            f"call reg.{missing[0]}() where it belongs, or drop the arm")
    if "augmentation" not in reg.placed and (arm.get("augmentation") or
                                             arm.get("gaussian_noise")):
        inputs = keras.Input(shape=input_shape, name="image")
        outputs = net(input_layer(arm, seed, flip_ok, "augment")(inputs))
        net = keras.Model(inputs, outputs, name=net.name)
    _apply_to_plain_layers(net, reg, arm)
    _seed_initial_weights(net, seed)
    return net


def _check_unchanged(model: Model) -> None:
    try:
        now = hashlib.sha256(Path(model.location).read_bytes()).hexdigest()
    except OSError as error:
        raise RegbenchError(f"model.builder: cannot read {model.location} "
                            f"({error.strerror})") from None
    if now != model.source_sha256:
        raise RegbenchError(f"model.builder: {model.location} changed since the study was "
                            "read; rerun to train its new cells")


def _check_network(net, model: Model, input_shape: tuple, classes: int) -> None:
    import keras

    if not isinstance(net, keras.Model):
        raise RegbenchError(f"model.builder: {model.builder} returned "
                            f"{type(net).__name__}, not a keras.Model")
    inputs = getattr(net, "inputs", None) or []
    if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != tuple(input_shape):
        got = [tuple(i.shape[1:]) for i in inputs] or "no defined input"
        raise RegbenchError(f"model.builder: {model.builder} takes input {got}; expected "
                            f"images of shape {tuple(input_shape)}")
    outputs = net.outputs or []
    if len(outputs) != 1 or tuple(outputs[0].shape[1:]) != (classes,):
        got = [tuple(o.shape[1:]) for o in outputs]
        raise RegbenchError(f"model.builder: {model.builder} gives output {got}; expected "
                            f"({classes},), one probability per class")


def weight_layers(net) -> list:
    """Every Dense and Conv2D layer of a network, nested models included, in order."""
    import keras

    out = []
    for layer in flat_layers(net):
        if isinstance(layer, keras.layers.Dense | keras.layers.Conv2D):
            out.append(layer)
    return out


def flat_layers(net) -> list:
    """The layers of a network with nested models opened, in order."""
    out = []
    for layer in net.layers:
        out += flat_layers(layer) if hasattr(layer, "layers") and layer.layers else [layer]
    return out


def _apply_to_plain_layers(net, reg: Regularization, arm: Arm) -> None:
    """The arm's kernel penalty and constraint on the kernels the builder made without `reg`
    (the last weight layer counts as the output layer); KL sparsity on their outputs."""
    import keras

    from regbench import models

    layers = weight_layers(net)
    for i, layer in enumerate(layers):
        if id(layer) in reg.made:
            continue
        output, conv = i == len(layers) - 1, isinstance(layer, keras.layers.Conv2D)
        penalty = models._penalty(arm, output)
        if layer.kernel.regularizer is not None and penalty is not None:
            raise RegbenchError(f"arm `{arm.label}`: layer `{layer.name}` has a kernel "
                                "regularizer of its own; regbench will not add the arm's on "
                                "top (use reg.dense / reg.conv, or drop it from the builder)")
        layer.kernel.regularizer = penalty or layer.kernel.regularizer
        layer.kernel_regularizer = layer.kernel.regularizer  # where switch_late_l1 finds it
        if isinstance(penalty, models.LateL1):
            layer.l1_late_switch = penalty.switch
        constraint = models._constraint(arm, conv)
        if constraint is not None:
            layer.kernel.constraint = constraint
        if not output and isinstance(layer, keras.layers.Dense):
            activity = models._activity_penalty(arm)
            if activity is not None:
                layer.activity_regularizer = activity


def _seed_initial_weights(net, seed: int) -> None:
    """Each weight layer's kernel and bias drawn anew from its own initializer, seeded by
    (seed, the layer's position among the weight layers): the pairing of arms at a seed."""
    from regbench.models import layer_seed

    for i, layer in enumerate(weight_layers(net)):
        for attr in ("kernel", "bias"):
            variable = getattr(layer, attr, None)
            initializer = getattr(layer, f"{attr}_initializer", None)
            if variable is None or initializer is None:
                continue
            config = initializer.get_config()
            if "seed" in config:
                config["seed"] = layer_seed(seed, f"user/{i}/{attr}")
            fresh = type(initializer).from_config(config)
            variable.assign(fresh(variable.shape, variable.dtype))


def check(study, max_weights: int) -> None:
    """Build the user's network once for each arm and dataset of `study` (at seed 0), so that
    a builder that fails, returns the wrong thing, leaves an arm's technique unplaced or has
    more than `max_weights` weights is one line before anything is trained."""
    from regbench import data, startup

    keras = startup.import_keras()
    for dataset in study.datasets:
        info = data.info(dataset)
        for arm in study.arms:
            try:
                net = build(study.model, arm, info.image_shape, info.classes, 0, info.flip_ok)
            except RegbenchError as error:
                raise RegbenchError(f"{study.path}: {error}") from None
            finally:
                keras.backend.clear_session()
            if net.count_params() > max_weights:
                raise RegbenchError(f"{study.path}: model.builder: {net.count_params():,} "
                                    f"weights on {dataset}; the limit is {max_weights:,}")
