"""Reliability of `regbench run` on real MNIST: kills, concurrent runners, broken cells.

Every claim is checked against one uninterrupted run of the same small study (`reference`):
same cell keys, same metrics (training is deterministic), each cell stored once.

- A runner SIGKILLed at random moments (during start-up, while training, right as a row lands)
  and restarted each time ends with the reference store, and the store reads after every kill.
- A process appending large rows in a tight loop, SIGKILLed mid-write: readers never see a torn
  row and the next append cuts the partial line.
- Two runners on one store train each cell once; when one is SIGKILLed the other or a rerun
  finishes its cells.
- A diverging cell is stored as `diverged` with its epoch, a cell that raises as `failed` with
  its message (one that runs out of memory as its model is built: `faults`), the study goes on,
  `show` lists them, `--retry-failed` trains them again.

Figures for docs/reliability.md are printed (`pytest -s`) and, if $REGBENCH_RELIABILITY_FIGURES
names a JSON file, merged into it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults import STORED_ERROR, assert_close, environment
from processes import children, running

from regbench import cli, store, summary

REPO = Path(__file__).resolve().parents[1]


def _find_data_dir() -> Path | None:
    env = os.environ.get("REGBENCH_DATA_DIR")
    folder = (REPO / env) if env else (REPO / "../shared/datasets")  # absolute env wins `/`
    return folder.resolve() if (folder / "mnist.npz").is_file() else None


DATA_DIR = _find_data_dir()
needs_mnist = pytest.mark.skipif(DATA_DIR is None, reason="MNIST not found: set "
                                 "REGBENCH_DATA_DIR to the folder with mnist.npz")
processes = pytest.mark.slow  # starts, kills and restarts processes; most of them train

# 2 seeds x 3 arms = 6 cells of a few seconds each (most of it TensorFlow's start-up and tracing).
STUDY = """\
name = "reliability"
datasets = ["mnist"]
seeds = 2

[model]
hidden = [16]

[training]
batch_size = 64
epochs = 1
train_subset = 500

[techniques.l2]
factor = 0.001

[techniques.dropout]
rate = 0.2

[design]
kind = "one_at_a_time"   # none, l2, dropout
"""
CELLS = 6
KILLS = 10          # SIGKILLs of `regbench run` that must land on a live process
APPEND_KILLS = 16   # SIGKILLs of a process appending rows in a tight loop, at least...
APPEND_TORN = 3     # ...and until this many landed in the middle of a row's write
ROW_BYTES = 256 * 1024  # large rows make a write last long enough to be cut in the middle

# What differs between two runs of the same cell: wall-clock times, when and where it ran,
# how busy the machine was.
VOLATILE = {"finished_at", "fit_s", "first_epoch_s", "epoch_s", "examples_per_s", "git_commit",
            "cost_step_s", "cost_epoch_s",
            "host", "load_average_1min", "workers"}
TRAINED_LINE = re.compile(r"^\[\d+/\d+\] .*: (ok|diverged|FAILED)", re.M)


def env() -> dict:
    """A user's environment: real MNIST, never the user's cache or the network."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("REGBENCH_")}
    out.update(CI="1", PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="3",
               REGBENCH_CACHE_DIR="/nonexistent/regbench-test-cache",
               REGBENCH_DOWNLOAD_URL="http://127.0.0.1:9/")
    if DATA_DIR is not None:
        out["REGBENCH_DATA_DIR"] = str(DATA_DIR)
    return out


def regbench(*args, cwd: Path, timeout: float = 240,
             fail_arm: str | None = None) -> subprocess.CompletedProcess:
    """`regbench ARGS`; with `fail_arm`, building the model of a cell of that arm raises
    MemoryError (`faults`)."""
    variables = env() | (environment(cwd / "faults", fail_arm) if fail_arm else {})
    return subprocess.run([sys.executable, "-m", "regbench.cli", *map(str, args)], cwd=cwd,
                          env=variables, capture_output=True, text=True, timeout=timeout)


def start(*args, cwd: Path, log: Path) -> subprocess.Popen:
    """`regbench ARGS` in the background, its output to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "regbench.cli", *map(str, args)],
                                cwd=cwd, env=env(), stdout=out, stderr=subprocess.STDOUT)


def in_process(*args) -> tuple[int, str, str]:
    """`regbench ARGS` in this process (for commands that train nothing): code, out, err."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def comparable(row: dict) -> dict:
    """A row without what legitimately differs between runs (times, dates)."""
    out = {k: v for k, v in row.items() if k not in VOLATILE}
    if isinstance(out.get("history"), dict):
        out["history"] = {k: v for k, v in out["history"].items() if k != "epoch_s"}
    return out


