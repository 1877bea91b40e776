"""Fuzzed input: every study file and `run` command line gives the plan or the error it must.

Hypothesis writes study files (valid and broken TOML, random keys, values and types, random
technique parameters and designs) and command lines, and runs `regbench run FILE --dry-run`
in-process on each. What the outcome must be is decided beside the command line, by a
reference built here: the file is read and parsed as TOML, the study built by
`study.parse_study` (or refused by it), the command-line overrides checked by hand, and the
plan (one line per cell, then the count, with `done` for each cell the store already holds)
written out. The command must agree exactly: exit 0 with that plan and nothing on stderr, or
exit 2 with that one line `regbench: error: ...` and nothing on stdout; never a traceback, and
nothing written anywhere. Two more properties need no reference at all: studies valid by
construction (their arms and cells counted by hand) and the same studies with one planted
error (its message written by hand). A handful of cases go through a real `regbench` process.
A truncated or altered dataset file stops a real run with exit 2 and a message naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import math
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from regbench import cli, store, summary
from regbench.errors import RegbenchError
from regbench.recipe import MODEL_NAMES, TECHNIQUES, Model, Training
from regbench.study import DATASET_NAMES, DESIGNS, parse_study

GENERATED = ("one_at_a_time", "leave_one_out", "factorial")  # the tuned design: test_tuning.py

REPO = Path(__file__).resolve().parents[1]
PLAN_LINE = re.compile(r"^[0-9a-f]{16}  (todo|done)  \S+  \S+  \S+  seed=\d+$")
FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
CASES: dict[str, int] = {}  # strategy -> examples tried, for docs/reliability.md
SMOKE = (REPO / "ablations" / "smoke.toml").read_text()
# The keys of ablations/smoke.toml's cells, pinned in tests/data/cell_keys.json: none, l1,
# dropout at seed 0, then at seed 1 (epochs 2, train_subset 2000).
SMOKE_KEYS = json.loads((REPO / "tests" / "data" / "cell_keys.json").read_text())[
    "ablations/smoke.toml"]
SMOKE_ARMS = ("none", "l1", "dropout")
STORED_SMOKE_KEY = SMOKE_KEYS[0]  # results/smoke.jsonl in the work folder holds this cell


# --- a small TOML writer: hypothesis makes the data, this makes the text -----------------

def toml_string(value: str) -> str:
    """A TOML basic string holding exactly `value`: quote, backslash and the control characters
    TOML forbids are escaped; every other character is written as it is (JSON's escapes would
    write characters beyond U+FFFF as surrogate pairs, which TOML rejects)."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(str(k))} = {toml_value(v)}"
                           for k, v in value.items()) + "}"


def toml_document(data: dict) -> str:
    """Top-level scalars first, then one [table] per dict, [techniques.X] for techniques."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in
                                                     value.values()) and key == "techniques":
            for label, params in value.items():
                tables.append((f"{key}.{toml_string(label)}", params))
        elif isinstance(value, dict):
            tables.append((toml_string(key), value))
        else:
            lines.append(f"{toml_string(key)} = {toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines += [f"{toml_string(str(k))} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# --- strategies ---------------------------------------------------------------------------

# No lone surrogates (not UTF-8) and no NUL (no shell can pass one in an argument).
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"),
               max_size=12)
scalar = st.one_of(st.booleans(), st.integers(-3, 40), st.integers(-2**63, 2**63 - 1),
                   st.floats(), text)
junk = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(text, inner, max_size=3), max_leaves=6)


def plausible(default):
    """Values of the field's type, in range or not, or of another type."""
    if isinstance(default, bool):
        return st.one_of(st.booleans(), st.sampled_from(["auto", "true", 1]))
    if isinstance(default, float):
        return st.one_of(st.floats(-1, 2), st.floats(), st.sampled_from([0, 1, 1e300, -0.0]))
    if isinstance(default, int):
        return st.one_of(st.integers(-2, 40), st.sampled_from([0, 1, 2**31, 2**63 - 1]),
                         st.floats(0, 10))
    if isinstance(default, tuple):
        return st.lists(st.one_of(st.integers(-1, 64), scalar), max_size=3)
    if isinstance(default, str):
        return st.one_of(st.sampled_from(["all", "hidden", "mlp", "cnn", "relu", "gelu", "adam",
                                          "sgd", "rmsprop", "auto", ""]), text)
    return junk


def settings_table(cls):
    names = [f.name for f in fields(cls)]
    defaults = {f.name: f.default for f in fields(cls)}
    unknown = st.tuples(text, junk)
    if not names:  # a technique without parameters (random_crop): only unknown keys to try
        return st.lists(unknown, max_size=4).map(dict)
    known = st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), st.one_of(plausible(defaults[name]), junk)))
    return st.lists(st.one_of(known, known, known, unknown), max_size=4).map(dict)


technique_label = st.one_of(st.sampled_from(list(TECHNIQUES)), st.sampled_from(["none", "a+b"]),
                            text)


@st.composite
def techniques_table(draw):
    table = {}
    for label in draw(st.lists(technique_label, max_size=4, unique=True)):
        kind = draw(st.one_of(st.sampled_from(list(TECHNIQUES)), text))
        params = draw(settings_table(TECHNIQUES.get(kind, TECHNIQUES["l2"])))
        if label not in TECHNIQUES or draw(st.booleans()):
            params["type"] = draw(st.one_of(st.just(kind), junk))
        table[label] = params
    return table


