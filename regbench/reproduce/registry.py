"""The reproductions, read from data files: `ablations/published/reproductions/<paper>.toml`.

A paper's file holds its citation, what it published (`[published.<id>]`: the budget in the
paper's words and its rows of numbers, or none for a figure) and the reproductions of each
(`[reproductions.<name>]`: the study files trained, not run or probed, final seeds, stretch
settings, variant, notes). `index.toml` names the papers in the order they are listed. The
dataclasses below are the schema: a file's tables become them field by field, and a table
that does not fit gives a one-line `RegbenchError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import get_args, get_origin, get_type_hints

from regbench.errors import RegbenchError

STUDY_DIR = Path("ablations/published")  # study files and reports, relative to the project:
REPORT_DIR = Path("reports/published")   # the folder a command runs in, when it holds them
CHECKOUT = Path(__file__).resolve().parents[2]  # else the checkout regbench runs from
# The data files are read wherever the command runs: an unknown name lists the valid ones.
REGISTRY_DIR = CHECKOUT / STUDY_DIR / "reproductions"
PROBE_SUBSET = 10_000  # images in a probe cell, which times a study too large for this machine


@dataclass(frozen=True)
class Probe:
    """One short cell of a study that is not trained here, to time it: `epochs` epochs of
    the first arm at seed 0 on `PROBE_SUBSET` images; the last epoch (no tracing) is timed."""
    study: str
    epochs: int = 2


@dataclass(frozen=True)
class Table9Row:
    """A row of Srivastava et al.'s Table 9 and the grid its coefficient is chosen from."""
    method: str
    error: float             # published test error, %
    grid: tuple[str, ...]    # arms of the tuning study


@dataclass(frozen=True)
class ZhangRow:
    """A row of Zhang et al.'s Table 1 and the study arm that trains it here."""
    study: str
    model: str
    arm: str
    random_crop: bool
    weight_decay: bool
    train: float             # published train accuracy, %
    test: float              # published test accuracy, %


# The report each published table or figure is compared in, and the type of its rows.
ROW_TYPES: dict[str, type | None] = {"table9": Table9Row, "fig10": None, "zhang": ZhangRow,
                                     "ioffe": None}


@dataclass(frozen=True)
class Published:
    """A table or figure of a paper: what a reproduction's report puts its numbers beside."""
    citation: str
    report: str              # a key of ROW_TYPES
    budget: dict[str, str]   # the paper's settings, in its words
    rows: tuple = ()         # of ROW_TYPES[report]; none for a figure without values


@dataclass(frozen=True)
class Reproduction:
    name: str
    title: str
    published: Published
    studies: tuple[str, ...]                 # trained by `regbench reproduce NAME`
    not_run: tuple[str, ...] = ()            # shipped, trained only with a GPU (or by hand)
    probes: tuple[Probe, ...] = ()
    final_seeds: tuple[int, ...] = ()        # Table 9: the chosen grid points at these seeds
    stretch: int = 0                         # Table 9: also train `stretch_methods` with the
    stretch_methods: tuple[str, ...] = ()    # schedule stretched this many times (a budget check)
    variant: str = ""
    notes: tuple[str, ...] = ()


class FieldError(Exception):
    """A field of a data file that does not fit the schema; `load` names the file."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")


# --- loading ---------------------------------------------------------------------------------

def load(folder: Path = REGISTRY_DIR) -> dict[str, Reproduction]:
    """Every reproduction of the papers `folder/index.toml` names, in its order."""
    papers = _read(folder / "index.toml", _papers)
    unlisted = sorted({p.stem for p in folder.glob("*.toml")} - {"index", *papers})
    if unlisted:
        raise RegbenchError(f"{folder / unlisted[0]}.toml: not listed in "
                            f"{folder / 'index.toml'} (papers)")
    out: dict[str, Reproduction] = {}
    for paper in papers:
        path = folder / f"{paper}.toml"
        for repro in _read(path, lambda doc: _paper(doc, folder.parent)):
            if repro.name in out:
                raise RegbenchError(f"{path}: reproductions.{repro.name}: the name is taken by "
                                    "another paper's file")
            out[repro.name] = repro
    return out


def _read(path: Path, parse):
    """parse(the TOML document at path), its errors as one line naming the file."""
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RegbenchError(f"{path}: no such data file") from None
    except tomllib.TOMLDecodeError as error:
        raise RegbenchError(f"{path}: not valid TOML: {error}") from None
    try:
        return parse(doc)
    except FieldError as error:
        raise RegbenchError(f"{path}: {error}") from None


def _papers(doc: dict) -> tuple[str, ...]:
    _only(doc, {"papers"}, "")
    return _convert(_required(doc, "papers", ""), tuple[str, ...], "papers")


def _paper(doc: dict, study_dir: Path) -> list[Reproduction]:
    _only(doc, {"citation", "published", "reproductions"}, "")
    citation = _convert(_required(doc, "citation", ""), str, "citation")
    published = {key: _published(table, citation, f"published.{_key(key)}")
                 for key, table in _section(doc, "published").items()}
    return [_reproduction(name, table, published, study_dir, f"reproductions.{_key(name)}")
            for name, table in _section(doc, "reproductions").items()]


def _section(doc: dict, name: str) -> dict:
    """A top-level table of a paper's file: one entry per table or reproduction."""
    return _table(_required(doc, name, ""), name)