def stored(path: Path) -> dict:
    """Key -> row of a store that must hold each cell at most once."""
    rows = store.read_rows(path)
    keys = [row["key"] for row in rows]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"cells stored twice: {duplicates}"
    return {row["key"]: row for row in rows}


def assert_matches(path: Path, reference: dict, complete: bool = True) -> dict:
    rows = stored(path)
    if complete:
        assert set(rows) == set(reference), (f"missing {sorted(set(reference) - set(rows))}, "
                                             f"extra {sorted(set(rows) - set(reference))}")
    else:
        assert set(rows) <= set(reference), f"extra {sorted(set(rows) - set(reference))}"
    for key, row in rows.items():
        # within rounding: a worker's one thread sums apart from one process's two
        assert_close(comparable(row), comparable(reference[key]), f"cell {key}")
    return rows


def figure(name: str, value) -> None:
    print(f"reliability figure: {name} = {value}")
    target = os.environ.get("REGBENCH_RELIABILITY_FIGURES")
    if target:
        path = Path(target)
        figures = json.loads(path.read_text()) if path.is_file() else {}
        figures[name] = value
        path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reliability")
    (folder / "study.toml").write_text(STUDY)
    return folder


@pytest.fixture(scope="module")
def reference(work) -> dict:
    """The uninterrupted run: key -> row."""
    if DATA_DIR is None:
        pytest.skip("MNIST not found: set REGBENCH_DATA_DIR to the folder with mnist.npz")
    path = work / "reference.jsonl"
    result = regbench("run", "study.toml", "--store", path, "--quiet", cwd=work)
    assert result.returncode == 0, result.stderr
    rows = stored(path)
    assert len(rows) == CELLS and all(r["status"] == "ok" for r in rows.values())
    return rows


# --- kills ------------------------------------------------------------------------------------

def _wait_for_growth(proc: subprocess.Popen, path: Path, timeout: float = 120) -> None:
    """Return as soon as `path` grows (a row is being written) or `proc` exits."""
    size = path.stat().st_size if path.exists() else 0
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if path.exists() and path.stat().st_size != size:
            return
        time.sleep(0.0005)


