"""`regbench` under a hostile runtime: bad data files, failures of the machine, signals, and
benchmark JSON of the wrong shape. Real MNIST, real `regbench` processes, no mocks.

- Data with the right bytes in the wrong shape (or dtype, or cut short, or one label changed)
  stops `regbench run` with one line naming the file and the array, before any folder is made,
  TensorFlow is imported or progress is printed: the working folder is left as it was.
- A failure of the machine while training (a full disk, a module that cannot be imported) stops
  the run instead of storing the cell as `failed` (which every rerun would skip); a failure of
  the cell (out of memory) is still stored. A data error in a worker process reaches the
  driver as the same kind of error.
- SIGINT and SIGTERM at several moments (start-up, imports, TensorFlow's import, training,
  worker processes): exit 130 or 143 with one clean line and no traceback, every process gone,
  and a rerun completes the study to the rows of an uninterrupted run.
- `bench-report` and `bench-compare` refuse JSON of the wrong shape in one line naming the file,
  and `bench-grid --only` refuses an empty or unknown name before anything starts.

Figures are printed (`pytest -s`): `hostile figure: ...`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from processes import children, running

from regbench import cli, data, store

slow = pytest.mark.slow

STUDY = """\
name = "hostile"
datasets = ["mnist"]
seeds = 1

[model]
hidden = [8]

[training]
epochs = 1
train_subset = 200

[techniques.l2]
factor = 0.001