@st.composite
def design_table(draw, labels):
    design = {}
    if draw(st.booleans()):
        design["kind"] = draw(st.one_of(st.sampled_from(DESIGNS), junk))
    if draw(st.booleans()):
        names = [*labels, *TECHNIQUES, "none", "bogus"]
        arm = st.lists(st.sampled_from(names), min_size=1, max_size=3).map("+".join)
        design["arms"] = draw(st.one_of(st.lists(arm, max_size=4), junk))
    if draw(st.integers(0, 9)) == 0:
        design[draw(text)] = draw(junk)
    return design


# Weighted coins from fair ones (hypothesis draws the smallest integers far more often).
rarely = st.tuples(st.booleans(), st.booleans(), st.booleans()).map(all)  # 1 in 8


@st.composite
def study_data(draw):
    """A study as data: one valid by construction (`valid_study`, below), then each key kept
    as it is (mostly), removed, or given a plausible value or a junk one; now and then a key
    of its own. More than half of them stay valid."""
    data, _ = draw(valid_study())
    other = {
        "name": st.one_of(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True), junk),
        "datasets": st.one_of(st.lists(st.sampled_from([*DATASET_NAMES, "imagenet"]),
                                       min_size=1, max_size=3),
                              st.sampled_from(DATASET_NAMES), junk),
        # counts stay small: a plan lists every cell
        "seeds": st.one_of(st.integers(-1, 3), st.lists(st.integers(-1, 5), max_size=3),
                           junk.filter(lambda v: not isinstance(v, int) or v < 4)),
        "description": st.one_of(text, junk),
        "model": st.one_of(settings_table(Model), junk),
        "training": st.one_of(settings_table(Training), junk),
        "techniques": st.one_of(techniques_table(), techniques_table(), junk),
    }
    for key, values in other.items():
        if draw(rarely):
            if draw(rarely):
                data.pop(key, None)
            else:
                data[key] = draw(values)
    techniques = data.get("techniques", {})
    labels = list(techniques) if isinstance(techniques, dict) else []
    if draw(rarely):
        data["design"] = draw(st.one_of(design_table(labels), design_table(labels), junk))
    if draw(rarely):
        data[draw(text)] = draw(junk)
    return data


@st.composite
def broken_text(draw):
    """A plausible study file, then damaged: cut, spliced, a line doubled, or bytes inserted."""
    source = toml_document(draw(study_data()))
    cut = draw(st.integers(0, len(source)))
    damage = draw(st.sampled_from(["truncate", "splice", "double", "insert"]))
    if damage == "truncate":
        return source[:cut]
    if damage == "splice":
        return source[:cut] + source[draw(st.integers(cut, len(source))):]
    if damage == "double":
        lines = source.splitlines(keepends=True) or [""]
        i = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[:i + 1] + lines[i:])
    return source[:cut] + draw(st.text(st.sampled_from('[]{}="\'\n#.,+ =\t\\'), min_size=1,
                                       max_size=4)) + source[cut:]


def run_args():
    """`run` options, well-formed or not (counts bounded: a plan lists every cell)."""
    number = st.one_of(st.integers(-3, 6), st.sampled_from(["0", "x", "1.5", "", "-1", "1e3"]))
    pack_size = st.one_of(st.integers(-2, 6), st.sampled_from(["x", "1.5", "", "1e3"]))
    option = st.one_of(
        st.tuples(st.sampled_from(["--seeds", "--epochs", "--train-subset"]), number.map(str)),
        st.tuples(st.just("--pack-size"), pack_size.map(str)),
        st.tuples(st.sampled_from(["--data-dir"]), text),
        st.tuples(st.sampled_from(["--retry-failed", "--nondeterministic", "--quiet",
                                   "--dry-run"])),
        st.tuples(st.sampled_from(["--seeds", "--epochs", "--bogus", "-x", "--", "extra"])),
    )
    return st.lists(option, max_size=4).map(lambda opts: [a for o in opts for a in o])


# --- the reference: what `regbench ARGV` must do -------------------------------------------

@dataclasses.dataclass(frozen=True)
class Outcome:
    """Exit 0 printing `stdout` (or the listing of `regbench list`), or exit 2 printing the one
    line `regbench: error: <error>`."""
    stdout: str | None = None
    error: str | None = None
    listing: bool = False


def expected_study(arg: str):
    """The study in file `arg`, or the message that refuses it: the bytes are decoded as UTF-8
    and parsed as TOML here, and the data built into a study by `parse_study` or refused."""
    path = Path(arg)
    try:
        raw = path.read_bytes()
    except OSError as error:
        return f"{path}: cannot read study file ({error.strerror})"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"{path}: not a UTF-8 text file (TOML must be UTF-8)"
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # as a file read in text mode
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return f"{path}: malformed TOML: {error}"
    try:
        return parse_study(data, str(path), default_name=path.stem)
    except RegbenchError as error:
        return str(error)


