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
import math
import re
import sys
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from regbench import user_data
from regbench.data import DATASETS, key_name
from regbench.data import info as data_info
from regbench.data import resolve as resolve_dataset
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
    shown,
    shown_name,
    technique_from_dict,
    to_dict,
)

DESIGNS = ("explicit", "one_at_a_time", "leave_one_out", "factorial", "tuned")
TUNING_KEYS = ("tuning_seeds", "select")
SELECT = {  # rule -> (row column, sign: +1 when lower is better), mean over the tuning seeds
    "val_xent": ("val_xent", 1),
    "val_acc": ("val_acc", -1),
}
MAX_GRID = 100  # grid points per technique
DATASET_NAMES = tuple(DATASETS)
STUDY_KEYS = ("name", "description", "datasets", "seeds", "model", "training", "sweep",
              "techniques", "design")
KEY_VERSION = 1  # bump when training code changes what a cell's result is
DEFAULT_BACKEND = "tensorflow"
MAX_SEEDS = 10_000  # seeds per study
MAX_SEED = 2**31 - 1  # the largest seed the backends accept
MAX_CELLS = 100_000  # cells per study: at seconds to hours a cell, more would never finish
MAX_WEIGHTS = 2**31  # per network: 8 GiB of float32 before optimizer state and activations
LABEL = re.compile(r"[A-Za-z0-9_.-]+")  # a technique label: one plain word in every report


