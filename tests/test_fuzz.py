"""Fuzzed input: every study file and `run` command line is a plan or one line of error.

Hypothesis writes study files (valid and broken TOML, random keys, values and types, random
technique parameters and designs) and command lines. For each, `regbench run FILE --dry-run`
either exits 0 with a plan (one line per cell, then the count) or exits 2 with exactly one line
`regbench: error: ...`: never a traceback, and nothing is written anywhere. The library runs
in-process for speed; a handful of cases go through a real `regbench` process. A truncated or
altered dataset file stops a real run with exit 2 and a message naming the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from regbench import cli
from regbench.recipe import TECHNIQUES, Model, Training
from regbench.study import DATASET_NAMES, DESIGNS

REPO = Path(__file__).resolve().parents[1]
PLAN_LINE = re.compile(r"^[0-9a-f]{16}  (todo|done)  \S+  \S+  \S+  seed=\d+$")
TOTAL_LINE = re.compile(r"^(\d+) cells, (\d+) to train, store .+$")
FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
CASES: dict[str, int] = {}  # strategy -> examples tried, for docs/reliability.md


# --- a small TOML writer: hypothesis makes the data, this makes the text -----------------

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
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string, mostly
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}"
                           for k, v in value.items()) + "}"


def toml_document(data: dict) -> str:
    """Top-level scalars first, then one [table] per dict, [techniques.X] for techniques."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in
                                                     value.values()) and key == "techniques":
            for label, params in value.items():
                tables.append((f"{key}.{json.dumps(label)}", params))
        elif isinstance(value, dict):
            tables.append((json.dumps(key), value))
        else:
            lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines += [f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in table.items()]
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


@st.composite
def study_data(draw):
    """A study as data: each key present with a plausible value, a junk one, or absent."""
    data = {}
    pick = st.integers(0, 5)
    if draw(pick):
        data["name"] = draw(st.one_of(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True),
                                      junk))
    if draw(pick):
        data["datasets"] = draw(st.one_of(
            st.lists(st.sampled_from([*DATASET_NAMES, "imagenet"]), min_size=1, max_size=3),
            st.sampled_from(DATASET_NAMES), junk))
    if draw(pick):  # counts stay small: a plan lists every cell
        data["seeds"] = draw(st.one_of(st.integers(-1, 3), st.lists(st.integers(-1, 5),
                                                                    max_size=3), junk
                                       .filter(lambda v: not isinstance(v, int) or v < 4)))
    if draw(pick):
        data["description"] = draw(st.one_of(text, junk))
    if draw(pick):
        data["model"] = draw(st.one_of(settings_table(Model), junk))
    if draw(pick):
        data["training"] = draw(st.one_of(settings_table(Training), junk))
    techniques = draw(st.one_of(techniques_table(), techniques_table(), junk))
    if draw(pick):
        data["techniques"] = techniques
    labels = list(techniques) if isinstance(techniques, dict) else []
    if draw(pick):
        data["design"] = draw(st.one_of(design_table(labels), design_table(labels), junk))
    if draw(st.integers(0, 9)) == 0:
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
    option = st.one_of(
        st.tuples(st.sampled_from(["--seeds", "--epochs", "--train-subset", "--pack-size"]),
                  number.map(str)),
        st.tuples(st.sampled_from(["--data-dir"]), text),
        st.tuples(st.sampled_from(["--retry-failed", "--nondeterministic", "--quiet",
                                   "--dry-run"])),
        st.tuples(st.sampled_from(["--seeds", "--epochs", "--bogus", "-x", "--", "extra"])),
    )
    return st.lists(option, max_size=4).map(lambda opts: [a for o in opts for a in o])


# --- the property -------------------------------------------------------------------------