def _published(table, citation: str, field: str) -> Published:
    table = dict(_table(table, field))
    report = _convert(_required(table, "report", field), str, f"{field}.report")
    if report not in ROW_TYPES:
        raise FieldError(f"{field}.report", f"expected one of {', '.join(ROW_TYPES)}, "
                                            f"got {report!r}")
    row_type = ROW_TYPES[report]
    rows = table.pop("rows", [])
    if rows and row_type is None:
        raise FieldError(f"{field}.rows", f"the {report} report takes no rows")
    rows = _convert(rows, tuple[row_type, ...], f"{field}.rows") if rows else ()
    return _build(Published, table, field, citation=citation, rows=rows)


def _reproduction(name: str, table, published: dict[str, Published], study_dir: Path,
                  field: str) -> Reproduction:
    table = dict(_table(table, field))
    ref = _convert(_required(table, "published", field), str, f"{field}.published")
    if ref not in published:
        raise FieldError(f"{field}.published", f"expected one of {', '.join(published)}, "
                                               f"got {ref!r}")
    del table["published"]  # a reference, resolved: not a field to convert
    repro = _build(Reproduction, table, field, name=name, published=published[ref])
    named = [(f"{key}[{i}]", study) for key in ("studies", "not_run")
             for i, study in enumerate(getattr(repro, key))]
    named += [(f"probes[{i}].study", probe.study) for i, probe in enumerate(repro.probes)]
    for where, study in named:
        if not (study_dir / f"{study}.toml").is_file():
            raise FieldError(f"{field}.{where}", f"no study file {study_dir / study}.toml")
    return repro


# --- the schema: dataclass fields <- TOML values ---------------------------------------------

TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _build(cls, table, field: str, **given):
    """A `cls` from a TOML table, each value checked against its field's type; `given`
    fields come from elsewhere in the file and may not appear in the table."""
    table = _table(table, field)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in given}
    _only(table, set(fields), field)
    for name, f in fields.items():
        if f.default is dataclasses.MISSING:
            _required(table, name, field)
    hints = get_type_hints(cls)
    return cls(**given, **{name: _convert(value, hints[name], _join(field, name))
                           for name, value in table.items()})


def _convert(value, hint, field: str):
    """`value` as type `hint`: a scalar, tuple[X, ...] (a TOML array), dict[str, X] (a TOML
    table) or a dataclass (a TOML table)."""
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, field)
    origin, args = get_origin(hint), get_args(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise FieldError(field, f"expected a list, got {value!r}")
        return tuple(_convert(v, args[0], f"{field}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        return {k: _convert(v, args[1], _join(field, k))
                for k, v in _table(value, field).items()}
    if hint is float and type(value) is int:
        return float(value)
    if type(value) is not hint:  # `type`, not isinstance: true is not an integer here
        raise FieldError(field, f"expected {TYPE_NAMES[hint]}, got {value!r}")
    return value


def _table(value, field: str) -> dict:
    if not isinstance(value, dict):
        raise FieldError(field, f"expected a table, got {value!r}")
    return value


def _only(table: dict, allowed: set[str], field: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise FieldError(_join(field, unknown[0]),
                         f"unknown field; expected one of {', '.join(sorted(allowed))}")


def _required(table: dict, name: str, field: str):
    if name not in table:
        raise FieldError(_join(field, name), "missing")
    return table[name]


def _join(field: str, key: str) -> str:
    return f"{field}.{_key(key)}" if field else _key(key)


def _key(key: str) -> str:
    """A key as TOML writes it: bare when it can be, else quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'"{key}"'


# --- the registry ----------------------------------------------------------------------------

REPRODUCTIONS: dict[str, Reproduction] = load()


def get(name: str) -> Reproduction:
    if name not in REPRODUCTIONS:
        raise RegbenchError(f"reproduce: unknown reproduction `{name}`. "
                            f"Valid names: {', '.join(REPRODUCTIONS)}")
    return REPRODUCTIONS[name]


def _project(folder: Path) -> Path:
    """`folder` as given when it exists from here (or is absolute), else in the checkout, so
    `regbench reproduce` finds the committed reproductions from any folder."""
    if folder.is_absolute() or Path(STUDY_DIR).is_dir():
        return folder
    return CHECKOUT / folder if (CHECKOUT / STUDY_DIR).is_dir() else folder


def study_path(study: str) -> Path:
    return _project(STUDY_DIR) / f"{study}.toml"


def store_path(name: str) -> Path:
    return _project(REPORT_DIR) / name / "results.jsonl"


def index_path() -> Path:
    return _project(REPORT_DIR) / "README.md"


def listing() -> list[str]:
    """One line per reproduction: name, title, and whether results are stored."""
    out = []
    for name, repro in REPRODUCTIONS.items():
        if (store_path(name).parent / "README.md").is_file():
            stored = "report stored"
        else:
            stored = "probe only, not run here" if store_path(name).is_file() else "not run yet"
        out.append(f"{name:<30} {repro.title} ({stored})")
    return out