def overridden(study, seeds: int | None, epochs: int | None, train_subset: int | None):
    """`study` with `--seeds`, `--epochs` and `--train-subset` (the first N seeds, or seeds
    0..N-1 when the study has fewer), or the message that refuses the first bad one."""
    if seeds is not None:
        if not 1 <= seeds <= 10_000:
            return f"--seeds: expected an integer in [1, 10000], got {seeds}"
        study = dataclasses.replace(study, seeds=study.seeds[:seeds] if seeds <= len(
            study.seeds) else tuple(range(seeds)))
    for name, value, bad, rule in (
            ("epochs", epochs, epochs is not None and epochs < 1, "an integer > 0"),
            ("train_subset", train_subset, train_subset is not None and train_subset < 0,
             "an integer >= 0 (0 = all)")):
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if any(name in entry for entry in study.sweep):
            return f"{flag}: the study's sweep sets {name}; edit the study file instead"
        if bad:
            return (f"{flag}: Invalid value for argument `{name}`. Expected {rule}. "
                    f"Received: {name}={value}")
        study = dataclasses.replace(study, training=dataclasses.replace(study.training,
                                                                        **{name: value}))
    batch = study.training.batch_size
    if train_subset and train_subset < batch:  # a batch larger than an epoch's images
        return (f"{study.path}: training.batch_size: {batch} is larger than the "
                f"{train_subset} images of --train-subset; expected at most {train_subset}")
    return study


def finished(path: Path, retry_failed: bool) -> set[str]:
    """Keys of the rows stored at `path`, read line by line here: any row with a key counts as
    done, with `--retry-failed` only rows `ok` or `diverged`."""
    try:
        data = path.read_bytes()
    except OSError:
        return set()
    keys = set()
    for line in data.split(b"\n"):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "key" in row and (
                not retry_failed or row.get("status") in ("ok", "diverged")):
            keys.add(row["key"])
    return keys


def expected_run(args) -> Outcome:
    assert args.dry_run, "this command line would train"
    study = expected_study(args.study)
    if not isinstance(study, str):
        study = overridden(study, args.seeds, args.epochs, args.train_subset)
    if isinstance(study, str):
        return Outcome(error=study)
    path = args.store or Path("results") / f"{study.name}.jsonl"
    if path.is_dir() or not path.name:
        return Outcome(error=f"--store: {path} is a folder; expected a results .jsonl file")
    if path.exists() and os.path.samefile(path, args.study):
        return Outcome(error=f"--store: {path} is the study file {args.study}; give a results "
                             ".jsonl file")
    if args.pack_size is not None and args.pack_size < 1:
        return Outcome(error=f"--pack-size: expected an integer >= 1, got {args.pack_size}")
    cells = study.cells()
    done = finished(path, args.retry_failed)
    lines = [f"{c.key}  {'done' if c.key in done else 'todo'}  {c.dataset}  {c.model.name}  "
             f"{c.arm.label}  seed={c.seed}" for c in cells]
    lines.append(f"{len(cells)} cells, {sum(c.key not in done for c in cells)} to train, "
                 f"store {path}")
    return Outcome(stdout="\n".join(lines) + "\n")


def expected_show(args) -> Outcome:
    path = Path(args.results)
    if path.suffix == ".toml":
        study = expected_study(args.results)
        if isinstance(study, str):
            return Outcome(error=study)
        path = Path("results") / f"{study.name}.jsonl"
    if not path.is_file():
        return Outcome(error=f"{path}: no such results file")
    return Outcome(stdout=summary.format_table(summary.summarize(store.load(path))) + "\n")


def expected(argv: list[str]) -> Outcome | None:
    """What `regbench ARGV` must do in the working directory; None for a command that is not
    fuzzed here (it would write reports or train). Whether the line is well-formed is
    argparse's to say (its message is taken as it is); what regbench then does is decided
    here."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = cli.build_parser().parse_args(argv)
        except SystemExit as exit_:
            if exit_.code != 2:
                return None  # --help
            message = err.getvalue()
            assert message.startswith("regbench: error: ") and message.count("\n") == 1
            return Outcome(error=message.removeprefix("regbench: error: ").rstrip("\n"))
    if args.command == "run":
        return expected_run(args)
    if args.command == "show":
        return expected_show(args)
    if args.command == "list":
        return Outcome(listing=True)
    return None


# --- running the command line in-process ---------------------------------------------------

def tree(folder: Path) -> dict:
    """Every path under `folder` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@contextlib.contextmanager
def inside(folder: Path):
    cwd = os.getcwd()
    os.chdir(folder)  # the default store (results/NAME.jsonl) is relative
    try:
        yield
    finally:
        os.chdir(cwd)


