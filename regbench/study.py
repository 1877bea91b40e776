"""Study file (TOML) -> the list of cells to train. Pure: no Keras, no data.

A cell is one (dataset, arm, seed) with its model and training settings; its `key` is a
content hash of everything that determines its result, so a store can tell finished cells
from new ones whatever the study file is called or how its arms are labelled.

Designs over the study's techniques T (in file order):
- explicit:       the arms listed in `design.arms` ("none", "l1", "l2+dropout", ...)
- one_at_a_time:  none, then each technique alone
- leave_one_out:  all of T, then T without each one in turn
- factorial:      every subset of T (2^|T| arms), smallest first

A `sweep` (a list of tables of training settings, e.g. `[{train_subset = 100, epochs = 200},
{train_subset = 1000, epochs = 40}]`) trains every arm and seed once per entry, each entry
overriding the study's `[training]` settings.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from regbench.errors import RegbenchError
from regbench.provenance import configured_backend
from regbench.recipe import (
    NONE,
    TECHNIQUES,
    Arm,
    Model,
    Training,
    check_combination,
    check_model,
    from_dict,
    later_fields,
    technique_from_dict,
    to_dict,
)

DESIGNS = ("explicit", "one_at_a_time", "leave_one_out", "factorial")
DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10")
STUDY_KEYS = ("name", "description", "datasets", "seeds", "model", "training", "sweep",
              "techniques", "design")
KEY_VERSION = 1  # bump when training code changes what a cell's result is
DEFAULT_BACKEND = "tensorflow"
MAX_SEEDS = 10_000  # seeds per study
MAX_SEED = 2**31 - 1  # the largest seed the backends accept


@dataclass(frozen=True)
class Cell:
    study: str
    dataset: str
    model: Model
    training: Training
    arm: Arm
    seed: int
    backend: str = DEFAULT_BACKEND  # the Keras backend that trains it

    def spec(self) -> dict:
        """Everything that determines the result, as plain data. The backend enters only
        when it is not TensorFlow (whose cells were stored before there was a choice), so
        one store holds a study under several backends."""
        spec = {
            "dataset": self.dataset,
            "model": _key_dict(self.model, later_fields("model")),
            "training": _key_dict(self.training, later_fields("training")),
            "techniques": {t.kind: _key_dict(t, later_fields(t.kind)) for t in
                           sorted(self.arm.techniques, key=lambda t: t.kind)},
            "seed": self.seed,
            "key_version": KEY_VERSION,
        }
        if self.backend != DEFAULT_BACKEND:
            spec["backend"] = self.backend
        return spec

    @property
    def key(self) -> str:
        canonical = json.dumps(self.spec(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _key_dict(settings, later: tuple[str, ...]) -> dict:
    defaults = type(settings)()
    return {k: v for k, v in to_dict(settings).items()
            if k not in later or v != getattr(defaults, k)}


@dataclass(frozen=True)
class Study:
    name: str
    path: str
    description: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    model: Model
    training: Training
    arms: tuple[Arm, ...]
    sweep: tuple[dict, ...] = ()  # training overrides, one set of cells per entry

    def trainings(self) -> list[Training]:
        """The training settings of each sweep entry (just `training` without a sweep)."""
        return [replace(self.training, **entry) for entry in self.sweep] or [self.training]

    def cells(self, backend: str | None = None) -> list[Cell]:
        """Seed-major order: an interrupted study has whole seeds, balanced across arms.
        `backend`: the Keras backend that will train them (default: the configured one)."""
        backend = backend or configured_backend()
        return [Cell(self.name, dataset, self.model, training, arm, seed, backend)
                for dataset in self.datasets for seed in self.seeds
                for training in self.trainings() for arm in self.arms]

    def with_overrides(self, seeds: int | None = None, epochs: int | None = None,
                       train_subset: int | None = None) -> Study:
        """Command-line overrides: the first `seeds` seeds, other epochs or training size."""
        study = self
        if seeds is not None:
            if not 1 <= seeds <= MAX_SEEDS:
                raise RegbenchError(f"--seeds: expected an integer in [1, {MAX_SEEDS}], "
                                    f"got {seeds}")
            study = replace(study, seeds=tuple(range(seeds)) if seeds > len(self.seeds)
                            else self.seeds[:seeds])
        for name, value in (("epochs", epochs), ("train_subset", train_subset)):
            if value is None:
                continue
            if any(name in entry for entry in self.sweep):
                raise RegbenchError(f"--{name.replace('_', '-')}: the study's sweep sets "
                                    f"{name}; edit the study file instead")
            try:  # one at a time, so the error names the flag that is wrong
                study = replace(study, training=replace(study.training, **{name: value}))
            except ValueError as error:
                raise RegbenchError(f"--{name.replace('_', '-')}: {error}") from None
        return study


def load_study(path: str | Path) -> Study:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RegbenchError(f"{path}: cannot read study file ({error.strerror})") from None
    except UnicodeDecodeError:
        raise RegbenchError(f"{path}: not a UTF-8 text file (TOML must be UTF-8)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RegbenchError(f"{path}: malformed TOML: {error}") from None
    return parse_study(data, str(path), default_name=path.stem)


def parse_study(data: dict, where: str, default_name: str = "study") -> Study:
    unknown = sorted(set(data) - set(STUDY_KEYS))
    if unknown:
        raise RegbenchError(f"{where}: unknown key `{unknown[0]}`. "
                            f"Valid keys: {', '.join(STUDY_KEYS)}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-." for c in name):
        raise RegbenchError(f"{where}: name: expected letters, digits, '_', '-' or '.', "
                            f"got {name!r}")
    datasets = _datasets(data.get("datasets"), where)
    seeds = _seeds(data.get("seeds", 5), where)
    model = from_dict(Model, data.get("model", {}), f"{where}: model")
    training = from_dict(Training, data.get("training", {}), f"{where}: training")
    arms = _arms(data.get("techniques", {}), data.get("design", {}), where)
    for arm in arms:
        check_model(list(arm.techniques), model, f"{where}: arm `{arm.label}`")
    return Study(
        name=name,
        path=where,
        description=str(data.get("description", "")),
        datasets=datasets,
        seeds=seeds,
        model=model,
        training=training,
        arms=arms,
        sweep=_sweep(data.get("sweep", []), training, where),
    )


def _sweep(entries, training: Training, where: str) -> tuple[dict, ...]:
    """Each entry a table of training settings, checked as `[training]` would be."""
    if not isinstance(entries, list):
        raise RegbenchError(f"{where}: sweep: expected a list of tables of training settings")
    out = []
    for i, entry in enumerate(entries):
        merged = from_dict(Training, {**to_dict(training), **entry} if isinstance(entry, dict)
                           else entry, f"{where}: sweep[{i}]")
        entry = {k: getattr(merged, k) for k in entry}
        if entry in out:
            raise RegbenchError(f"{where}: sweep[{i}]: repeats an earlier entry")
        out.append(entry)
    return tuple(out)


def _datasets(value, where: str) -> tuple[str, ...]:
    if value is None:
        raise RegbenchError(f"{where}: missing key `datasets` (one or more of "
                            f"{', '.join(DATASET_NAMES)})")
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise RegbenchError(f"{where}: datasets: expected a non-empty list of names")
    for name in names:
        if name not in DATASET_NAMES:
            raise RegbenchError(f"{where}: datasets: unknown dataset `{name}`. "
                                f"Valid datasets: {', '.join(DATASET_NAMES)}")
    return tuple(dict.fromkeys(names))


def _seeds(value, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_SEEDS:
            raise RegbenchError(f"{where}: seeds: expected a count in [1, {MAX_SEEDS}], "
                                f"got {value}")
        return tuple(range(value))
    if (isinstance(value, list) and 0 < len(value) <= MAX_SEEDS
            and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED
                    for s in value)
            and len(set(value)) == len(value)):  # after the type check: lists are unhashable
        return tuple(value)
    raise RegbenchError(f"{where}: seeds: expected a count or a list of distinct integers "
                        f"in [0, {MAX_SEED}], got {value!r}")


def _techniques(table, where: str) -> dict:
    """Label -> technique. A label is a technique name, or any name with `type = "<kind>"`."""
    if not isinstance(table, dict):
        raise RegbenchError(f"{where}: techniques: expected a table of techniques")
    techniques = {}
    for label, params in table.items():
        place = f"{where}: techniques.{label}"
        if not isinstance(params, dict):
            raise RegbenchError(f"{place}: expected a table of parameters")
        params = dict(params)
        kind = params.pop("type", label)
        if label == NONE or "+" in label:
            raise RegbenchError(f"{place}: a technique label cannot be `none` or contain `+`")
        techniques[label] = technique_from_dict(kind, params, place)
    return techniques


def _arms(table, design, where: str) -> tuple[Arm, ...]:
    techniques = _techniques(table, where)
    if not isinstance(design, dict):
        raise RegbenchError(f"{where}: design: expected a table")
    unknown = sorted(set(design) - {"kind", "arms"})
    if unknown:
        raise RegbenchError(f"{where}: design: unknown key `{unknown[0]}`. Valid keys: kind, arms")
    kind = design.get("kind", "explicit" if "arms" in design else "one_at_a_time")
    if kind not in DESIGNS:
        raise RegbenchError(f"{where}: design.kind: unknown design `{kind}`. "
                            f"Valid designs: {', '.join(DESIGNS)}")
    if kind == "explicit":
        labels = design.get("arms")
        if not isinstance(labels, list) or not labels or not all(
                isinstance(x, str) for x in labels):
            raise RegbenchError(f"{where}: design.arms: expected a non-empty list of arm "
                                f"labels such as \"none\" or \"l2+dropout\"")
        combos = [_parse_label(label, techniques, where) for label in labels]
    else:
        if "arms" in design:
            raise RegbenchError(f"{where}: design.arms: only for kind = \"explicit\"")
        if not techniques:
            raise RegbenchError(f"{where}: design `{kind}` needs a [techniques] table")
        combos = _generate(kind, list(techniques))
    arms = []
    seen = {}
    for combo in combos:
        arm = Arm("+".join(combo) or NONE, tuple(techniques.get(x) or TECHNIQUES[x]()
                                                 for x in combo))
        check_combination(list(arm.techniques), f"{where}: arm `{arm.label}`")
        signature = frozenset(json.dumps([t.kind, to_dict(t)], sort_keys=True)
                              for t in arm.techniques)
        if signature in seen:
            raise RegbenchError(f"{where}: arms `{seen[signature]}` and `{arm.label}` "
                                f"are the same set of techniques")
        seen[signature] = arm.label
        arms.append(arm)
    return tuple(arms)


def _parse_label(label: str, techniques: dict, where: str) -> tuple[str, ...]:
    if label == NONE:
        return ()
    parts = tuple(label.split("+"))
    for part in parts:
        if part not in techniques and part not in TECHNIQUES:
            valid = ", ".join(dict.fromkeys([NONE, *techniques, *TECHNIQUES]))
            raise RegbenchError(f"{where}: design.arms: unknown technique `{part}` in arm "
                                f"`{label}`. Valid names: {valid}")
    return parts


def _generate(kind: str, labels: list[str]) -> list[tuple[str, ...]]:
    if kind == "one_at_a_time":
        return [()] + [(x,) for x in labels]
    if kind == "leave_one_out":
        return [tuple(labels)] + [tuple(x for x in labels if x != left) for left in labels]
    return [combo for size in range(len(labels) + 1)
            for combo in itertools.combinations(labels, size)]