[design]
arms = ["none", "l2"]
"""
VOLATILE = {"finished_at", "fit_s", "first_epoch_s", "epoch_s", "examples_per_s", "git_commit",
            "cost_step_s", "cost_epoch_s",
            "host", "load_average_1min", "workers"}
CLEAN = {signal.SIGINT: "regbench: interrupted; finished cells are stored, rerun to resume",
         signal.SIGTERM: "regbench: terminated (SIGTERM); finished cells are stored, rerun to "
                         "resume"}


def figure(name: str, value) -> None:
    print(f"hostile figure: {name} = {value}")


def regbench_command() -> list[str]:
    """The `regbench` console script a user runs (its start-up is part of what is tested)."""
    script = Path(sys.executable).with_name("regbench")
    found = str(script) if script.is_file() else shutil.which("regbench")
    if not found:
        pytest.skip("the regbench console script is not installed (pip install -e .)")
    return [found]


def default_signals() -> None:
    """A run started as a user starts it: with Ctrl-C's default action. A test suite started
    in the background (`nohup ... &`) passes SIGINT on ignored, and regbench keeps a signal
    its caller ignores."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def env() -> dict:
    """A user's environment: never the user's cache or the network."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("REGBENCH_")}
    out.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command line must quiet TensorFlow itself
    out.update(CI="1", PYTHONHASHSEED="0", REGBENCH_CACHE_DIR="/nonexistent/regbench-cache",
               REGBENCH_DOWNLOAD_URL="http://127.0.0.1:9/")
    return out


def run(*args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*regbench_command(), *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def comparable(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k not in VOLATILE}
    if isinstance(out.get("history"), dict):
        out["history"] = {k: v for k, v in out["history"].items() if k != "epoch_s"}
    return out


def stored(path: Path) -> dict:
    """Key -> row of a store that must hold each cell at most once."""
    rows = store.read_rows(path)
    keys = [row["key"] for row in rows]
    assert len(set(keys)) == len(keys), f"a cell stored twice: {keys}"
    return {row["key"]: row for row in rows}


def assert_matches(path: Path, reference: dict, complete: bool) -> dict:
    rows = stored(path)
    assert set(rows) <= set(reference), "rows of cells the study does not have"
    if complete:
        assert set(rows) == set(reference), f"missing {sorted(set(reference) - set(rows))}"
    for key, row in rows.items():
        assert comparable(row) == comparable(reference[key]), f"cell {key} differs"
    return rows


def tree(folder: Path) -> dict:
    """Every file and folder under `folder` (hidden ones too) with its size and mtime."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            info = path.lstat()
            out[str(path.relative_to(folder))] = (info.st_size, info.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def mnist(data_dir) -> dict:
    """The real MNIST arrays, as stored (Keras layout)."""
    with np.load(data_dir / "mnist.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def work(tmp_path_factory, data_dir) -> Path:
    """A folder with the study and `data/mnist.npz` (a link to the real file)."""
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "study.toml").write_text(STUDY)
    (folder / "data").mkdir()
    (folder / "data" / "mnist.npz").symlink_to(data_dir / "mnist.npz")
    return folder


def altered(folder: Path, arrays: dict, **changes) -> Path:
    """`folder`/mnist.npz: the real arrays with `changes` (name -> new array)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "mnist.npz", **{**arrays, **changes})
    return folder / "mnist.npz"


# --- data of the right bytes in the wrong shape ----------------------------------------------

def test_data_of_the_right_bytes_in_the_wrong_shape_fails_its_check(mnist, tmp_path):
    """Reshaped arrays hash the same; their shape is checked as well (dtype was already)."""
    x, y = mnist["x_train"], mnist["y_train"]
    cases = {"x_train": x.reshape(30000, 1568), "y_train": y.reshape(-1, 1)}
    expected = {"x_train": "(60000, 28, 28)", "y_train": "(60000,)"}
    for key, arr in cases.items():
        path = altered(tmp_path / key, mnist, **{key: arr})
        with pytest.raises(data.DataError) as error:
            data.load("mnist", data_dir=path.parent, download=False)
        assert str(error.value) == (
            f"mnist: {path.resolve()}: {key} has shape {arr.shape}, expected {expected[key]}; "
            "the file is not in the Keras layout")
    # The layout the model sees (a channel axis of 1) is the same data and stays accepted.
    path = altered(tmp_path / "channels", mnist, x_train=x[..., None], x_test=mnist["x_test"])
    assert data.load("mnist", data_dir=path.parent, download=False).x_train.shape == (
        60000, 28, 28, 1)


def _bad_file(kind: str, mnist: dict, folder: Path) -> tuple[Path, str]:
    """A bad mnist.npz and what its error line says after the file name."""
    if kind == "reshaped":
        path = altered(folder, mnist, x_train=mnist["x_train"].reshape(30000, 1568))
        return path, ("x_train has shape (30000, 1568), expected (60000, 28, 28); the file is "
                      "not in the Keras layout")
    if kind == "dtype":
        path = altered(folder, mnist, x_test=mnist["x_test"].astype(np.int16))
        return path, "x_test has dtype int16, expected uint8"
    if kind == "label":
        y = mnist["y_test"].copy()
        y[0] = (y[0] + 1) % 10
        path = altered(folder, mnist, y_test=y)
        return path, "y_test fails its checksum"
    path = altered(folder, mnist)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])  # a copy cut short
    return path, "is unreadable"


@slow
@pytest.mark.parametrize(("kind", "options"), [
    ("reshaped", []), ("reshaped", ["--workers", "2"]), ("dtype", []), ("label", []),
    ("truncated", [])])
def test_a_bad_data_file_stops_the_run_in_one_line_before_anything_is_written(
        mnist, tmp_path, kind, options):
    """Exit 2 with exactly one line on stderr (no header, no TensorFlow chatter) and the
    working folder unchanged: no results/, no store, no claims, so nothing is skipped later."""
    path, what = _bad_file(kind, mnist, tmp_path / "data")
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "study.toml").write_text(STUDY)
    before = tree(folder)
    result = run("run", "study.toml", "--data-dir", path.parent, *options, cwd=folder)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"regbench: error: mnist: {path.resolve()}"), lines[0]
    assert what in lines[0]
    assert tree(folder) == before


# --- failures of the machine, not of the cell ------------------------------------------------

FAULTS_DRIVER = r"""
import contextlib, json, sys
from regbench import engine, executors, store
from regbench.errors import RegbenchError
from regbench.progress import Progress
from regbench.study import load_study

study, data_dir, bad_dir, path = sys.argv[1:5]
cells = load_study(study).cells()
engine.configure(True)


def disk_full(*_):  # a progress log on a full disk
    with open("/dev/full", "w") as log:
        log.write("epoch done\n")


def missing_module(*_):
    import regbench_plugin_that_is_not_installed  # noqa: F401


def out_of_memory(*_):
    bytearray(1 << 62)


def outcome(call):
    try:
        return {"rows": [[row["status"], row.get("error")] for row in call()]}
    except RegbenchError as error:
        return {"raised": type(error).__name__, "message": str(error)}


out = {name: outcome(lambda: executors.train_pack(pack, data_dir, True, on_epoch=hook))
       for name, pack, hook in [("disk_full", cells, disk_full),
                                ("missing_module", cells[:1], missing_module),
                                ("out_of_memory", cells[:1], out_of_memory)]}
pool = executors.LocalPool(1, 1)  # a worker process reads a bad data file
with contextlib.closing(pool):
    out["worker"] = outcome(lambda: executors._drive(
        pool, [cells[:1], cells[1:]], path, executors.RunOptions(data_dir=bad_dir),
        Progress(len(cells), quiet=True)) or [])
out["stored"] = len(store.read_rows(path))
with contextlib.ExitStack() as claims:
    out["claims_free"] = all(claims.enter_context(store.claim(path, c.key)) for c in cells)
print(json.dumps(out))
"""


@slow
def test_failures_of_the_machine_stop_the_run_and_failures_of_the_cell_are_stored(
        work, mnist, tmp_path):
    bad, _ = _bad_file("reshaped", mnist, tmp_path / "bad")
    path = tmp_path / "faults.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", FAULTS_DRIVER, work / "study.toml", work / "data", bad.parent,
         path], cwd=tmp_path, env=env() | {"TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True,
        text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    # A full disk stops the whole pack: it is not split into cells stored as failed.
    assert out["disk_full"]["raised"] == "RegbenchError", out
    assert out["disk_full"]["message"].startswith(
        "training stopped by a system error (OSError: [Errno 28] No space left on device")
    assert "nothing is stored for the 2 cell(s) in training" in out["disk_full"]["message"]
    assert out["missing_module"]["message"].startswith(
        "training stopped by a missing module (ModuleNotFoundError: No module named "
        "'regbench_plugin_that_is_not_installed')"), out
    assert out["out_of_memory"] == {"rows": [["failed", "MemoryError: "]]}, out
    # A data error in a worker reaches the driver as a DataError naming the file and array.
    assert out["worker"]["raised"] == "DataError", out
    assert out["worker"]["message"].startswith(
        f"mnist: {bad.resolve()}: x_train has shape (30000, 1568)"), out
    assert out["stored"] == 0 and out["claims_free"]


def test_an_os_error_is_one_line_of_error(tmp_path, capsys):
    raw = tmp_path / "run.json"
    raw.write_text(json.dumps(_run()))
    assert cli.main(["bench-report", str(raw), "--out", "/dev/null/report"]) == 2
    err = capsys.readouterr().err
    assert err == ("regbench: error: NotADirectoryError: [Errno 20] Not a directory: "
                   "'/dev/null/report'\n")


# --- signals ------------------------------------------------------------------------------------

WRAPPED = """
import signal, sys
from regbench import interrupts

class Lands:  # the signal lands in a class body's __set_name__, as in numpy's import
    def __set_name__(self, owner, name):
        if sys.argv[1] == "signal":
            raise interrupts.Interrupted(signal.SIGTERM)
        raise ValueError("a bug of its own")

def command():
    class Finfo:
        eps = Lands()
    return 0

sys.exit(interrupts.console(command))
"""


@pytest.mark.parametrize("cause", ["signal", "bug"])
def test_a_signal_that_python_wraps_in_another_error_is_still_one_line(cause):
    """Python reports an exception raised in `__set_name__` as a RuntimeError caused by it: a
    signal that lands there is still the interrupt's one line and status; a bug there is not."""
    done = subprocess.run([sys.executable, "-c", WRAPPED, cause], env=env(),
                          capture_output=True, text=True, timeout=60)
    if cause == "signal":
        assert (done.returncode, done.stderr) == (143, CLEAN[signal.SIGTERM] + "\n")
    else:
        assert done.returncode == 1 and "ValueError: a bug of its own" in done.stderr


def _startup_s() -> float:
    """How long this interpreter takes to start and reach regbench's signal handlers (the
    editable install's import hook included): signals before that reach Python's own
    start-up, before any regbench code can handle them."""
    times = []
    for _ in range(3):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import regbench.interrupts"], env=env(),
                       check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.005)