@needs_mnist
@processes
def test_a_killed_run_resumes_to_the_uninterrupted_result(work, reference, tmp_path):
    """SIGKILL at random moments, restart each time: the final store is the reference's."""
    path = tmp_path / "killed.jsonl"
    rng = random.Random(20240607)
    # Moments: start-up (TensorFlow still loading), mid-training, the instant a row lands.
    plan = ["startup", "row", "startup", "training", "startup", "row", "row", "training"]
    kills, runs, torn_tails, began = 0, 0, 0, time.monotonic()
    while kills < KILLS:
        assert time.monotonic() - began < 600, "kill loop is taking too long"
        moment = plan[runs % len(plan)]
        runs += 1
        proc = start("run", work / "study.toml", "--store", path, "--quiet", cwd=tmp_path,
                     log=tmp_path / "killed.log")
        try:
            if moment == "startup":
                time.sleep(rng.uniform(0.2, 2.0))
            elif moment == "training":
                time.sleep(rng.uniform(3.0, 6.0))
            else:
                _wait_for_growth(proc, path)
                time.sleep(rng.uniform(0.0, 0.002))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        if path.exists():  # readable after every kill: whole rows only, each the reference's
            torn_tails += not path.read_bytes().endswith(b"\n") and path.stat().st_size > 0
            assert_matches(path, reference, complete=False)
            assert in_process("show", path)[0] == 0

    partial = len(stored(path)) if path.exists() else 0
    result = regbench("run", work / "study.toml", "--store", path, "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_matches(path, reference)
    figure("run_kills", kills)
    figure("run_restarts", runs + 1)
    figure("run_cells_stored_before_last_restart", partial)
    figure("run_torn_tails", torn_tails)
    figure("run_cells_lost", 0)


# A writer that imports the store once and forks one appending child per line it reads; the
# child appends at most 6 rows (a missed kill cannot fill the disk), then waits for its SIGKILL.
FORKING_WRITER = r"""
import hashlib, os, sys, time
from regbench import store
path, size = sys.argv[1], int(sys.argv[2])
for command in sys.stdin:
    first = int(command)
    pid = os.fork()
    if pid == 0:
        os.nice(19)  # preempted more often, also in the middle of a write
        for i in range(first, first + 6):
            pad = (f"{i:x}." * size)[:size]
            store.append(path, {"key": f"{i:08d}", "problem": "p", "arm": "a", "seed": 0,
                                "status": "ok", "pad": pad,
                                "sha": hashlib.sha256(pad.encode()).hexdigest()})
        time.sleep(5)
        os._exit(0)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(status, flush=True)
"""


def _check_big_rows(path: Path) -> list[int]:
    """Every row a reader gets is whole and uncorrupted; returns their numbers."""
    numbers = []
    for row in store.read_rows(path):
        assert hashlib.sha256(row["pad"].encode()).hexdigest() == row["sha"], "torn row read"
        numbers.append(int(row["key"]))
    assert numbers == sorted(set(numbers)), "rows out of order or repeated"
    return numbers


@processes
def test_a_write_cut_by_sigkill_is_never_read_and_is_cut_by_the_next_append(tmp_path):
    # tmpfs, where there is one, makes fsync free, so most of a writer's time is in write().
    shm = Path("/dev/shm")
    folder = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    path = folder / f"regbench-append-{os.getpid()}-{tmp_path.name}.jsonl"
    path.write_bytes(b"")
    writer = subprocess.Popen([sys.executable, "-c", FORKING_WRITER, str(path), str(ROW_BYTES)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env())
    rng = random.Random(7)
    mid_write = torn = reads = cuts_checked = 0
    line = None  # bytes per row, learned from the first whole row
    life = 0
    try:
        while life < APPEND_KILLS or torn < APPEND_TORN:
            assert life < 8 * APPEND_KILLS, f"only {torn} of {life} kills cut a row"
            numbers = _check_big_rows(path)
            data = path.read_bytes()
            partial = len(data) - 1 - data.rfind(b"\n")  # bytes of a killed row, if any
            writer.stdin.write(f"{numbers[-1] + 1 if numbers else 0}\n")
            writer.stdin.flush()
            child = int(writer.stdout.readline())
            base = path.stat().st_size
            clean = base - partial  # where the next row starts, once the partial one is cut
            # Even lives: killed at a random moment; odd ones: as soon as a row is half written.
            hunt = life % 2 == 1 and line is not None
            deadline = time.monotonic() + (1.0 if hunt else rng.uniform(0.002, 0.05))
            while time.monotonic() < deadline:
                size = path.stat().st_size
                if line is None and size > base and path.read_bytes().endswith(b"\n"):
                    line = len(path.read_bytes().rsplit(b"\n", 2)[-2]) + 1
                if hunt and size != base and (size - clean) % line:
                    mid_write += 1
                    break
                if life % 4 == 2:  # some lives: a reader races the writer
                    _check_big_rows(path)
                    reads += 1
            os.kill(child, signal.SIGKILL)
            writer.stdout.readline()  # the child's exit status: it is gone
            if partial:  # the partial line a kill left was cut before the next row
                data = path.read_bytes()
                assert all(store._row(x) for x in data.split(b"\n")[:-1])
                cuts_checked += 1
            tail = path.read_bytes()
            torn += bool(tail) and not tail.endswith(b"\n")  # an empty store is not torn
            life += 1
        assert cuts_checked >= 1, "no life began on a torn last line"
        numbers = _check_big_rows(path)
        store.append(path, {**BARE, "key": "last", "pad": "",
                            "sha": hashlib.sha256(b"").hexdigest()})
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b"" and all(store._row(x) is not None for x in lines[:-1])
        assert len(lines) - 1 == len(numbers) + 1
    finally:
        writer.kill()
        writer.wait()
        path.unlink(missing_ok=True)
    figure("append_kills", life)
    figure("append_kills_mid_write", mid_write)
    figure("append_torn_tails_cut", torn)
    figure("append_rows_verified", len(numbers))


BARE = {"problem": "p", "arm": "a", "seed": 0, "status": "ok"}  # the least a row holds

def test_a_partial_line_longer_than_a_mebibyte_is_cut_whole(tmp_path):
    path = tmp_path / "store.jsonl"
    store.append(path, {**BARE, "key": "a"})
    big = json.dumps({**BARE, "key": "big", "pad": "x" * (3 << 20)}).encode()
    with open(path, "ab") as f:
        f.write(big[:3 << 19])  # the first 1.5 MiB of a killed writer's row
    store.append(path, {**BARE, "key": "b"})
    assert [row["key"] for row in store.read_rows(path)] == ["a", "b"]


@processes
def test_an_append_that_cannot_write_the_whole_row_raises(tmp_path):
    script = (
        "import resource, sys\n"
        "from regbench import store\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    store.append(sys.argv[1], {'key': 'big', 'pad': 'x' * 150_000})\n"
        "except store.StoreError:\n"
        "    print('raised')\n"
        "else:\n"
        "    print('returned')\n")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s.jsonl")], env=env(),
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "raised", result.stdout + result.stderr


# --- concurrent runners -------------------------------------------------------------------

@needs_mnist
@processes
def test_two_runners_share_a_store_and_when_one_dies_the_other_and_a_rerun_finish(
        work, reference, tmp_path):
    """Two runners split the cells; one is SIGKILLed mid-cell; the survivor goes on, and a rerun
    trains what the dead one held when the survivor passed it. No cell is trained twice."""
    path = tmp_path / "shared.jsonl"
    logs = [tmp_path / f"runner{i}.log" for i in range(3)]
    runners = [start("run", work / "study.toml", "--store", path, cwd=tmp_path, log=log)
               for log in logs[:2]]
    try:
        _wait_for_growth(runners[0], path)  # a row landed: both runners are past start-up
        time.sleep(random.Random(3).uniform(0.3, 1.5))  # the first runner is most likely mid-cell
        runners[0].send_signal(signal.SIGKILL)
    finally:
        runners[0].kill()
        runners[0].wait(timeout=60)
    assert runners[0].returncode == -signal.SIGKILL
    assert runners[1].wait(timeout=300) == 0
    survived = assert_matches(path, reference, complete=False)
    rerun = start("run", work / "study.toml", "--store", path, cwd=tmp_path, log=logs[2])
    assert rerun.wait(timeout=300) == 0
    assert_matches(path, reference)
    trained = [len(TRAINED_LINE.findall(log.read_text())) for log in logs]
    assert sum(trained) == CELLS, trained  # each cell trained and stored once, by one runner
    assert trained[1] >= 1 and trained[2] == CELLS - len(survived)
    figure("concurrent_runners", 2)
    figure("concurrent_cells_trained_by_killed_survivor_rerun", trained)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@processes
def test_worker_processes_end_with_a_killed_driver(work, reference, tmp_path):
    """`regbench run --workers 2` is SIGKILLed while its workers train: every process it
    started is gone within seconds, and a rerun completes the study to the reference rows."""
    path = tmp_path / "workers.jsonl"
    driver = start("run", work / "study.toml", "--store", path, "--workers", "2",
                   cwd=tmp_path, log=tmp_path / "driver.log")
    try:
        deadline = time.monotonic() + 120
        while len(children(driver.pid)) < 2 and driver.poll() is None:
            assert time.monotonic() < deadline, "no worker processes started"
            time.sleep(0.05)
        time.sleep(random.Random(5).uniform(0.5, 3))  # the workers start up or train
        workers = children(driver.pid)
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait(timeout=60)
    assert driver.returncode == -signal.SIGKILL and len(workers) >= 2
    deadline = time.monotonic() + 4  # less than a worker's start-up and first cell
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(running, workers)), "workers outlived their driver"
    rerun = regbench("run", work / "study.toml", "--store", path, "--workers", "2",
                     cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert_matches(path, reference)


# --- divergence and failures --------------------------------------------------------------

# Four arms at one seed, in this order:
# - l1: a valid factor, but the run fails this arm (`faults`): building its model raises
#   MemoryError, as running out of memory would. Retried without the fault, it trains.
# - none: trains normally (the study goes on after a failed cell).
# - l2: plain SGD with a penalty factor > 1/(2 * learning_rate) doubles the weights' size every
#   step; the loss overflows in epoch 2.
# - l1_l2: a penalty that is infinite in float32 from the first step: diverges in epoch 1.
FAULTS = """\
name = "faults"
datasets = ["mnist"]
seeds = 1

[model]
hidden = [16]

[training]
optimizer = "sgd"
learning_rate = 1.0
batch_size = 16
epochs = 3
train_subset = 500

[techniques.l1]
factor = 0.01

[techniques.l2]
factor = 1.25

[techniques.l1_l2]
l1 = 0.0
l2 = 3e38

[design]
arms = ["l1", "none", "l2", "l1_l2"]
"""


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The FAULTS study run once: (store, the run's result)."""
    if DATA_DIR is None:
        pytest.skip("MNIST not found: set REGBENCH_DATA_DIR to the folder with mnist.npz")
    folder = tmp_path_factory.mktemp("faults")
    (folder / "faults.toml").write_text(FAULTS)
    path = folder / "faults.jsonl"
    return path, regbench("run", "faults.toml", "--store", path, cwd=folder, fail_arm="l1")


@processes
def test_diverged_and_failed_cells_are_stored_shown_and_retried(faults):
    path, result = faults
    assert result.returncode == 0, result.stderr  # a failed cell does not stop the study
    assert "Traceback" not in result.stderr
    rows = {row["arm"]: row for row in store.read_rows(path)}
    assert list(rows) == ["l1", "none", "l2", "l1_l2"]
    failed, ok, diverged = rows["l1"], rows["none"], rows["l2"]
    assert failed["status"] == "failed"
    assert failed["error"] == STORED_ERROR
    assert ok["status"] == "ok" and ok["diverged_epoch"] is None and ok["epochs_run"] == 3
    assert diverged["status"] == "diverged"
    assert diverged["diverged_epoch"] == 2 and diverged["epochs_run"] == 2
    assert math.isfinite(diverged["history"]["loss"][0])
    assert not math.isfinite(diverged["history"]["loss"][1])

    # `show` counts them instead of crashing.
    code, shown, _ = in_process("show", path)
    assert code == 0
    assert re.search(r"^l1\s+0\s.*\s1 failed$", shown, re.M), shown
    assert re.search(r"^none\s+1\s", shown, re.M), shown
    assert re.search(r"^l2\s+0\s.*\s1 diverged$", shown, re.M), shown

    # Failed cells are done until asked for; `--retry-failed` trains them (and only them) again,
    # here with the memory free again (no fault): the l1 cell trains.
    study = path.parent / "faults.toml"
    n_failed = sum(row["status"] == "failed" for row in rows.values())
    _, plan, _ = in_process("run", study, "--store", path, "--dry-run")
    assert plan.splitlines()[-1] == f"4 cells, 0 to train, store {path}"
    _, plan, _ = in_process("run", study, "--store", path, "--dry-run", "--retry-failed")
    assert plan.splitlines()[-1] == f"4 cells, {n_failed} to train, store {path}"
    retried = regbench("run", study, "--store", path, "--retry-failed", cwd=path.parent)
    assert retried.returncode == 0, retried.stderr
    assert len(TRAINED_LINE.findall(retried.stderr)) == n_failed
    again = store.read_rows(path)[4:]
    assert [(r["arm"], r["status"], r["epochs_run"]) for r in again] == [("l1", "ok", 3)]
    assert again[0]["key"] == failed["key"] and len(again) == n_failed
    assert len(store.load(path)) == 4  # one row per cell: the newest attempt
    assert "failed" not in set(store.load(path)["status"])
    figure("fault_cells_failed", n_failed)
    figure("fault_cells_diverged", sum(r["status"] == "diverged" for r in rows.values()))


@processes
def test_a_cell_that_diverges_in_its_first_epoch_is_stored_as_diverged(faults):
    """No finite validation loss at all: still `diverged` (not a failure), and no best epoch."""
    path, _ = faults
    row = next(r for r in store.read_rows(path) if r["arm"] == "l1_l2")
    assert (row["status"], row["diverged_epoch"], row.get("error")) == ("diverged", 1, None)
    assert row["epochs_run"] == 1 and row["best_epoch"] is None


@needs_mnist
@processes
def test_retry_failed_trains_a_failed_cell_to_the_reference_result(work, reference, tmp_path):
    """A cell that failed once (out of memory) and works now is trained again on request."""
    path = tmp_path / "retry.jsonl"
    keys = list(reference)
    for key in keys[:-1]:
        store.append(path, reference[key])
    last = reference[keys[-1]]
    failing = regbench("run", work / "study.toml", "--store", path, cwd=tmp_path,
                       fail_arm=last["arm"])  # its other cell of that arm is stored already
    assert failing.returncode == 0, failing.stderr
    assert len(TRAINED_LINE.findall(failing.stderr)) == 1
    failed = store.read_rows(path)[-1]
    assert (failed["key"], failed["status"], failed["error"]) == (last["key"], "failed",
                                                                   STORED_ERROR)
    assert summary.summarize(store.load(path))["failed"].sum() == 1

    _, plan, _ = in_process("run", work / "study.toml", "--store", path, "--dry-run")
    assert plan.splitlines()[-1] == f"{CELLS} cells, 0 to train, store {path}"
    result = regbench("run", work / "study.toml", "--store", path, "--retry-failed", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(TRAINED_LINE.findall(result.stderr)) == 1
    newest = store.latest(store.read_rows(path))
    assert {r["key"]: comparable(r) for r in newest} == {
        k: comparable(r) for k, r in reference.items()}