def regbench_here(argv: list[str], work: Path) -> tuple[int, str, str]:
    """`regbench ARGV` in-process in `work`: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with inside(work), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def assert_plan_shape(stdout: str) -> None:
    """One line per cell (key, state, dataset, model, arm, seed), then the count."""
    lines = stdout.splitlines()
    total = re.fullmatch(r"(\d+) cells, (\d+) to train, store .+", lines[-1])
    assert total and int(total[1]) == len(lines) - 1 >= 1, stdout
    assert all(PLAN_LINE.match(line) for line in lines[:-1]), stdout
    assert int(total[2]) == sum(" todo " in line for line in lines[:-1])
    keys = [line.split()[0] for line in lines[:-1]]
    assert len(set(keys)) == len(keys), "two cells with one key"


def check_cli(argv: list[str], work: Path, case: str) -> tuple[int, str, str]:
    """Run `regbench ARGV` in `work` and assert it does what `expected` says, and no more."""
    with inside(work):
        want = expected(argv)
    if want is None:
        assume(False)
    CASES[case] = CASES.get(case, 0) + 1
    before = tree(work)
    code, stdout, stderr = regbench_here(argv, work)
    assert "Traceback" not in stderr
    if want.error is not None:
        assert (code, stdout) == (2, ""), (argv, code, stdout, stderr)
        assert stderr == f"regbench: error: {want.error}\n", (argv, stderr)
        assert "\n" not in want.error
    elif want.listing:
        assert (code, stderr) == (0, ""), (argv, code, stderr)
        assert stdout.startswith("datasets:   mnist, fashion_mnist, cifar10\n")
        assert all(re.search(rf"^  {name} ", stdout, re.M) for name in TECHNIQUES)
    else:
        assert (code, stderr) == (0, ""), (argv, code, stderr)
        assert stdout == want.stdout, argv
        if argv[0] == "run":
            assert_plan_shape(stdout)
    assert tree(work) == before, "a dry run or a refused run changed files"
    return code, stdout, stderr


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "results").mkdir()
    (folder / "results" / "stored.jsonl").write_text(json.dumps(
        {"key": "0123456789abcdef", "status": "ok", "problem": "mnist_mlp", "arm": "none",
         "seed": 0}) + "\n")
    (folder / "results" / "smoke.jsonl").write_text(json.dumps(
        {"key": STORED_SMOKE_KEY, "status": "ok", "problem": "mnist_mlp", "arm": "none",
         "seed": 0}) + "\n")
    yield folder
    print(f"fuzz figure: cases tried = {sum(CASES.values())} {CASES}")
    target = os.environ.get("REGBENCH_RELIABILITY_FIGURES")
    if target:
        path = Path(target)
        figures = json.loads(path.read_text()) if path.is_file() else {}
        figures["fuzz_cases"] = dict(CASES, total=sum(CASES.values()))
        path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def write(work: Path, name: str, content: str | bytes) -> Path:
    path = work / name
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    path.write_bytes(content)
    return path


# --- fuzzed study files and command lines, against the reference ---------------------------

STORES = st.sampled_from([None, "results/stored.jsonl", "results/missing.jsonl",
                          "nowhere/s.jsonl", "study.toml", "results/smoke.jsonl"])


@pytest.mark.slow
@settings(FUZZ, max_examples=250)
@given(data=study_data(), store=STORES)
def test_generated_study_files_give_their_plan_or_their_error(work, data, store):
    path = write(work, "study.toml", toml_document(data))
    argv = ["run", str(path), "--dry-run"] + (["--store", store] if store else [])
    code, _, stderr = check_cli(argv, work, "study files")
    if code == 2:  # the message says where: the file, or that it is its own store
        assert stderr.startswith(f"regbench: error: {path}: ") or (
            store == "study.toml" and stderr.startswith("regbench: error: --store: "
                                                        "study.toml is the study file "))


@pytest.mark.slow
@settings(FUZZ, max_examples=200)
@given(source=broken_text())
def test_broken_toml_gives_its_plan_or_its_error(work, source):
    path = write(work, "broken.toml", source)
    check_cli(["run", str(path), "--dry-run"], work, "broken TOML")


@settings(FUZZ, max_examples=50)
@given(raw=st.binary(max_size=64))
def test_random_bytes_give_one_line_of_error(work, raw):
    path = write(work, "bytes.toml", raw)
    code, _, stderr = check_cli(["run", str(path), "--dry-run"], work, "random bytes")
    assert code == 2 and stderr.startswith(f"regbench: error: {path}: ")


@settings(FUZZ, max_examples=200)
@given(args=run_args(), study=st.sampled_from(["smoke.toml", "missing.toml", "folder"]))
def test_generated_command_lines_give_their_plan_or_their_error(work, args, study):
    write(work, "smoke.toml", SMOKE)
    (work / "folder").mkdir(exist_ok=True)
    argv = ["run", study, *args]
    if "--dry-run" not in argv:
        argv.append("--dry-run")  # whatever else the line says, train nothing here
    code, stdout, _ = check_cli(argv, work, "command lines")
    if code == 0:  # only smoke.toml has a plan; its cells are known without the library
        assert study == "smoke.toml"
        with inside(work):
            parsed = cli.build_parser().parse_args(argv)
        n = parsed.seeds or 2
        seeds = [0, 1][:n] if n <= 2 else list(range(n))
        lines = [line.split() for line in stdout.splitlines()[:-1]]
        assert [line[4:] for line in lines] == [[arm, f"seed={seed}"] for seed in seeds
                                                for arm in SMOKE_ARMS]
        keys = [line[0] for line in lines]
        if parsed.epochs in (None, 2) and parsed.train_subset in (None, 2000):
            assert keys[:6] == SMOKE_KEYS[:len(keys)]  # the study's own settings: pinned keys
        else:
            assert not set(keys) & set(SMOKE_KEYS)  # other settings, other cells
        assert [line[1] for line in lines] == ["done" if key == STORED_SMOKE_KEY else "todo"
                                               for key in keys]


OTHER_COMMANDS = ("report", "claims", "reproduce", "bench-report", "bench-compare",
                  "bench-grid")


@settings(FUZZ, max_examples=60)
@given(argv=st.lists(st.one_of(st.sampled_from(["run", "show", "list", "--store", "-q",
                                                "smoke.toml", "--dry-run"]), text),
                     max_size=3))
def test_any_first_words_give_their_output_or_their_error(work, argv):
    """Sub-commands and their arguments in any order (never training: no `run` without
    --dry-run reaches the training loop, and the commands that write reports are left out)."""
    write(work, "smoke.toml", SMOKE)
    if argv[:1] == ["run"] and "--dry-run" not in argv:
        argv = [*argv, "--dry-run"]
    assume(not set(argv) & {"-h", "--help", *OTHER_COMMANDS})
    # A folder where a file is expected has its own test below.
    assume(not any(a in ("", ".", "..") or (work / a).is_dir() for a in argv[1:]))
    check_cli(argv, work, "first words")


def test_the_toml_writer_writes_what_tomllib_reads_back():
    """The fuzzed files are well-formed TOML unless damaged on purpose, so the data reach the
    study parser (JSON's escapes once made most of them malformed)."""
    @settings(FUZZ, max_examples=100)
    @given(data=study_data())
    def round_trip(data):
        same = json.dumps(tomllib.loads(toml_document(data)), sort_keys=True)
        assert same == json.dumps(data, sort_keys=True)

    round_trip()
    assert tomllib.loads(toml_document({"k\U0001f600\x7f": ['"\\\n']})) == {
        "k\U0001f600\x7f": ['"\\\n']}


# --- studies valid by construction, and each with one planted error -----------------------

def held(low: float, high: float):
    """Floats in [low, high] that float32 holds as they are: 0, or at least its smallest
    normal number."""
    return st.floats(low, high).filter(lambda x: x == 0 or x >= 2.0 ** -126)


PARAMETERS = {  # technique -> values of its parameters that are valid by construction
    "l1": {"factor": held(0, 1), "layers": st.sampled_from(["all", "hidden"])},
    "l2": {"factor": held(0, 1), "layers": st.sampled_from(["all", "hidden"])},
    "dropout": {"rate": held(0, 0.9), "input_rate": held(0, 0.5)},
    "batchnorm": {"momentum": held(0, 0.999), "epsilon": st.floats(1e-6, 0.1),
                  "position": st.sampled_from(["after", "before"])},
    "augmentation": {"rotation": held(0, 180), "shift": held(0, 0.9),
                     "flip": st.sampled_from(["auto", True, False])},
    "early_stopping": {"patience": st.integers(0, 10), "min_delta": held(0, 0.1),
                       "restore_best_weights": st.booleans()},
    "max_norm": {"c": st.floats(0.1, 10)},
    "kl_sparsity": {"target": st.floats(0.01, 0.99), "weight": held(0, 1)},
    "gaussian_noise": {"stddev": st.floats(0.01, 1)},
}  # none of these conflict with another, and none needs anything of the model
VARIANT_LABELS = ("weak", "strong", "mine")
ALL_TECHNIQUES = ("l1, l2, l1_l2, dropout, batchnorm, augmentation, early_stopping, max_norm, "
                  "kl_sparsity, l1_late, weight_decay, random_crop, gaussian_noise")
MODEL = {"name": st.sampled_from(MODEL_NAMES),
         "hidden": st.lists(st.integers(1, 128), min_size=1, max_size=3),
         "activation": st.sampled_from(["relu", "sigmoid", "tanh", "elu", "gelu"]),
         "filters": st.lists(st.integers(1, 64), max_size=3),
         "crop": st.one_of(st.just(0), st.integers(8, 27)),  # of 28x28 or 32x32, 3 pools
         "standardize": st.booleans()}
TRAINING = {"optimizer": st.sampled_from(["adam", "sgd", "rmsprop"]),
            "learning_rate": st.floats(1e-5, 1), "momentum": held(0, 0.99),
            # at least 100 steps an epoch (curve_every's largest): batches of at most 64
            # from at least 6,400 images
            "batch_size": st.integers(1, 64), "epochs": st.integers(1, 50),
            "validation_fraction": st.floats(0.01, 0.5),
            "train_subset": st.one_of(st.just(0), st.integers(6400, 10_000)),
            "lr_decay": st.floats(0.01, 1), "curve_every": st.integers(0, 100)}


@st.composite
def valid_study(draw):
    """(study data, what its plan must list): datasets, seeds, model name, arm labels, name."""
    data = {}
    datasets = draw(st.lists(st.sampled_from(DATASET_NAMES), min_size=1, max_size=3,
                             unique=True))
    data["datasets"] = datasets[0] if len(datasets) == 1 and draw(st.booleans()) else datasets
    seeds = list(range(5))  # the default
    if draw(st.booleans()):
        data["seeds"] = draw(st.one_of(st.integers(1, 3), st.lists(
            st.integers(0, 2**31 - 1), min_size=1, max_size=3, unique=True)))
        seeds = list(range(data["seeds"])) if isinstance(data["seeds"], int) else data["seeds"]
    name = "valid"  # the file's stem
    if draw(st.booleans()):
        name = data["name"] = draw(st.from_regex(r"[a-z][a-z0-9_.-]{0,10}", fullmatch=True)
                                   .filter(lambda s: s not in ("smoke", "stored")))
    if draw(st.booleans()):  # any text TOML can hold (no control characters)
        data["description"] = draw(st.text(st.characters(exclude_categories=("Cs", "Cc")),
                                           max_size=12))
    if draw(st.booleans()):
        data["model"] = draw(st.fixed_dictionaries({}, optional=MODEL))
    if draw(st.booleans()):
        training = draw(st.fixed_dictionaries({}, optional=TRAINING))
        if training.get("optimizer") == "sgd" and draw(st.booleans()):  # a momentum ramp
            training["momentum_epochs"] = draw(st.integers(1, 5))
            training["momentum_start"] = draw(held(0, 0.9))
        data["training"] = training
    techniques, variants = {}, iter(VARIANT_LABELS)
    for kind in draw(st.lists(st.sampled_from(list(PARAMETERS)), unique=True, max_size=4)):
        params = draw(st.fixed_dictionaries({}, optional=PARAMETERS[kind]))
        label = (draw(st.booleans()) and next(variants, None)) or kind
        techniques[label] = params if label == kind else {"type": kind, **params}
    if techniques or draw(st.booleans()):
        data["techniques"] = techniques
    labels = list(techniques)
    kind = draw(st.sampled_from(["explicit", *(GENERATED if labels else [])]))
    if kind == "explicit":
        subsets = [c for r in range(len(labels) + 1) for c in itertools.combinations(labels, r)]
        chosen = draw(st.lists(st.sampled_from(subsets), min_size=1, max_size=5, unique=True))
        arms = ["+".join(draw(st.permutations(c))) or "none" for c in chosen]
        data["design"] = {"arms": arms} | ({"kind": "explicit"} if draw(st.booleans()) else {})
    else:
        arms = None  # counted in the test
        if kind != "one_at_a_time" or draw(st.booleans()):  # one_at_a_time is the default
            data["design"] = {"kind": kind}
    model = data.get("model", {}).get("name", "mlp")
    return data, dict(kind=kind, labels=labels, arms=arms, seeds=seeds, name=name,
                      datasets=datasets, model=model)


def designed_arms(kind: str, labels: list[str], arms: list[str]) -> list[str]:
    """The arm labels the plan lists, from the README's definition of each design."""
    if kind == "one_at_a_time":  # none, then each technique alone
        return ["none", *labels]
    if kind == "leave_one_out":  # all techniques, then all but one in turn
        return ["+".join(labels), *("+".join(x for x in labels if x != left) or "none"
                                    for left in labels)]
    return arms


@settings(FUZZ, max_examples=100)
@given(case=valid_study())
def test_a_valid_study_lists_every_cell(work, case):
    data, want = case
    path = write(work, "valid.toml", toml_document(data))
    before = tree(work)
    code, stdout, stderr = regbench_here(["run", str(path), "--dry-run"], work)
    CASES["valid studies"] = CASES.get("valid studies", 0) + 1
    assert (code, stderr) == (0, ""), stderr
    assert_plan_shape(stdout)
    lines = [line.split() for line in stdout.splitlines()[:-1]]
    listed = [line[4] for line in lines]
    if want["kind"] == "factorial":  # every subset of the techniques once, smallest first
        k = len(want["labels"])
        sets = [frozenset() if a == "none" else frozenset(a.split("+")) for a in listed]
        per_cell = sets[:2 ** k]
        assert len(set(per_cell)) == 2 ** k and all(s <= set(want["labels"]) for s in per_cell)
        assert [len(s) for s in per_cell] == sorted(len(s) for s in per_cell)
        arms = listed[:2 ** k]
    else:
        arms = designed_arms(want["kind"], want["labels"], want["arms"])
    n = len(want["datasets"]) * len(want["seeds"]) * len(arms)
    assert [line[1:] for line in lines] == [
        ["todo", dataset, want["model"], arm, f"seed={seed}"]
        for dataset in want["datasets"] for seed in want["seeds"] for arm in arms]
    assert stdout.splitlines()[-1] == f"{n} cells, {n} to train, store results/{want['name']}.jsonl"
    assert tree(work) == before


def planted(data: dict, labels: list[str], error: str) -> tuple[dict, str]:
    """`data` with one error of kind `error`, and the message (after the path) it must get."""
    data = json.loads(json.dumps(data))  # a deep copy
    datasets = data["datasets"] if isinstance(data["datasets"], list) else [data["datasets"]]
    valid_names = ", ".join(dict.fromkeys(["none", *labels, *ALL_TECHNIQUES.split(", ")]))
    if error == "unknown key":
        data["epoch"] = 3
        return data, ("unknown key `epoch`. Valid keys: name, description, datasets, seeds, "
                      "model, training, sweep, techniques, design")
    if error == "bad name":
        data["name"] = "a b"
        return data, "name: expected letters, digits, '_', '-' or '.', got 'a b'"
    if error == "no datasets":
        del data["datasets"]
        return data, ("missing key `datasets` (one or more of mnist, fashion_mnist, cifar10, "
                      "npz:PATH, tfds:NAME)")
    if error == "unknown dataset":
        data["datasets"] = [*datasets, "svhn"]
        return data, "datasets: unknown dataset `svhn`. Valid datasets: mnist, fashion_mnist, " \
                     "cifar10, npz:PATH (your arrays), tfds:NAME (tensorflow-datasets)"
    if error == "zero seeds":
        data["seeds"] = 0
        return data, "seeds: expected a count in [1, 10000], got 0"
    if error == "a seed twice":
        data["seeds"] = [3, 3]
        return data, ("seeds: expected a count or a list of distinct integers in "
                      "[0, 2147483647], got [3, 3]")
    if error == "unknown activation":
        data["model"] = data.get("model", {}) | {"activation": "swish"}
        return data, ("model: Invalid value for argument `activation`. Expected one of relu, "
                      "sigmoid, tanh, elu, gelu. Received: activation='swish'")
    if error == "zero epochs":
        data["training"] = data.get("training", {}) | {"epochs": 0}
        return data, ("training: Invalid value for argument `epochs`. Expected an integer > 0. "
                      "Received: epochs=0")
    if error == "batch size as text":
        data["training"] = data.get("training", {}) | {"batch_size": "32"}
        return data, "training.batch_size: expected an integer, got '32'"
    if error == "dropout rate 1.5":
        data["techniques"] = data.get("techniques", {}) | {"dropout": {"rate": 1.5}}
        return data, ("techniques.dropout: Invalid value for argument `rate`. Expected a float "
                      "in [0, 1). Received: rate=1.5")
    if error == "unknown technique":
        data["techniques"] = data.get("techniques", {}) | {"decay": {"factor": 0.1}}
        return data, f"techniques.decay: unknown technique `decay`. Valid techniques: " \
                     f"{ALL_TECHNIQUES}"
    if error == "unknown design":
        data["design"] = {"kind": "bogus"}
        return data, ("design.kind: unknown design `bogus`. Valid designs: explicit, "
                      "one_at_a_time, leave_one_out, factorial, tuned")
    if error == "unknown design key":
        data["design"] = {"kind": "explicit", "arms": ["none"], "seeds": 1}
        return data, "design: unknown key `seeds`. Valid keys: kind, arms"
    if error == "arms with a generated design":
        data["design"] = {"kind": "factorial", "arms": ["none"]}
        return data, 'design.arms: only for kind = "explicit" or "tuned"'
    if error == "a design without techniques":
        data.pop("techniques", None)
        data["design"] = {"kind": "leave_one_out"}
        return data, "design `leave_one_out` needs a [techniques] table"
    if error == "unknown arm":
        data["design"] = {"arms": ["none", "nope"]}
        return data, f"design.arms: unknown technique `nope` in arm `nope`. Valid names: " \
                     f"{valid_names}"
    if error == "conflicting arm":
        data["design"] = {"arms": ["none", "l1_l2+l2"]}
        return data, ("arm `l1_l2+l2`: conflicting techniques: `l1_l2` already holds an L2 "
                      "term; use `l1_l2` or `l2`")
    if error == "an arm twice":
        data["design"] = {"arms": ["none", "none"]}
        return data, "arms `none` and `none` are the same set of techniques"
    if error == "random crop without a crop":
        data["model"] = data.get("model", {}) | {"crop": 0}
        data["design"] = {"arms": ["random_crop"]}
        return data, ("arm `random_crop`: technique `random_crop` needs a crop size: set "
                      "model.crop (e.g. 28)")
    raise AssertionError(error)


PLANTED = ("unknown key", "bad name", "no datasets", "unknown dataset", "zero seeds",
           "a seed twice", "unknown activation", "zero epochs", "batch size as text",
           "dropout rate 1.5", "unknown technique", "unknown design", "unknown design key",
           "arms with a generated design", "a design without techniques", "unknown arm",
           "conflicting arm", "an arm twice", "random crop without a crop", "malformed TOML")


@settings(FUZZ, max_examples=100)
@given(case=valid_study(), error=st.sampled_from(PLANTED))
def test_a_study_with_one_planted_error_is_refused_with_its_message(work, case, error):
    data, want = case
    if error == "malformed TOML":
        source, message = toml_document(data) + "[model\n", None
    else:
        data, message = planted(data, want["labels"], error)
        source = toml_document(data)
    path = write(work, "planted.toml", source)
    before = tree(work)
    code, stdout, stderr = regbench_here(["run", str(path), "--dry-run"], work)
    CASES["planted errors"] = CASES.get("planted errors", 0) + 1
    assert (code, stdout) == (2, ""), (error, stdout)
    if message is None:  # the TOML parser's own words, after ours
        assert stderr.startswith(f"regbench: error: {path}: malformed TOML: ")
        assert stderr.count("\n") == 1
    else:
        assert stderr == f"regbench: error: {path}: {message}\n"
    assert tree(work) == before


# --- inputs that once slipped through ---------------------------------------------------

@pytest.mark.parametrize("store", [".", ""])
def test_a_folder_as_store_is_one_line_of_error(work, store):
    write(work, "smoke.toml", SMOKE)
    _, _, stderr = check_cli(["run", "smoke.toml", "--dry-run", "--store", store], work,
                             "known gaps")
    assert stderr == "regbench: error: --store: . is a folder; expected a results .jsonl file\n"


def test_a_foreign_line_in_the_store_is_not_a_traceback(work):
    write(work, "smoke.toml", SMOKE)
    write(work, "foreign.jsonl", '{"note": "not a result"}\n')
    store_path = str(work / "foreign.jsonl")
    warning = f"regbench: warning: {store_path}: skipped 1 line that is not a regbench row\n"
    code, plan, stderr = regbench_here(["run", str(work / "smoke.toml"), "--dry-run",
                                        "--store", store_path], work)
    assert (code, stderr) == (0, warning)
    assert plan.splitlines()[-1] == f"6 cells, 6 to train, store {store_path}"  # nothing done
    assert regbench_here(["show", store_path], work) == (0, "no results yet\n", warning)


def test_a_seed_numpy_cannot_take_is_refused_when_the_study_is_read(work):
    path = write(work, "seeds.toml", SMOKE.replace("seeds = 2", "seeds = [0, 4294967296]"))
    _, _, stderr = check_cli(["run", str(path), "--dry-run"], work, "known gaps")
    assert stderr == (f"regbench: error: {path}: seeds: expected a count or a list of distinct "
                      "integers in [0, 2147483647], got [0, 4294967296]\n")


# --- through a real process ---------------------------------------------------------------

def env(data_dir: Path | None = None) -> dict:
    out = {k: v for k, v in os.environ.items() if not k.startswith("REGBENCH_")}
    out.update(CI="1", TF_CPP_MIN_LOG_LEVEL="3",
               REGBENCH_CACHE_DIR="/nonexistent/regbench-test-cache",
               REGBENCH_DOWNLOAD_URL="http://127.0.0.1:9/")
    if data_dir is not None:
        out["REGBENCH_DATA_DIR"] = str(data_dir)
    return out


def regbench(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "regbench.cli", *map(str, args)], cwd=cwd,
                          env=env(), capture_output=True, text=True, timeout=240)