def _interrupted(args, cwd: Path, path: Path, signum: int, moment, log: Path) -> list[int]:
    """`regbench ARGS` sent `signum` at `moment`: seconds after it starts; "import": while it
    imports TensorFlow (just after its header line); "training": as soon as a row lands while
    the next cell trains; "workers": once its worker processes start, at the whole process
    group as Ctrl-C does. Returns the processes it had started."""
    with open(log, "w") as err:
        proc = subprocess.Popen([*regbench_command(), *map(str, args)], cwd=cwd, env=env(),
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                preexec_fn=default_signals)
    try:
        if moment == "import":
            _wait_for(lambda: " cells, " in log.read_text(), proc)
            time.sleep(0.3)
        elif moment == "training":
            rows = len(store.read_rows(path))
            _wait_for(lambda: len(store.read_rows(path)) > rows, proc)
        elif moment == "workers":
            _wait_for(lambda: len(children(proc.pid)) >= 2, proc)
            time.sleep(1.0)
        else:
            time.sleep(moment)
        started = children(proc.pid)
        assert proc.poll() is None, f"finished before the signal: {log.read_text()}"
        if moment == "workers":
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    for bad in ("Traceback", "Fatal Python error", "Segmentation", "Exception ignored"):
        assert bad not in text, text
    assert proc.returncode == 128 + signum, text
    lines = text.splitlines()
    assert lines[-1] == CLEAN[signum] and lines.count(CLEAN[signum]) == 1, text
    return started


