"""Hostile stores and paths: one store under several names, lines that are not regbench rows,
paths the OS refuses, special files, a file-size limit, and the study file given as its store.

Every refusal is one line `regbench: error: ...`, exit status 2, before anything is read,
trained or created. Runs go through `regbench.cli.main` in-process where nothing could hang
or train, and through a real `regbench` process where it could.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from report_rows import row, tutorial_rows

from regbench import cli, store
from regbench.study import load_study

TINY = """\
name = "tiny"
datasets = ["mnist"]
seeds = 1

[model]
name = "mlp"
hidden = [8]

[training]
epochs = 1
train_subset = 200

[techniques.l2]
factor = 0.001

[techniques.dropout]
rate = 0.2

[design]
kind = "one_at_a_time"
"""
ARMS = ("none", "l2", "dropout")


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A folder holding tiny.toml (3 cells), the working directory of each run. A run that
    got past its checks would find no dataset and never reach the network."""
    (tmp_path / "tiny.toml").write_text(TINY)
    empty = tmp_path.parent / f"{tmp_path.name}-no-data"
    empty.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REGBENCH_DATA_DIR", str(empty))
    monkeypatch.setenv("REGBENCH_CACHE_DIR", "/nonexistent/regbench-test-cache")
    monkeypatch.setenv("REGBENCH_DOWNLOAD_URL", "http://127.0.0.1:9/")
    return tmp_path


def regbench(*args) -> tuple[int, str, str]:
    """`regbench ARGS` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def refused(result, *words) -> str:
    """Assert one line of error with `words` in it, exit status 2 and no output."""
    code, out, err = result
    assert (code, out) == (2, ""), result
    assert err.startswith("regbench: error: ") and err.count("\n") == 1, err
    assert all(word in err for word in words), (words, err)
    return err


def tree(folder: Path) -> dict:
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in folder.rglob("*")}


def _tiny_cells() -> list:
    """The cells of tiny.toml in the working directory: none, l2, dropout."""
    return load_study("tiny.toml").cells()


def stored(cell, **values) -> dict:
    """A whole regbench row for `cell`, as the report tests build them."""
    return row(cell.arm.label, cell.seed, study="tiny", **values) | {"key": cell.key}


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def as_line(data: dict) -> bytes:
    return json.dumps(data).encode()


def said(stderr: str) -> list[str]:
    """regbench's own lines of a real process's stderr (TensorFlow may log there too)."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("regbench")]


def warning(path, lines: int) -> str:
    what = ("1 line that is not a regbench row" if lines == 1
            else f"{lines} lines that are not regbench rows")
    return f"regbench: warning: {path}: skipped {what}\n"


# --- one store under several names: one set of claims --------------------------------------

def _symlink(folder: Path) -> tuple[str, str]:
    (folder / "link.jsonl").symlink_to("s.jsonl")
    return "s.jsonl", "link.jsonl"


def _hard_link(folder: Path) -> tuple[str, str]:
    (folder / "s.jsonl").touch()
    os.link(folder / "s.jsonl", folder / "link.jsonl")
    return "s.jsonl", "link.jsonl"


ALIASES = {
    "symbolic link": _symlink,
    "./ and plain": lambda folder: ("s.jsonl", "./s.jsonl"),
    "relative and absolute": lambda folder: ("s.jsonl", str(folder / "s.jsonl")),
    "through ..": lambda folder: ((folder / "sub").mkdir() or "s.jsonl", "sub/../s.jsonl"),
    "hard link": _hard_link,
}


@pytest.mark.parametrize("alias", ALIASES)
def test_one_file_under_two_names_has_one_claim_per_cell(work, alias):
    (work / "s.jsonl").touch()
    first, second = ALIASES[alias](work)
    before = sorted(p.name for p in work.iterdir())
    with store.claim(first, "cc9e939faeada831") as mine:
        with store.claim(second, "cc9e939faeada831") as theirs, \
                store.claim(second, "8863b1ed1c1c3740") as other:
            assert mine and not theirs and other
    with store.claim(second, "cc9e939faeada831") as again:
        assert again  # free once its holder is done
    assert sorted(p.name for p in work.iterdir()) == before  # no claim files beside it