@pytest.mark.slow
@pytest.mark.parametrize("content, args, expected", [
    (SMOKE, [], None),
    (SMOKE.replace("[model]", "[model"), [], r"malformed TOML"),
    (b"\xff\xfe name = 1", [], r"not a UTF-8 text file"),
    (SMOKE.replace('rate = 0.5', 'rate = 1.5'),
     [], r"techniques\.dropout: Invalid value for argument `rate`"),
    (SMOKE, ["--epochs", "many"], r"argument --epochs: invalid int value: 'many'"),
    (SMOKE, ["--seeds", "0"], r"--seeds: expected an integer in \[1, 10000\], got 0"),
    (SMOKE, ["--bogus"], r"unrecognized arguments: --bogus"),
], ids=["plan", "malformed", "not-utf8", "bad-rate", "bad-epochs", "zero-seeds", "bad-flag"])
def test_a_real_process_gives_a_plan_or_one_line_of_error(tmp_path, content, args, expected):
    path = write(tmp_path, "study.toml", content)
    result = regbench("run", path, "--dry-run", *args, cwd=tmp_path)
    assert "Traceback" not in result.stderr
    if expected is None:
        assert result.returncode == 0 and result.stderr == ""
        assert result.stdout.splitlines() == [
            f"{key}  todo  mnist  mlp  {arm}  seed={seed}"
            for key, (seed, arm) in zip(SMOKE_KEYS, itertools.product((0, 1), SMOKE_ARMS))
        ] + ["6 cells, 6 to train, store results/smoke.jsonl"]
    else:
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("regbench: error: ")
        assert re.search(expected, result.stderr), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]