@pytest.fixture(scope="module")
def reference(work) -> dict:
    """The study (2 seeds, 4 cells, one at a time) run without interruption: key -> row."""
    path = work / "reference.jsonl"
    result = run("run", "study.toml", "--seeds", 2, "--pack-size", 1, "--data-dir", "data",
                 "--store", path, "--quiet", cwd=work)
    assert result.returncode == 0, result.stderr
    rows = stored(path)
    assert len(rows) == 4 and all(row["status"] == "ok" for row in rows.values())
    return rows


@slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_sigint_and_sigterm_stop_cleanly_at_any_moment_and_a_rerun_completes_the_study(
        work, reference, tmp_path):
    """Each signal at 5 moments, then SIGINT at the process group of a run with 2 worker
    processes; after each: its one line, status 128 + the signal, whole rows only, each equal to
    the uninterrupted run's; every process gone; then a rerun completes the study."""
    path = tmp_path / "signals.jsonl"
    args = ["run", work / "study.toml", "--seeds", 2, "--pack-size", 1, "--data-dir",
            work / "data", "--store", path]
    first = max(0.05, 2 * _startup_s())
    tried = 0
    for signum in (signal.SIGINT, signal.SIGTERM):
        for moment in (first, 0.2, 1.0, "import", "training"):
            _interrupted(args, tmp_path, path, signum, moment, tmp_path / "run.log")
            assert_matches(path, reference, complete=False)
            tried += 1
    assert len(stored(path)) == 2  # one cell stored by each run stopped while training
    workers = _interrupted([*args, "--workers", 2], tmp_path, path, signal.SIGINT, "workers",
                           tmp_path / "workers.log")
    tried += 1
    assert len(workers) >= 2
    deadline = time.monotonic() + 5
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(running, workers)), "worker processes outlived the interrupted run"
    assert_matches(path, reference, complete=False)
    rerun = subprocess.run([*regbench_command(), *map(str, args)], cwd=tmp_path, env=env(),
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert_matches(path, reference, complete=True)
    figure("signal timings tried", tried)
    figure("first signal after start (s)", round(first, 3))


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_while_the_run_stops_keeps_the_first_ones_status(work, tmp_path,
                                                                        second):
    """SIGINT, then another signal 0 to 60 ms later, as an impatient user or a supervisor
    sends it: the run ends with one clean line and its status, not killed by the second (the
    handlers were restored to the defaults before the process exited)."""
    args = ["run", work / "study.toml", "--seeds", 1, "--data-dir", work / "data", "--store",
            tmp_path / "s.jsonl"]
    for delay in (0.0, 0.02, 0.06):
        run_ = subprocess.Popen([*regbench_command(), *map(str, args)], cwd=tmp_path, env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=default_signals)
        header = run_.stderr.readline()  # the run has started: its handlers are in place
        assert "cells" in header, header
        run_.send_signal(signal.SIGINT)
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            run_.send_signal(second)
        out, err = run_.communicate(timeout=120)
        # both pending at once, either may be the one that stops it: never killed by one
        assert run_.returncode in (130, 128 + second), (delay, run_.returncode, err)
        assert err.strip().splitlines()[-1] == CLEAN[run_.returncode - 128], err


# --- benchmark JSON of the wrong shape --------------------------------------------------------

def _benchmark(name: str, samples, **info) -> dict:
    return {"name": name, "stats": {"data": samples}, "extra_info": info}


def _run() -> dict:
    """A small, valid run of the step suite (the shape `benchmarks/` writes)."""
    step = dict(kind="step", backend="tensorflow", device="cpu", problem="mnist_mlp", batch=32,
                flops_per_example=6e6, first_call_s=1.0)
    return {"machine_info": {"regbench": {"cpu_model": "test CPU", "gpu": "none available"}},
            "benchmarks": [
                _benchmark("step_none", [0.010, 0.011, 0.012], **step, technique="none",
                           baseline_samples=[0.010, 0.011, 0.010]),
                _benchmark("step_l2", [0.012, 0.013, 0.012], **step, technique="l2"),
                _benchmark("matmul", [0.02, 0.02, 0.021], kind="matmul", backend="tensorflow",
                           device="cpu", n=1000, flops=2e9, first_call_s=0.1)]}


def _without(key: str) -> dict:
    run_ = _run()
    del run_["benchmarks"][0][key]
    return run_


def _with(path: tuple, value) -> dict:
    run_ = _run()
    node = run_
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return run_


BAD_JSON = {  # file content -> what the error line says after the file's name
    "benchmarks-a-number": ({"benchmarks": 5}, "not a pytest-benchmark JSON file (expected an "
                                               "object with a `benchmarks` list)"),
    "a-list": ([1], "not a pytest-benchmark JSON file (expected an object with a `benchmarks` "
                    "list)"),
    "benchmark-a-number": ({"benchmarks": [1]}, "benchmarks[0] must be an object, found 1"),
    "no-stats": (_without("stats"), "step_none: `stats` must be an object with the per-round "
                                    "samples (stats.data)"),
    "string-samples": (_with(("benchmarks", 0, "stats", "data"), ["0.01", "0.02"]),
                       "step_none: stats.data must be a list of per-round times in seconds "
                       "(finite numbers > 0), found \"0.01\""),
    "null-sample": (_with(("benchmarks", 1, "stats", "data"), [0.01, None]),
                    "step_l2: stats.data must be a list of per-round times in seconds (finite "
                    "numbers > 0), found null"),
    "no-name": (_without("name"), "benchmarks[0] has no `name` (text)"),
    "kind-a-list": (_with(("benchmarks", 0, "extra_info", "kind"), ["step"]),
                    "step_none: unknown kind [\"step\"]; expected one of step, fed_step, "
                    "pipeline, matmul"),
    "no-backend": (_with(("benchmarks", 0, "extra_info"), {"kind": "step"}),
                   "step_none: extra_info lacks `backend`"),
    "batch-text": (_with(("benchmarks", 0, "extra_info", "batch"), "32"),
                   "step_none: extra_info.batch must be an integer > 0, found \"32\""),
    "baseline-short": (_with(("benchmarks", 0, "extra_info", "baseline_samples"), [0.01]),
                       "step_none: extra_info.baseline_samples has 1 rounds and stats.data 3; "
                       "paired rounds come one of each"),
    "machine-a-number": (_with(("machine_info",), 4), "machine_info must be an object"),
    "gpu-a-list": (_with(("machine_info", "regbench", "gpu"), ["a"]),
                   "machine_info.regbench.gpu must be text, found [\"a\"]"),
}


def _one_error_line(argv, capsys) -> str:
    assert cli.main([str(a) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("regbench: error: "), err
    return err[len("regbench: error: "):-1]


@pytest.mark.parametrize("case", list(BAD_JSON))
def test_benchmark_json_of_the_wrong_shape_is_one_line_naming_the_file(case, tmp_path, capsys):
    content, what = BAD_JSON[case]
    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_text(json.dumps(content))
    good.write_text(json.dumps(_run()))
    for argv in (["bench-report", bad, "--out", tmp_path / "out"],
                 ["bench-compare", bad, good], ["bench-compare", good, bad]):
        assert _one_error_line(argv, capsys) == f"{bad}: {what}"
    assert not (tmp_path / "out").exists()


def test_unreadable_benchmark_files_are_one_line_naming_the_file(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_run()))
    (tmp_path / "latin1.json").write_bytes(b'{"benchmarks": ["caf\xe9"]}')
    (tmp_path / "folder.json").mkdir()
    cases = {"latin1.json": "not a pytest-benchmark JSON file ('utf-8' codec can't decode byte "
                            "0xe9 in position 20: invalid continuation byte)",
             "folder.json": "is a folder; give a pytest-benchmark JSON file",
             "missing.json": "no such file"}
    for name, what in cases.items():
        path = tmp_path / name
        for argv in (["bench-report", path, "--out", tmp_path / "out"],
                     ["bench-compare", path, good]):
            assert _one_error_line(argv, capsys) == f"{path}: {what}"


def test_no_change_to_a_benchmark_file_is_a_traceback(tmp_path):
    """Every field of a valid run removed, or replaced by a value of another type: exit 0,
    or exit 2 with one line naming the file."""
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_run()))
    values = [None, 0, -1, 2.5, True, "", "x", [], [1], {}, float("inf")]

    def fields(node, prefix=()):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            yield (*prefix, key)
            if isinstance(value, dict | list) and value:
                yield from fields(value, (*prefix, key))

    tried = 0
    for field in fields(_run()):
        for value in [*values, KeyError]:
            content = copy.deepcopy(_run())
            node = content
            for key in field[:-1]:
                node = node[key]
            if value is KeyError:
                del node[field[-1]]
            else:
                node[field[-1]] = value
            bad = tmp_path / "bad.json"
            bad.write_text(json.dumps(content))
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = cli.main(["bench-compare", str(bad), str(good)])
            assert code in (0, 2), (field, value)
            if code == 2:
                assert err.getvalue().startswith(f"regbench: error: {bad}: "), (field, value)
                assert err.getvalue().count("\n") == 1, err.getvalue()
            tried += 1
    figure("benchmark files altered", tried)


@slow
@pytest.mark.parametrize("name", ["", " ", "nope"])
def test_bench_grid_refuses_an_empty_or_unknown_name_before_it_starts(name, tmp_path):
    began = time.monotonic()
    result = run("bench-grid", "--only", name, "--out", tmp_path / "out", cwd=tmp_path,
                 timeout=30)
    assert time.monotonic() - began < 10
    assert result.returncode == 2
    assert result.stderr == (f"regbench: error: --only: unknown configuration {name!r}; "
                             "choose from mnist_b32, mnist_b128, cifar10_b64 (or smoke, "
                             "seconds long)\n")
    assert not (tmp_path / "out").exists()