def test_a_claim_on_a_missing_store_leaves_an_empty_store_and_nothing_else(work):
    with store.claim("results/s.jsonl", "k") as mine:
        assert mine
    assert [p.name for p in (work / "results").iterdir()] == ["s.jsonl"]
    assert (work / "results" / "s.jsonl").read_bytes() == b""
    store.remove_if_empty("results/s.jsonl")
    assert not (work / "results" / "s.jsonl").exists()


def test_an_empty_store_that_a_runner_has_open_is_not_removed(work):
    with store.claim("s.jsonl", "k"):
        store.remove_if_empty("s.jsonl")
        assert (work / "s.jsonl").exists()
    with store.claim("s.jsonl", "k") as mine:  # a claim through a removed file is refused
        assert mine


HOLDER = """
import sys, time
from regbench import store
with store.claim(sys.argv[1], "cc9e939faeada831") as mine:
    print(mine, flush=True)
    time.sleep(600)
"""


@pytest.mark.slow  # starts a process
def test_a_killed_holders_claim_is_free_at_once(work):
    (work / "link.jsonl").symlink_to("s.jsonl")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "link.jsonl"], cwd=work,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "True\n"
        with store.claim(work / "s.jsonl", "cc9e939faeada831") as mine:
            assert not mine
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with store.claim(work / "s.jsonl", "cc9e939faeada831") as mine:
        assert mine


RUNNER_ALIASES = {"symbolic link": _symlink, "./ and plain": ALIASES["./ and plain"],
                  "hard link": _hard_link}