# --- damaged dataset files ----------------------------------------------------------------

def _data_dir() -> Path | None:
    env_dir = os.environ.get("REGBENCH_DATA_DIR")
    folder = (REPO / env_dir) if env_dir else (REPO / "../shared/datasets")
    return folder.resolve() if (folder / "mnist.npz").is_file() else None


DATA_DIR = _data_dir()


@pytest.mark.slow
@pytest.mark.skipif(DATA_DIR is None, reason="MNIST not found: set REGBENCH_DATA_DIR")
def test_a_truncated_dataset_file_stops_the_run_with_its_name(tmp_path):
    good = (DATA_DIR / "mnist.npz").read_bytes()
    data = tmp_path / "data"
    data.mkdir()
    (data / "mnist.npz").write_bytes(good[:len(good) // 2])  # an interrupted copy
    study = write(tmp_path, "study.toml", SMOKE)
    result = regbench("run", study, "--data-dir", data, "--store", tmp_path / "s.jsonl",
                      "--quiet", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("regbench: error: mnist: ")
    assert f"{(data / 'mnist.npz').resolve()} is unreadable" in last
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.skipif(DATA_DIR is None, reason="MNIST not found: set REGBENCH_DATA_DIR")
def test_an_altered_dataset_file_fails_its_checksum_with_its_name(tmp_path):
    """One label changed in an otherwise valid file: read in-process, no training needed."""
    from regbench import data

    with np.load(DATA_DIR / "mnist.npz") as f:
        arrays = {k: f[k] for k in data.ARRAY_NAMES}
    arrays["y_test"] = arrays["y_test"].copy()
    arrays["y_test"][0] = (arrays["y_test"][0] + 1) % 10
    folder = tmp_path / "data"
    folder.mkdir()
    np.savez(folder / "mnist.npz", **arrays)
    assert zipfile.is_zipfile(folder / "mnist.npz")
    with pytest.raises(data.DataError) as error:
        data.load("mnist", data_dir=folder, download=False)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"mnist: {(folder / 'mnist.npz').resolve()}: y_test fails its "
                              "checksum (sha256 ")