def tree(folder: Path) -> dict:
    """Every path under `folder` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def check_cli(argv: list[str], work: Path, case: str) -> tuple[int, str, str]:
    """Run `regbench ARGV` in-process in `work`; assert a plan or one line of error."""
    CASES[case] = CASES.get(case, 0) + 1
    before = tree(work)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(work)  # the default store (results/NAME.jsonl) is relative
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exit_:  # argparse
                code = exit_.code
    finally:
        os.chdir(cwd)
    stdout, stderr = out.getvalue(), err.getvalue()
    assert code in (0, 2), (argv, code, stderr)
    if code == 0:
        lines = stdout.splitlines()
        total = TOTAL_LINE.match(lines[-1])
        assert total and int(total[1]) == len(lines) - 1 >= 1, stdout
        assert all(PLAN_LINE.match(line) for line in lines[:-1]), stdout
        assert stderr == ""
    else:
        assert stdout == ""
        assert stderr.startswith("regbench: error: ") and stderr.count("\n") == 1, stderr
        assert "Traceback" not in stderr
    assert tree(work) == before, "a dry run or a refused run changed files"
    return code, stdout, stderr


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "results").mkdir()
    (folder / "results" / "stored.jsonl").write_text(json.dumps(
        {"key": "0123456789abcdef", "status": "ok", "problem": "mnist_mlp", "arm": "none"}) + "\n")
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


STORES = st.sampled_from([None, "results/stored.jsonl", "results/missing.jsonl",
                          "nowhere/s.jsonl", "study.toml"])


@settings(FUZZ, max_examples=250)
@given(data=study_data(), store=STORES)
def test_generated_study_files_give_a_plan_or_one_line_of_error(work, data, store):
    path = write(work, "study.toml", toml_document(data))
    argv = ["run", str(path), "--dry-run"] + (["--store", store] if store else [])
    code, _, stderr = check_cli(argv, work, "study files")
    if code == 2:  # the message says where: the file, or the flag
        assert str(path) in stderr or "--store" in stderr


@settings(FUZZ, max_examples=200)
@given(source=broken_text())
def test_broken_toml_gives_a_plan_or_one_line_of_error(work, source):
    path = write(work, "broken.toml", source)
    check_cli(["run", str(path), "--dry-run"], work, "broken TOML")


@settings(FUZZ, max_examples=50)
@given(raw=st.binary(max_size=64))
def test_random_bytes_give_one_line_of_error(work, raw):
    path = write(work, "bytes.toml", raw)
    check_cli(["run", str(path), "--dry-run"], work, "random bytes")


SMOKE = (REPO / "ablations" / "smoke.toml").read_text()


@settings(FUZZ, max_examples=200)
@given(args=run_args(), study=st.sampled_from(["smoke.toml", "missing.toml", "folder"]))
def test_generated_command_lines_give_a_plan_or_one_line_of_error(work, args, study):
    write(work, "smoke.toml", SMOKE)
    (work / "folder").mkdir(exist_ok=True)
    argv = ["run", study, *args]
    if "--dry-run" not in argv:
        argv.append("--dry-run")  # whatever else the line says, train nothing here
    check_cli(argv, work, "command lines")


@settings(FUZZ, max_examples=60)
@given(argv=st.lists(st.one_of(st.sampled_from(["run", "show", "list", "--store", "-q",
                                                "smoke.toml", "--dry-run"]), text),
                     max_size=3))
def test_any_first_words_give_one_line_of_error_or_a_listing(work, argv):
    """Sub-commands and their arguments in any order (never training: no `run` without
    --dry-run reaches the training loop, since no study file has data here)."""
    write(work, "smoke.toml", SMOKE)
    if argv[:1] == ["run"] and "--dry-run" not in argv:
        argv = [*argv, "--dry-run"]
    if argv[:1] == ["list"] and len(argv) == 1:
        CASES["first words"] = CASES.get("first words", 0) + 1
        return  # `list` prints the registry, not a plan
    if "-h" in argv or "--help" in argv:
        return
    # A folder where a file is expected has its own test below.
    assume(not any(a in ("", ".", "..") or (work / a).is_dir() for a in argv[1:]))
    before = tree(work)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exit_:
                code = exit_.code
    finally:
        os.chdir(cwd)
    CASES["first words"] = CASES.get("first words", 0) + 1
    stderr = err.getvalue()
    assert code in (0, 2), (argv, code, stderr)
    if code == 2:
        assert stderr.startswith("regbench: error: ") and stderr.count("\n") == 1, stderr
    assert tree(work) == before


# --- inputs that once slipped through ---------------------------------------------------

@pytest.mark.parametrize("store", [".", ""])
def test_a_folder_as_store_is_one_line_of_error(work, store):
    write(work, "smoke.toml", SMOKE)
    check_cli(["run", "smoke.toml", "--dry-run", "--store", store], work, "known gaps")


@pytest.mark.parametrize("command", ["run", "show"])
def test_a_foreign_line_in_the_store_is_not_a_traceback(work, command):
    write(work, "smoke.toml", SMOKE)
    write(work, "foreign.jsonl", '{"note": "not a result"}\n')
    store = str(work / "foreign.jsonl")
    argv = (["run", str(work / "smoke.toml"), "--dry-run", "--store", store]
            if command == "run" else ["show", store])
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(argv) in (0, 2)


def test_a_seed_numpy_cannot_take_is_refused_when_the_study_is_read(work):
    path = write(work, "seeds.toml", SMOKE.replace("seeds = 2", "seeds = [0, 4294967296]"))
    code, _, stderr = check_cli(["run", str(path), "--dry-run"], work, "known gaps")
    assert code == 2 and "seeds" in stderr


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
        lines = result.stdout.splitlines()
        assert lines[-1] == f"{len(lines) - 1} cells, {len(lines) - 1} to train, store " \
                            "results/smoke.jsonl"
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