@pytest.mark.slow  # two real runners train 6 cells side by side
@pytest.mark.parametrize("alias", RUNNER_ALIASES)
def test_two_runners_on_one_store_under_two_names_train_each_cell_once(
        tmp_path, alias, data_dir, start_cli):
    study = tmp_path / "tiny.toml"
    study.write_text(TINY.replace("seeds = 1", "seeds = 2"))
    (tmp_path / "s.jsonl").touch()
    names = RUNNER_ALIASES[alias](tmp_path)
    runners = [start_cli("run", study, "--store", name, "--pack-size", "1", "--quiet",
                         cwd=tmp_path, data_dir=data_dir, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True) for name in names]
    for runner in runners:
        _, err = runner.communicate(timeout=600)
        assert runner.returncode == 0, err
    keys = [json.loads(line)["key"] for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert collections.Counter(keys) == {cell.key: 1 for cell in load_study(study).cells()}


# --- lines that are not regbench rows --------------------------------------------------------

def _foreign(work: Path) -> dict[str, bytes]:
    """Each kind of line a store may hold that regbench did not write, built on a whole row
    of the study's `l2` cell."""
    l2 = stored(_tiny_cells()[1])
    without = {name: {k: v for k, v in l2.items() if k != name} for name in ("problem", "arm")}
    return {
        "a key that is a list": b'{"key": [1, 2]}',
        "a key and nothing else": b'{"key": "k"}',
        "a row without problem": as_line(without["problem"]),
        "a row without arm": as_line(without["arm"]),
        "a 5000-digit number": b'{"key": "0123456789abcdef", "n": ' + b"9" * 5000 + b"}",
        "a key that is NaN": b'{"key": NaN, "problem": "p", "arm": "a", "seed": 0}',
        "text": b"not a row",
        "a JSON list": b"[1, 2, 3]",
        "JSON nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
        "bytes that are not UTF-8": b'{"key": "\xff\xfe"}',
        "a metric as text": as_line(l2 | {"test_acc": "high"}),
        "a seed as text": as_line(l2 | {"seed": "0"}),
        "a status that is a number": as_line(l2 | {"status": 1}),
        "a budget setting as a list": as_line(l2 | {"epochs": [1]}),
        "a history of text": as_line(l2 | {"history": {"val_acc": "x"}}),
        "a layer as text": as_line(l2 | {"layers": {"hidden_0": "x"}}),
    }


FOREIGN_KINDS = ("a key that is a list", "a key and nothing else", "a row without problem",
                 "a row without arm", "a 5000-digit number", "a key that is NaN", "text",
                 "a JSON list", "JSON nested 100,000 deep", "bytes that are not UTF-8",
                 "a metric as text", "a seed as text", "a status that is a number",
                 "a budget setting as a list", "a history of text", "a layer as text")


def test_every_kind_of_foreign_line_is_listed(work):
    assert tuple(_foreign(work)) == FOREIGN_KINDS


@pytest.mark.parametrize("kind", FOREIGN_KINDS)
def test_a_foreign_line_is_skipped_counted_and_warned_about_once(work, kind):
    none, l2, dropout = _tiny_cells()
    path = write_lines(work / "s.jsonl", [as_line(stored(none)), _foreign(work)[kind],
                                          as_line(stored(dropout))])
    assert [r["key"] for r in store.read_rows(path)] == [none.key, dropout.key]
    assert store.scan(path)[1] == 1

    code, out, err = regbench("run", "tiny.toml", "--store", "s.jsonl", "--dry-run")
    assert (code, err) == (0, warning("s.jsonl", 1))
    assert [line.split()[:2] for line in out.splitlines()[:-1]] == [
        [none.key, "done"], [l2.key, "todo"], [dropout.key, "done"]]
    assert out.splitlines()[-1] == "3 cells, 1 to train, store s.jsonl"

    code, out, err = regbench("show", "s.jsonl")
    assert (code, err) == (0, warning("s.jsonl", 1))
    lines = out.splitlines()
    assert lines[0] == "mnist_mlp:"
    assert [line.split()[0] for line in lines[3:]] == ["none", "dropout"]


def test_a_killed_writers_partial_line_is_not_counted(work):
    none = _tiny_cells()[0]
    whole = as_line(stored(none))
    path = work / "s.jsonl"
    path.write_bytes(b"[1]\n" + whole + b"\n" + whole[:100])
    assert store.scan(path) == ([stored(none)], 1)
    store.append(path, stored(none))  # cuts the partial line, keeps the foreign one
    assert path.read_bytes() == (b"[1]\n" + whole + b"\n"
                                 + json.dumps(stored(none), separators=(",", ":")).encode()
                                 + b"\n")


def test_a_foreign_last_line_without_its_newline_is_kept_by_the_next_append(work):
    path = work / "s.jsonl"
    path.write_bytes(b'{"note": "a line of another tool"}')
    store.append(path, stored(_tiny_cells()[0]))
    assert path.read_bytes().startswith(b'{"note": "a line of another tool"}\n{')
    assert store.scan(path)[1] == 1


@pytest.mark.slow  # writes two reports with their figures
def test_report_and_claims_skip_every_kind_of_foreign_line(work):
    foreign = list(_foreign(work).values())
    rows = [as_line(row(arm, seed, study="tiny")) for seed in range(3) for arm in ARMS]
    write_lines(work / "s.jsonl", [line for pair in zip(rows, foreign) for line in pair]
                + foreign[len(rows):])
    code, out, err = regbench("report", "s.jsonl", "--out", "report")
    assert (code, err) == (0, warning("s.jsonl", len(foreign))), err
    assert (work / "report" / "README.md").is_file()

    tutorial = [as_line(r) for r in tutorial_rows(seeds=range(3))]
    write_lines(work / "tutorial.jsonl", foreign + tutorial)
    code, out, err = regbench("claims", "tutorial.jsonl", "--out", "claims")
    assert (code, err) == (0, warning("tutorial.jsonl", len(foreign))), err
    assert (work / "claims" / "claims.json").is_file()


@pytest.mark.slow  # trains the study's 3 cells
def test_a_run_on_a_store_of_foreign_lines_trains_and_summarizes(tmp_path, data_dir,
                                                                 regbench_cli):
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    with contextlib.chdir(tmp_path):
        foreign = list(_foreign(tmp_path).values())
    path = write_lines(tmp_path / "s.jsonl", foreign)
    result = regbench_cli("run", study, "--store", path, "--quiet", cwd=tmp_path,
                          data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert said(result.stderr) == [warning(path, len(foreign)).rstrip("\n")]
    assert [line.split()[0] for line in result.stdout.splitlines()[3:-1]] == list(ARMS)
    lines = path.read_bytes().split(b"\n")
    assert lines[:len(foreign)] == foreign  # left as they were
    assert [r["arm"] for r in store.read_rows(path)] == list(ARMS)


# --- paths the OS refuses: one line, before anything starts --------------------------------

def _parent_is_a_file(folder: Path) -> str:
    (folder / "file.txt").write_text("x")
    return "file.txt/s.jsonl"


def _symlink_loop(folder: Path) -> str:
    (folder / "loop.jsonl").symlink_to("loop.jsonl")
    return "loop.jsonl"


STORE_PATHS = {  # name -> (make the path, words of the error)
    "a folder on the way is a file": (_parent_is_a_file, ("file.txt is a file",)),
    "a symbolic link loop": (_symlink_loop, ("Too many levels of symbolic links",)),
    "a 300-character name": (lambda folder: "x" * 294 + ".jsonl", ("File name too long",)),
    "/proc/self/mem": (lambda folder: "/proc/self/mem", ("a file of procfs",)),
    "a new file under /proc": (lambda folder: "/proc/x/s.jsonl", ("/proc is on procfs",)),
    "/dev/null": (lambda folder: "/dev/null", ("/dev/null is a character device",)),
}


@pytest.mark.parametrize("case", STORE_PATHS)
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_store_path_that_cannot_hold_rows_is_refused_before_anything(work, case, dry_run):
    make, words = STORE_PATHS[case]
    path = make(work)
    before = tree(work)
    flags = ["--dry-run"] if dry_run else ["--quiet"]
    refused(regbench("run", "tiny.toml", "--store", path, *flags), "--store: ", *words)
    assert tree(work) == before
    assert not os.path.lexists("/dev/null.claims")


@pytest.mark.parametrize("case", STORE_PATHS)
def test_show_and_report_of_a_path_that_cannot_hold_rows_are_one_line(work, case):
    path = STORE_PATHS[case][0](work)
    before = tree(work)
    refused(regbench("show", path), path)
    refused(regbench("report", path, "--out", "out"), path)
    refused(regbench("claims", path, "--out", "out"), path)
    assert tree(work) == before


@pytest.mark.parametrize("out, words", [
    ("file.txt", ("--out: file.txt is a file; expected a folder",)),
    ("file.txt/report", ("file.txt is a file, not a folder",)),
    ("/proc/x", ("/proc is on procfs",)),
    ("/proc/self", ("/proc/self is on procfs",)),
    ("y" * 300, ("File name too long",)),
])
@pytest.mark.parametrize("command", ["report", "claims"])
def test_a_report_folder_that_cannot_be_written_is_refused_before_anything(
        work, out, words, command):
    write_lines(work / "s.jsonl", [as_line(r) for r in tutorial_rows(seeds=range(2))])
    (work / "file.txt").write_text("x")
    before = tree(work)
    refused(regbench(command, "s.jsonl", "--out", out), *words)
    assert tree(work) == before


def test_a_ten_thousand_character_study_name_is_refused_where_the_study_is_read(work):
    (work / "long.toml").write_text(TINY.replace('"tiny"', '"' + "a" * 10_000 + '"'))
    before = tree(work)
    for args in (["run", "long.toml", "--dry-run"], ["run", "long.toml"],
                 ["show", "long.toml"]):
        err = refused(regbench(*args), "long.toml: name: at most 200 bytes, got 10000")
        assert len(err) < 200
    assert tree(work) == before


# --- special files as study or store: refused, never read ---------------------------------

def test_a_study_file_over_a_mebibyte_is_refused_unread(work):
    (work / "big.toml").write_text(TINY + ("# padding\n" * 110_000))
    refused(regbench("run", "big.toml", "--dry-run"),
            "big.toml: 1100", "bytes; a study file is at most 1048576 bytes")


def _limited():
    """A child that cannot eat the machine if it reads an endless file."""
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


SPECIAL = {  # name -> (command line, words of the error)
    "/dev/zero as study": (["run", "/dev/zero", "--dry-run"],
                           ("/dev/zero: a character device, not a study file",)),
    "a FIFO as study": (["run", "fifo", "--dry-run"], ("fifo: a FIFO (named pipe)",)),
    "a FIFO as the study to show": (["show", "fifo.toml"], ("fifo.toml: a FIFO",)),
    "/dev/zero as store": (["run", "tiny.toml", "--dry-run", "--store", "/dev/zero"],
                           ("--store: /dev/zero is a character device",)),
    "/dev/full as store": (["run", "tiny.toml", "--store", "/dev/full"],
                           ("--store: /dev/full is a character device",)),
    "a FIFO as store": (["run", "tiny.toml", "--dry-run", "--store", "fifo"],
                        ("--store: fifo is a FIFO (named pipe), not a results .jsonl file",)),
    "/dev/zero to show": (["show", "/dev/zero"], ("/dev/zero is a character device",)),
    "a FIFO to show": (["show", "fifo"], ("fifo is a FIFO",)),
    "a FIFO to report": (["report", "fifo", "--out", "out"], ("fifo is a FIFO",)),
}


@pytest.mark.slow  # a real process each, which must neither block nor read without end
@pytest.mark.parametrize("case", SPECIAL)
def test_a_special_file_as_study_or_store_is_refused_unread(tmp_path, case, regbench_cli):
    (tmp_path / "tiny.toml").write_text(TINY)
    os.mkfifo(tmp_path / "fifo")
    os.mkfifo(tmp_path / "fifo.toml")
    argv, words = SPECIAL[case]
    before = tree(tmp_path)
    try:
        result = regbench_cli(*argv, cwd=tmp_path, timeout=60, preexec_fn=_limited)
    except subprocess.TimeoutExpired:
        pytest.fail(f"regbench {' '.join(argv)} blocked")
    refused((result.returncode, result.stdout, result.stderr), *words)
    assert tree(tmp_path) == before


# --- a full disk or a file-size limit: one line, the rows before it intact -----------------

@pytest.mark.slow  # trains in a real process under a file-size limit
@pytest.mark.parametrize("room", [100, 4500])  # bytes: no row fits, or one row fits
def test_a_file_size_limit_stops_the_run_with_what_is_stored(tmp_path, data_dir,
                                                              regbench_cli, room):
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    with contextlib.chdir(tmp_path):
        first = _tiny_cells()[0]
    path = write_lines(tmp_path / "s.jsonl", [as_line(stored(first))])
    before = path.read_bytes()
    limit = len(before) + room

    def limited():  # SIGXFSZ stays ignored, as Python sets it: a write past it fails EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = regbench_cli("run", study, "--store", path, "--quiet", "--pack-size", "1",
                          cwd=tmp_path, data_dir=data_dir, preexec_fn=limited)
    rows = store.read_rows(path)
    assert result.returncode == 2, result.stderr
    assert said(result.stderr) == [f"regbench: error: cannot write {path} (File too large); "
                                   f"{len(rows)} of 3 cells are stored, rerun to resume"]
    data = path.read_bytes()
    assert data.startswith(before) and data.endswith(b"\n")  # no partial row
    assert len(data.splitlines()) == len(rows) == (1 if room < 1000 else 2)


# --- the study file as its store ------------------------------------------------------------

STUDY_ALIASES = {
    "itself": lambda folder: "tiny.toml",
    "./": lambda folder: "./tiny.toml",
    "a symbolic link": lambda folder: (folder / "link.jsonl").symlink_to("tiny.toml")
    or "link.jsonl",
    "a hard link": lambda folder: os.link(folder / "tiny.toml", folder / "hard.jsonl")
    or "hard.jsonl",
}


@pytest.mark.parametrize("alias", STUDY_ALIASES)
@pytest.mark.parametrize("dry_run", [True, False])
def test_the_study_file_as_its_store_is_refused_and_never_written(work, alias, dry_run):
    path = STUDY_ALIASES[alias](work)
    before = tree(work)
    flags = ["--dry-run"] if dry_run else ["--quiet"]
    refused(regbench("run", "tiny.toml", "--store", path, *flags),
            f"--store: {Path(path)} is the study file tiny.toml")
    assert tree(work) == before
    assert (work / "tiny.toml").read_text() == TINY


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize("prefix", ["", "ABSOLUTE"])
def test_a_path_through_a_folder_not_made_yet_is_refused_and_makes_nothing(work, dry_run,
                                                                          prefix):
    """`new/../tiny.toml` names the study file once `new` exists: making the folder first
    and then appending to the path wrote rows into the study file."""
    path = f"{work}/new/../tiny.toml" if prefix else "new/../tiny.toml"
    before = tree(work)
    flags = ["--dry-run"] if dry_run else ["--quiet"]
    refused(regbench("run", "tiny.toml", "--store", path, *flags),
            f"--store: cannot create {path}: '..' after a folder that does not exist yet")
    assert tree(work) == before
    assert (work / "tiny.toml").read_text() == TINY


def test_a_new_store_path_is_accepted(work):
    code, out, err = regbench("run", "tiny.toml", "--store", "new/folder/s.jsonl",
                              "--dry-run")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "3 cells, 3 to train, store new/folder/s.jsonl"
    assert not (work / "new").exists()


@pytest.mark.parametrize("study", ["../victim", "/tmp/victim", "..", "a/b"])
def test_a_report_never_lands_outside_reports_by_the_rows_study_name(work, study):
    """`report s.jsonl` writes reports/<study>/ from the rows' study name: a name that is a
    path would write over another folder's README.md."""
    (work / "victim").mkdir()
    (work / "victim" / "README.md").write_text("mine")
    store.append(work / "s.jsonl", row("none", 0, study=study))
    before = tree(work)
    refused(regbench("report", "s.jsonl"), "the rows' study name (it names reports/<study>/)")
    assert tree(work) == before and (work / "victim" / "README.md").read_text() == "mine"


@pytest.mark.parametrize("command", [["show"], ["run", "tiny.toml", "--dry-run", "--store"],
                                     ["report"]])
def test_a_store_larger_than_any_store_of_rows_is_refused_not_read(work, command):
    """Read whole, an 8 GiB (sparse) file was a MemoryError traceback."""
    with open(work / "s.jsonl", "wb") as f:
        f.truncate(8 * 2**30)
    refused(regbench(*command, "s.jsonl"), "s.jsonl holds 8.0 GiB, more than any store")


@pytest.mark.parametrize("command", ["bench-report", "bench-compare"])
@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "sparse"])
def test_bench_json_that_is_not_a_file_of_json_is_refused_not_read(work, command, special):
    """A FIFO blocked forever; /dev/zero and a 3 GiB sparse file were MemoryError tracebacks."""
    if special == "fifo":
        os.mkfifo(work / "b.json")
        path = "b.json"
    elif special == "sparse":
        with open(work / "b.json", "wb") as f:
            f.truncate(3 * 2**30)
        path = "b.json"
    else:
        path = special
    args = [path, path] if command == "bench-compare" else [path, "--out", "out"]
    refused(regbench(command, *args), path)
    assert not (work / "out").exists()