@dataclass(frozen=True)
class Cell:
    study: str
    dataset: str
    model: Model
    training: Training
    arm: Arm
    seed: int
    backend: str = DEFAULT_BACKEND  # the Keras backend that trains it
    # In a tuned design (not part of the key: they say why the cell is trained, not what it
    # is): "tuning" or "final"; the arm's grid label (`l2`), the grid point (`l2@1e-05`) and
    # the rule that chooses points (`design.select`).
    role: str = ""
    grid: str = ""
    point: str = ""
    select: str = ""

    def spec(self) -> dict:
        """Everything that determines the result, as plain data. The backend enters only
        when it is not TensorFlow (whose cells were stored before there was a choice), so
        one store holds a study under several backends."""
        spec = {
            "dataset": key_name(self.dataset),
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


UNKEYED = ("location",)  # where a user model's builder lies on this machine: not what it is


def _key_dict(settings, later: tuple[str, ...]) -> dict:
    defaults = type(settings)()
    return {k: v for k, v in to_dict(settings).items()
            if k not in UNKEYED and (k not in later or v != getattr(defaults, k))}


@dataclass(frozen=True)
class Grid:
    """An arm of the design (`l2`, `l2+dropout`) and its grid points, each an arm of its own
    (`l2@1e-05`); one point, labelled as the arm, where no parameter is a grid."""
    label: str
    points: tuple[Arm, ...]


@dataclass(frozen=True)
class Tuning:
    """The tuned design: each grid's point is chosen by `select` on the validation split at
    the tuning `seeds`, then trained at the study's seeds (apart from them)."""
    seeds: tuple[int, ...]
    select: str
    grids: tuple[Grid, ...]


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
    tuning: Tuning | None = None  # the tuned design: `arms` are then its grid points

    def trainings(self) -> list[Training]:
        """The training settings of each sweep entry (just `training` without a sweep)."""
        return [replace(self.training, **entry) for entry in self.sweep] or [self.training]

    def cells(self, backend: str | None = None) -> list[Cell]:
        """Seed-major order: an interrupted study has whole seeds, balanced across arms.
        `backend`: the Keras backend that will train them (default: the configured one).
        In a tuned design, the tuning cells: `none` and every point of each grid of more
        than one point, at the tuning seeds (the final cells wait for their choice,
        `final_cells`)."""
        if self.tuning is None:
            return self._cells(self.seeds, [(arm, "", "") for arm in self.arms], "", backend)
        points = [(point, grid.label, point.label) for grid in self.tuning.grids
                  if len(grid.points) > 1 or grid.label == NONE for point in grid.points]
        return self._cells(self.tuning.seeds, points, "tuning", backend)

    def final_cells(self, chosen: dict[str, Arm], backend: str | None = None) -> list[Cell]:
        """A tuned design's final cells: each grid's chosen point (`chosen`: grid label ->
        point; a grid of one point needs none), labelled with the grid's label, at the
        study's seeds. Grids not in `chosen` are left out (their tuning is not finished)."""
        arms = []
        for grid in self.tuning.grids:
            point = grid.points[0] if len(grid.points) == 1 else chosen.get(grid.label)
            if point is not None:
                arms.append((Arm(grid.label, point.techniques), grid.label, point.label))
        return self._cells(self.seeds, arms, "final", backend)

    def _cells(self, seeds, arms: list[tuple[Arm, str, str]], role: str,
               backend: str | None) -> list[Cell]:
        backend = backend or configured_backend()
        cells = {}  # key -> cell: entries that train alike (a sweep entry equal to
        for dataset in self.datasets:  # [training]) are one cell, listed where first met
            trainings = [trained_as(training, dataset) for training in self.trainings()]
            for seed in seeds:
                for training in trainings:
                    for arm, grid, point in arms:
                        arm = augmented_as(arm, dataset)
                        cell = Cell(self.name, dataset, built_as(self.model), training, arm, seed,
                                    backend, role, grid, point,
                                    self.tuning.select if role else "")
                        cells.setdefault(cell.key, cell)
        return list(cells.values())

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
            _check_size("--seeds", len(study.arms), len(study.datasets), len(study.seeds),
                        len(study.trainings()))
        flags = {}
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
            flags[name] = f"--{name.replace('_', '-')}"
        if flags:
            _check_fits(study, flags)
        return study


def load_study(path: str | Path) -> Study:
    from regbench.paths import check_study_file

    path = Path(path)
    check_study_file(path)  # a FIFO would block, a device never end
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
    except ValueError:  # the only other ValueError tomllib raises
        raise RegbenchError(f"{path}: malformed TOML: an integer of more than "
                            f"{sys.get_int_max_str_digits():,} digits") from None
    except RecursionError:
        raise RegbenchError(f"{path}: malformed TOML: arrays or tables nested too "
                            "deeply") from None
    return parse_study(data, str(path), default_name=path.stem)


def parse_study(data: dict, where: str, default_name: str = "study") -> Study:
    unknown = sorted(set(data) - set(STUDY_KEYS))
    if unknown:
        raise RegbenchError(f"{where}: unknown key `{shown_name(unknown[0])}`. "
                            f"Valid keys: {', '.join(STUDY_KEYS)}")
    name = data.get("name", default_name)
    check_name(name, f"{where}: name")
    datasets = _datasets(data.get("datasets"), where, Path(where).parent)
    seeds = _seeds(data.get("seeds", 5), where)
    model = from_dict(Model, data.get("model", {}), f"{where}: model")
    if model.builder:
        from regbench import user_models

        model = user_models.resolve(model, Path(where).parent, where)
    training = from_dict(Training, data.get("training", {}), f"{where}: training")
    sweep = _sweep(data.get("sweep", []), training, where)
    arms, tuning = _design(data.get("techniques", {}), data.get("design", {}), where,
                           (len(datasets), len(seeds), len(sweep) or 1), seeds)
    for arm in arms:
        check_model(list(arm.techniques), model, f"{where}: arm `{arm.label}`")
    study = Study(
        name=name,
        path=where,
        description=str(data.get("description", "")),
        datasets=datasets,
        seeds=seeds,
        model=model,
        training=training,
        arms=arms,
        sweep=sweep,
        tuning=tuning,
    )
    _check_fits(study, {})
    if model.builder:
        user_models.check(study, MAX_WEIGHTS)
    return study


def check_name(name, where: str) -> None:
    """A study's name names its files, results/<name>.jsonl and reports/<name>/: one plain
    word, so that neither lands outside those folders."""
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-." for c in name):
        raise RegbenchError(f"{where}: expected letters, digits, '_', '-' or '.', got "
                            f"{shown(name)}")
    if set(name) == {"."}:  # reports/<name>/ would be reports/ itself, or the folder above
        raise RegbenchError(f"{where}: {name!r} names a folder, not a study; give a name with "
                            "a letter or digit")
    if len(name.encode()) > 200:
        raise RegbenchError(f"{where}: at most 200 bytes, got {len(name.encode())}")


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


def _datasets(value, where: str, folder: Path) -> tuple[str, ...]:
    """The names the cells carry: built-ins as written, a user's npz file or tfds dataset
    found (`data.resolve`)."""
    if value is None:
        raise RegbenchError(f"{where}: missing key `datasets` (one or more of "
                            f"{', '.join(DATASET_NAMES)}, npz:PATH, tfds:NAME)")
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise RegbenchError(f"{where}: datasets: expected a non-empty list of names")
    resolved = []
    for name in names:
        if name not in DATASET_NAMES and not user_data.is_user(name):
            raise RegbenchError(f"{where}: datasets: unknown dataset `{shown_name(name)}`. "
                                f"Valid datasets: {', '.join(DATASET_NAMES)}, npz:PATH "
                                "(your arrays), tfds:NAME (tensorflow-datasets)")
        try:
            resolved.append(resolve_dataset(name, folder))
        except RegbenchError as error:
            raise RegbenchError(f"{where}: datasets: {error}") from None
    return tuple(dict.fromkeys(resolved))


def _seeds(value, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_SEEDS:
            raise RegbenchError(f"{where}: seeds: expected a count in [1, {MAX_SEEDS}], "
                                f"got {shown(value)}")
        return tuple(range(value))
    if (isinstance(value, list) and 0 < len(value) <= MAX_SEEDS
            and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED
                    for s in value)
            and len(set(value)) == len(value)):  # after the type check: lists are unhashable
        return tuple(value)
    raise RegbenchError(f"{where}: seeds: expected a count or a list of distinct integers "
                        f"in [0, {MAX_SEED}], got {shown(value)}")


def _techniques(table, where: str) -> dict[str, tuple[tuple[str, object], ...]]:
    """Label -> its points: (suffix, technique), one per grid point. A label is a technique
    name, or any name with `type = "<kind>"`; a parameter given as a list is a grid over it
    (several lists: every combination), and each point's suffix names its values (`1e-05`,
    or `l1=1e-05,l2=0.0001` where several parameters vary); without a grid, one point with
    no suffix."""
    if not isinstance(table, dict):
        raise RegbenchError(f"{where}: techniques: expected a table of techniques")
    techniques = {}
    read_as = {}  # each label as it reads (`_read`) -> the label
    for label, params in table.items():
        _check_label(label, where)
        place = f"{where}: techniques.{label}"
        if not isinstance(params, dict):
            raise RegbenchError(f"{place}: expected a table of parameters")
        params = dict(params)
        kind = params.pop("type", label)
        techniques[label] = _grid_points(kind, params, place)
        _check_label_reads_once(label, kind, read_as, place)
        read_as[_read(label)] = label
    return techniques


def _grid_points(kind, params: dict, place: str) -> tuple[tuple[str, object], ...]:
    grids = {name: value for name, value in params.items() if isinstance(value, list)}
    for name, values in grids.items():
        if not 1 < len(values) <= MAX_GRID:
            raise RegbenchError(f"{place}.{name}: a grid needs 2 to {MAX_GRID} values, got "
                                f"{len(values)}")
        if any(isinstance(v, (list, dict)) for v in values):
            raise RegbenchError(f"{place}.{name}: a grid is a list of plain values")
    points = math.prod(len(values) for values in grids.values())
    if points > MAX_GRID:
        raise RegbenchError(f"{place}: its grids make {points:,} points; the limit is "
                            f"{MAX_GRID} per technique")
    out, seen = [], {}
    for values in itertools.product(*grids.values()):
        point = dict(zip(grids, values))
        technique = technique_from_dict(kind, params | point, place)
        canonical = json.dumps(to_dict(technique), sort_keys=True)
        suffix = _suffix({name: getattr(technique, name) for name in point})
        if canonical in seen:
            raise RegbenchError(f"{place}: grid points {seen[canonical]} and {suffix} are the "
                                "same setting")
        seen[canonical] = suffix
        out.append((suffix, technique))
    return tuple(out)


def _suffix(point: dict) -> str:
    """A grid point's name: its value where one parameter varies, else `name=value,...`."""
    def value(v) -> str:  # the shortest text that reads back as v ('+' joins techniques)
        text = repr(v) if isinstance(v, float) else str(v)
        return text.removesuffix(".0").replace("e+", "e")
    if len(point) == 1:
        return value(next(iter(point.values())))
    return ",".join(f"{name}={value(v)}" for name, v in point.items())


def _read(name: str) -> str:
    """A name as a reader of a report takes it: case and surrounding spaces aside."""
    return name.strip().casefold()


def _check_label(label: str, where: str) -> None:
    """A label is one plain word that is not `none` (the arm without techniques)."""
    if _read(label) == NONE:
        raise RegbenchError(f"{where}: techniques: label {shown(label)} reads as `none`, the "
                            "arm without techniques; choose another label")
    if not LABEL.fullmatch(label):
        raise RegbenchError(f"{where}: techniques: label {shown(label)}: expected letters, "
                            "digits, '_', '-' or '.'")


def _check_label_reads_once(label: str, kind: str, read_as: dict, place: str) -> None:
    """Reports show labels: each must read as one technique, the one it is. `read_as`:
    the labels before it, as they read."""
    read = _read(label)
    if read in TECHNIQUES and kind != read:
        raise RegbenchError(f"{place}: label `{label}` is the name of technique `{read}`, "
                            f"not of type `{kind}`; choose another label")
    if read in TECHNIQUES and label != read:
        raise RegbenchError(f"{place}: label `{label}` reads as technique `{read}`; write it "
                            f"`{read}`")
    if read in read_as:
        raise RegbenchError(f"{place}: label `{label}` reads as label `{read_as[read]}`; "
                            "choose another label")


def _design(table, design, where: str, per_arm: tuple[int, int, int],
            final_seeds: tuple[int, ...]) -> tuple[tuple[Arm, ...], Tuning | None]:
    """The design's arms (every grid point an arm), and for the tuned design its grids and
    tuning settings. `per_arm`: cells per arm (datasets, seeds, sweep entries), so the cells
    are counted before any arm is built."""
    techniques = _techniques(table, where)
    if not isinstance(design, dict):
        raise RegbenchError(f"{where}: design: expected a table")
    kind = design.get("kind", "explicit" if "arms" in design else "one_at_a_time")
    if kind not in DESIGNS:
        raise RegbenchError(f"{where}: design.kind: unknown design `{shown_name(kind)}`. "
                            f"Valid designs: {', '.join(DESIGNS)}")
    valid = ("kind", "arms", *TUNING_KEYS) if kind == "tuned" else ("kind", "arms")
    unknown = sorted(set(design) - set(valid))
    if unknown:
        raise RegbenchError(f"{where}: design: unknown key `{shown_name(unknown[0])}`. "
                            f"Valid keys: {', '.join(valid)}")
    sizes = {label: len(points) for label, points in techniques.items()}
    if kind in ("explicit", "tuned") and ("arms" in design or kind == "explicit"):
        labels = design.get("arms")
        if not isinstance(labels, list) or not labels or not all(
                isinstance(x, str) for x in labels):
            raise RegbenchError(f"{where}: design.arms: expected a non-empty list of arm "
                                f"labels such as \"none\" or \"l2+dropout\"")
        _check_size(f"{where}: design.arms", len(labels), *per_arm)
        combos = [_parse_label(label, techniques, where) for label in labels]
        count = sum(math.prod(sizes.get(x, 1) for x in combo) for combo in combos)
    else:
        if "arms" in design:
            raise RegbenchError(f"{where}: design.arms: only for kind = \"explicit\" or "
                                "\"tuned\"")
        if not techniques:
            raise RegbenchError(f"{where}: design `{kind}` needs a [techniques] table")
        count = _generated_count(kind, list(sizes.values()))
        _check_size(f"{where}: design {kind} over {len(techniques)} techniques", count,
                    *per_arm)
        combos = _generate(kind, list(techniques))
    _check_size(f"{where}: the design's grid points", count, *per_arm)
    grids = tuple(_grid(combo, techniques, where) for combo in combos)
    _check_distinct([point for grid in grids for point in grid.points], where)
    if kind != "tuned":
        return tuple(point for grid in grids for point in grid.points), None
    tuning = _tuning(design, grids, final_seeds, where)
    return tuple(point for grid in grids for point in grid.points), tuning


def _grid(combo: tuple[str, ...], techniques: dict, where: str) -> Grid:
    """An arm of the design (`l2+dropout`) with one point per combination of its
    techniques' grid points (`l2@1e-05+dropout@0.3`, ...)."""
    label = "+".join(combo) or NONE
    choices = [techniques.get(x) or (("", TECHNIQUES[x]()),) for x in combo]
    points = []
    for picked in itertools.product(*choices):
        name = "+".join(x + (f"@{suffix}" if suffix else "")
                        for x, (suffix, _) in zip(combo, picked)) or NONE
        arm = Arm(name, tuple(technique for _, technique in picked))
        check_combination(list(arm.techniques), f"{where}: arm `{name}`")
        points.append(arm)
    return Grid(label, tuple(points))


def _check_distinct(arms: list[Arm], where: str) -> None:
    seen = {}
    for arm in arms:
        signature = frozenset(json.dumps([t.kind, to_dict(t)], sort_keys=True)
                              for t in arm.techniques)
        if signature in seen:
            raise RegbenchError(f"{where}: arms `{seen[signature]}` and `{arm.label}` "
                                f"are the same set of techniques")
        seen[signature] = arm.label


def _tuning(design: dict, grids: tuple[Grid, ...], final_seeds: tuple[int, ...],
            where: str) -> Tuning:
    seeds = _seeds(design.get("tuning_seeds"), f"{where}: design.tuning_seeds") \
        if "tuning_seeds" in design else None
    if seeds is None:
        raise RegbenchError(f"{where}: design.tuning_seeds: the tuned design needs its own "
                            "seeds (e.g. [100, 101, 102]), apart from the final `seeds`")
    shared = sorted(set(seeds) & set(final_seeds))
    if shared:
        raise RegbenchError(f"{where}: design.tuning_seeds: seed {shared[0]} is also a final "
                            "seed; tuning and final seeds must be apart")
    select = design.get("select", "val_xent")
    if select not in SELECT:
        raise RegbenchError(f"{where}: design.select: unknown rule `{shown_name(select)}`. "
                            f"Valid rules: {', '.join(SELECT)}")
    if not any(len(grid.points) > 1 for grid in grids):
        raise RegbenchError(f"{where}: design `tuned`: no arm has a grid to tune; give a "
                            "technique parameter as a list, e.g. factor = [1e-5, 1e-4]")
    _check_size(f"{where}: design.tuning_seeds",
                sum(len(grid.points) for grid in grids if len(grid.points) > 1) + 1, 1,
                len(seeds), 1)
    if NONE not in {grid.label for grid in grids}:
        raise RegbenchError(f"{where}: design `tuned`: the arms need `none`, the baseline "
                            "every tuned arm is compared with")
    return Tuning(seeds, select, grids)


def _parse_label(label: str, techniques: dict, where: str) -> tuple[str, ...]:
    """An arm string: `none`, or labels joined by `+`, each written exactly as defined."""
    if label == NONE:
        return ()
    parts = tuple(label.split("+"))
    names = list(dict.fromkeys([NONE, *techniques, *TECHNIQUES]))
    place = f"{where}: design.arms: arm {shown(label)}"
    for part in parts:
        if part in techniques or part in TECHNIQUES:
            continue
        if part == NONE:
            raise RegbenchError(f"{place}: `none` is the arm without techniques; it stands "
                                "alone")
        alike = next((name for name in names if _read(name) == _read(part)), None)
        if alike is not None:
            raise RegbenchError(f"{place}: {shown(part)} is not `{alike}`; names are matched "
                                "exactly")
        if not LABEL.fullmatch(part):
            raise RegbenchError(f"{place}: expected technique labels joined by '+', or "
                                "`none`")
        raise RegbenchError(f"{where}: design.arms: unknown technique `{part}` in arm "
                            f"`{label}`. Valid names: {', '.join(names)}")
    repeated = next((part for part in parts if parts.count(part) > 1), None)
    if repeated is not None:
        raise RegbenchError(f"{place}: names `{repeated}` twice")
    return parts


def _generated_count(kind: str, sizes: list[int]) -> int:
    """How many arms (grid points) `_generate` makes over techniques of `sizes` grid points,
    without making them."""
    if kind == "factorial":
        return math.prod(1 + size for size in sizes)
    if kind == "leave_one_out":
        return math.prod(sizes) + sum(math.prod(sizes) // size for size in sizes)
    return 1 + sum(sizes)


def _generate(kind: str, labels: list[str]) -> list[tuple[str, ...]]:
    if kind in ("one_at_a_time", "tuned"):
        return [()] + [(x,) for x in labels]
    if kind == "leave_one_out":
        return [tuple(labels)] + [tuple(x for x in labels if x != left) for left in labels]
    return [combo for size in range(len(labels) + 1)
            for combo in itertools.combinations(labels, size)]


# --- what the datasets allow ---------------------------------------------------------------
# Limits that depend on a dataset's size and images, from the registry (no data is loaded).

def fit_size(dataset: str, validation_fraction: float) -> int:
    """Images in the fit split: the training set less the `round(n * validation_fraction)`
    examples `data.split_indices` holds out."""
    n = data_info(dataset).train_size
    return n - round(n * validation_fraction)


def trained_as(training: Training, dataset: str) -> Training:
    """`training` as the engine trains it on `dataset`, so that settings that train alike
    have one key and the row says what was trained: a subset as large as the fit split is
    the whole split (0), momentum is SGD's alone, and a validation fraction is the one that
    holds out its `round(n * fraction)` images exactly."""
    if training.train_subset >= fit_size(dataset, training.validation_fraction):
        training = replace(training, train_subset=0)
    if training.optimizer != "sgd" and training.momentum:
        training = replace(training, momentum=0.0)
    n = data_info(dataset).train_size
    exact = round(n * training.validation_fraction) / n
    if exact != training.validation_fraction:
        training = replace(training, validation_fraction=exact)
    return training


def built_as(model: Model) -> Model:
    """`model` as models.py builds it: an MLP has no convolutions, whatever `filters` says."""
    if model.name == "mlp" and model.filters != Model().filters:
        model = replace(model, filters=Model().filters)
    return model


def augmented_as(arm: Arm, dataset: str) -> Arm:
    """`arm` as it trains on `dataset`: a flip set to what `"auto"` does there is `"auto"`."""
    auto = data_info(dataset).flip_ok
    techniques = tuple(replace(t, flip="auto") if t.kind == "augmentation" and t.flip is auto
                       else t for t in arm.techniques)
    return arm if techniques == arm.techniques else Arm(arm.label, techniques)


def weights(model: Model, dataset: str) -> int:
    """Kernel and bias entries of the model's network on `dataset`, as models.py builds it:
    convolutions keep the image size ('same' padding); each pool halves it, rounding down
    (cnn) or up (alexnet)."""
    info = data_info(dataset)
    height, width, channels = info.image_shape
    if model.crop:
        height = width = model.crop
    total = 0
    if model.name in ("cnn", "alexnet"):
        kernel = 3 if model.name == "cnn" else 5
        for filters in model.filters:
            total += kernel * kernel * channels * filters + filters
            channels = filters
            if model.name == "cnn":
                height, width = height // 2, width // 2
            else:
                height, width = -(-height // 2), -(-width // 2)
    units = height * width * channels
    for layer in (*model.hidden, info.classes):
        total += units * layer + layer
        units = layer
    return total


def _big(n: int) -> str:
    """A count for a message: in full when it is short, else its power of ten."""
    if n < 10**15:
        return f"{n:,}"
    return f"about 10^{math.floor(n.bit_length() * math.log10(2))}"


def _check_size(what: str, arms: int, datasets: int, seeds: int, entries: int) -> None:
    """Refuse a study of more than MAX_CELLS cells, counted before any is built."""
    cells = arms * datasets * seeds * entries
    if cells <= MAX_CELLS:
        return
    factors = [f"{_big(arms)} arms", f"{seeds:,} seed{'s' if seeds != 1 else ''}"]
    factors += [f"{datasets} datasets"] if datasets > 1 else []
    factors += [f"{entries} sweep entries"] if entries > 1 else []
    raise RegbenchError(f"{what}: {' x '.join(factors)} = {_big(cells)} cells; the limit is "
                        f"{MAX_CELLS:,} cells")


def _check_fits(study: Study, flags: dict[str, str]) -> None:
    """Settings whose limits come from the datasets, refused now rather than when a cell
    trains. `flags`: settings given on the command line -> the flag that gave them."""
    for dataset in study.datasets:
        _check_model_fits(study.model, dataset, study.path)
        for i, training in enumerate(study.trainings()):
            names = {name: flags.get(name) or (f"sweep[{i}].{name}" if study.sweep
                                                and name in study.sweep[i]
                                                else f"training.{name}")
                     for name in ("validation_fraction", "train_subset", "batch_size",
                                  "curve_every")}
            _check_training_fits(training, dataset, study.path, names)


def _check_model_fits(model: Model, dataset: str, where: str) -> None:
    if model.builder:
        return  # the builder's network is checked as it is built (`user_models.check`)
    height, width = data_info(dataset).image_shape[:2]
    side = min(height, width)
    if model.crop >= side:
        raise RegbenchError(f"{where}: model.crop: {_big(model.crop)} is not smaller than "
                            f"{dataset}'s {height}x{width} images; expected 1 to {side - 1} "
                            "(0 = no crop)")
    side = model.crop or side
    if model.name == "cnn" and side >> len(model.filters) == 0:
        raise RegbenchError(f"{where}: model.filters: {len(model.filters)} conv blocks, each "
                            f"halving the image, leave nothing of {dataset}'s {side}x{side} "
                            f"input; expected at most {side.bit_length() - 1} blocks")
    count = weights(model, dataset)
    if count > MAX_WEIGHTS:
        setting = "model.hidden" if model.name == "mlp" else "model.hidden and model.filters"
        raise RegbenchError(f"{where}: {setting}: the {model.name} has {_big(count)} weights "
                            f"on {dataset}; the limit is {MAX_WEIGHTS:,}")


def _check_training_fits(training: Training, dataset: str, where: str,
                         names: dict[str, str]) -> None:
    """The split leaves images on both sides, and batches and curve points fit the
    images and steps of one cell's training. `names`: how the message names each setting."""
    n = data_info(dataset).train_size
    held_out = round(n * training.validation_fraction)  # as data.split_indices
    if not 0 < held_out < n:
        raise RegbenchError(f"{where}: {names['validation_fraction']}: "
                            f"{training.validation_fraction!r} of {dataset}'s {n:,} training "
                            f"images holds out {held_out:,}; expected a fraction that holds "
                            f"out 1 to {n - 1:,}")
    fit, subset = n - held_out, training.train_subset
    images = subset if 0 < subset < fit else fit
    source = f"of {names['train_subset']}" if images == subset else f"in {dataset}'s fit split"
    if training.batch_size > images:
        raise RegbenchError(f"{where}: {names['batch_size']}: {_big(training.batch_size)} is "
                            f"larger than the {images:,} images {source}; expected at most "
                            f"{images:,}")
    steps = training.epochs * math.ceil(images / training.batch_size)
    if training.curve_every > steps:
        raise RegbenchError(f"{where}: {names['curve_every']}: {_big(training.curve_every)} "
                            f"is more than the {steps:,} steps of training on {dataset}; "
                            f"expected at most {steps:,} (0 = off)")