@pytest.mark.parametrize("command", [["report", "s.jsonl"], ["claims", "s.jsonl"]])
def test_an_empty_out_is_refused_not_read_as_this_folder(work, command):
    store.append(work / "s.jsonl", row("none", 0, study="tiny"))
    before = tree(work)
    refused(regbench(*command, "--out", ""), "--out: an empty path")
    assert tree(work) == before


def test_a_store_of_foreign_lines_only_is_one_line_for_report(work):
    (work / "s.jsonl").write_text('{"key": [1, 2]}\nnot json\n')
    refused(regbench("report", "s.jsonl"), "s.jsonl: no result rows (2 lines that are not "
                                           "regbench rows)")


@pytest.mark.parametrize("command", ["report", "claims"])
def test_rows_without_their_metrics_are_one_line_for_report_and_claims(work, command):
    store.append(work / "s.jsonl", {"key": "k1", "problem": "p", "arm": "none", "seed": 0,
                                    "status": "ok"})
    refused(regbench(command, "s.jsonl", "--out", "out"), "its finished rows lack `study`")
    assert not (work / "out").exists()


def test_bench_grid_refuses_an_out_it_cannot_write_before_any_training(work):
    (work / "afile").write_text("")
    refused(regbench("bench-grid", "--only", "smoke", "--out", "afile/grid"), "--out:",
            "afile")


@pytest.mark.parametrize("change", [{"test_acc": float("inf")}, {"test_acc": 1e308},
                                    {"layers": {"dense": {"w": [1, "a"]}}}])
def test_odd_values_in_real_rows_give_a_report_and_nothing_on_stderr(work, change):
    rows = [row(arm, seed, study="tiny") for seed in range(2) for arm in ("none", "l2")]
    rows[1] |= change
    for r in rows:
        store.append(work / "s.jsonl", r)
    import warnings
    with warnings.catch_warnings(record=True) as caught:  # a user's terminal would show them
        warnings.simplefilter("always")
        code, out, err = regbench("report", "s.jsonl", "--out", "out")
    assert (code, err) == (0, ""), err
    assert [str(w.message) for w in caught if w.category is RuntimeWarning] == []
    assert (work / "out" / "README.md").is_file()
