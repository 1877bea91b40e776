"""regbench.executors: the local loop and the Ray executor keep the store's semantics.

Both claim a cell before training it, skip a cell another runner holds or has finished, store a
cell that raises as `failed` (here the l1 arm's, which runs out of memory as its model is built:
`faults`), hold the claim until the row is appended, and give the same rows
(training is deterministic). The Ray tests start and stop a local Ray instance themselves and
are skipped where Ray is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from faults import STORED_ERROR, assert_close, environment

from regbench import executors, store
from regbench.errors import RegbenchError
from regbench.study import load_study

REPO = Path(__file__).resolve().parents[1]


def _find_data_dir() -> Path | None:
    env = os.environ.get("REGBENCH_DATA_DIR")
    folder = (REPO / env) if env else (REPO / "../shared/datasets")  # absolute env wins `/`
    return folder.resolve() if (folder / "mnist.npz").is_file() else None


DATA_DIR = _find_data_dir()
NO_MNIST = "MNIST not found: set REGBENCH_DATA_DIR to the folder with mnist.npz"
trains = pytest.mark.slow  # trains in a fresh interpreter, in worker processes or on Ray

# Three cells at seed 0; building the l1 arm's model raises MemoryError (`faults`, in every
# process that trains here), so that cell must be stored as failed and the others trained.
STUDY = """\
name = "executors"
datasets = ["mnist"]
seeds = 1

[model]
hidden = [16]

[training]
batch_size = 64
epochs = 1
train_subset = 500

[techniques.l2]
factor = 0.001

[techniques.l1]
factor = 0.01

[design]
arms = ["none", "l2", "l1"]
"""
FAILED_ARM = "l1"
FAILED_ERROR = STORED_ERROR  # "MemoryError: simulated: out of memory while building the model"
# What differs between two runs of the same cell: wall-clock times, when and where it ran,
# how busy the machine was.
VOLATILE = {"finished_at", "fit_s", "first_epoch_s", "epoch_s", "examples_per_s", "git_commit",
            "cost_step_s", "cost_epoch_s",
            "host", "load_average_1min", "workers"}


class Progress:
    """Records what an executor reports; on each finished cell, checks its claim is still held."""

    def __init__(self, path: Path):
        self.path, self.skipped, self.started, self.finished, self.claim_held = (
            path, 0, [], [], [])

    def skip(self):
        self.skipped += 1

    def begin(self):  # the ETA's clock: nothing to record
        pass

    def start(self, cells):
        self.started.append([cell.key for cell in cells])

    def epoch(self, epoch, epochs, logs):
        pass

    def finish(self, row):
        with store.claim(self.path, row["key"]) as free:
            self.claim_held.append(not free)
        self.finished.append(row["key"])


def options(data_dir=None, retry_failed=False, pack_size=None, workers=1):
    return executors.RunOptions(data_dir=data_dir and str(data_dir), retry_failed=retry_failed,
                                pack_size=pack_size, workers=workers)


def comparable(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k not in VOLATILE}
    if isinstance(out.get("history"), dict):
        out["history"] = {k: v for k, v in out["history"].items() if k != "epoch_s"}
    return out


def by_key(path: Path) -> dict:
    rows = store.read_rows(path)
    assert len({r["key"] for r in rows}) == len(rows), "a cell stored twice"
    return {r["key"]: r for r in rows}


# --- run_local, in its own process (it configures TensorFlow process-wide) -----------------

LOCAL_DRIVER = r"""
import argparse, json, sys
sys.path.insert(0, sys.argv[3])
from regbench import executors, store
from regbench.study import load_study
from test_executors import Progress, options

study, path = sys.argv[1], sys.argv[2]
todo = load_study(study).cells()
first, second = Progress(path), Progress(path)
with store.claim(path, todo[1].key) as mine:  # another runner holds the second cell
    assert mine
    executors.run_local(todo, path, options(), first)
executors.run_local(todo, path, options(), second)  # now free; the rest are finished
print(json.dumps({"first": vars(first) | {"path": None}, "second": vars(second) | {"path": None}}))
"""


# The same study in two worker processes (one cell each at a time), then once more (nothing
# left to train).
WORKERS_DRIVER = r"""
import json, sys
sys.path.insert(0, sys.argv[3])
from regbench import executors
from regbench.study import load_study
from test_executors import Progress, options

study, path = sys.argv[1], sys.argv[2]
todo = load_study(study).cells()
first, second = Progress(path), Progress(path)
executors.run_local(todo, path, options(workers=2), first)
executors.run_local(todo, path, options(workers=2), second)
print(json.dumps({"first": vars(first) | {"path": None}, "second": vars(second) | {"path": None}}))
"""


def _drive(tmp_path_factory, driver: str) -> tuple[Path, dict]:
    """Run `driver` on the study in a fresh interpreter: (store, what run_local reported)."""
    if DATA_DIR is None:
        pytest.skip(NO_MNIST)
    folder = tmp_path_factory.mktemp("local")
    (folder / "study.toml").write_text(STUDY)
    path = folder / "local.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGBENCH_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", REGBENCH_DATA_DIR=str(DATA_DIR),
               REGBENCH_CACHE_DIR="/nonexistent/regbench-test-cache",
               REGBENCH_DOWNLOAD_URL="http://127.0.0.1:9/",
               **environment(folder / "faults", FAILED_ARM))  # worker processes inherit it
    result = subprocess.run([sys.executable, "-c", driver, folder / "study.toml", path,
                             Path(__file__).parent], cwd=folder, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return path, json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> tuple[Path, dict]:
    """The study trained by run_local in this process: (store, what its two calls reported)."""
    return _drive(tmp_path_factory, LOCAL_DRIVER)


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> tuple[Path, dict]:
    """The study trained by run_local in two worker processes."""
    return _drive(tmp_path_factory, WORKERS_DRIVER)


@trains
def test_run_local_trains_free_cells_skips_held_ones_and_stores_failures(local, tmp_path):
    path, calls = local
    (tmp_path / "study.toml").write_text(STUDY)
    keys = [cell.key for cell in load_study(tmp_path / "study.toml").cells()]
    assert calls["first"]["skipped"] == 1  # held by another runner
    assert calls["first"]["finished"] == [keys[0], keys[2]]
    assert calls["second"]["skipped"] == 2  # finished
    assert calls["second"]["finished"] == [keys[1]]
    assert all(calls["first"]["claim_held"] + calls["second"]["claim_held"])
    rows = by_key(path)
    assert [rows[k]["status"] for k in keys] == ["ok", "ok", "failed"]
    assert rows[keys[2]]["error"] == FAILED_ERROR


@trains
def test_run_local_in_worker_processes_gives_the_rows_of_one_process(local, workers, tmp_path):
    path, calls = workers
    (tmp_path / "study.toml").write_text(STUDY)
    keys = [cell.key for cell in load_study(tmp_path / "study.toml").cells()]
    assert sorted(calls["first"]["finished"]) == sorted(keys)  # in the order packs finish
    assert calls["first"]["skipped"] == 0 and all(calls["first"]["claim_held"])
    assert calls["second"]["skipped"] == 3 and calls["second"]["finished"] == []
    rows, expected = by_key(path), by_key(local[0])
    # a worker computes with one thread, the single process with two: sums may round apart
    # (1e-7 in train cross-entropy on this project's CPU)
    assert set(rows) == set(expected)
    for key, row in rows.items():
        assert_close(comparable(row), comparable(expected[key]), key)
    assert [rows[k]["workers"] for k in keys] == [2, 2, 2]
    assert [expected[k]["workers"] for k in keys] == [1, 1, 1]


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_workers_setting_is_one_clear_error(monkeypatch, tmp_path, value):
    monkeypatch.setenv("REGBENCH_WORKERS", value)
    with pytest.raises(RegbenchError) as error:
        executors.run_local([], tmp_path / "s.jsonl", options(workers=None),
                            Progress(tmp_path / "s.jsonl"))
    assert str(error.value) == f"$REGBENCH_WORKERS: expected an integer >= 1, got {value!r}"
    assert not (tmp_path / "s.jsonl").exists()


def test_more_workers_than_the_memory_holds_are_refused(monkeypatch, tmp_path):
    most = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // executors.WORKER_MEMORY
    assert executors.check_workers(str(most), "--workers") == most
    with pytest.raises(RegbenchError, match=rf"^--workers: {most + 1:,} worker processes do not "
                                            rf"fit this machine's memory; at most {most} "):
        executors.check_workers(most + 1, "--workers")


def test_run_ray_without_ray_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RegbenchError) as error:
        executors.run_ray([], tmp_path / "s.jsonl", options(), Progress(tmp_path / "s.jsonl"))
    assert str(error.value) == ("--executor ray needs Ray, which is not installed: "
                                "pip install 'ray>=2.9'")


@pytest.mark.parametrize("cpus", [0, -1, float("nan"), float("inf"), True, "2"])
def test_run_ray_refuses_a_bad_cpus_per_cell(tmp_path, cpus):
    with pytest.raises(RegbenchError) as error:
        executors.run_ray([], tmp_path / "s.jsonl", options(), Progress(tmp_path / "s.jsonl"),
                          cpus_per_cell=cpus)
    assert str(error.value) == f"--cpus-per-cell: expected a number > 0, got {cpus!r}"
    assert not (tmp_path / "s.jsonl").exists()


# --- run_ray on a local Ray instance ----------------------------------------------------------

@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray>=2.9'): "
                              "the Ray executor is not tested here")
    if DATA_DIR is None:
        pytest.skip(NO_MNIST)
    faults = environment(tmp_path_factory.mktemp("ray") / "faults", FAILED_ARM)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3",
                                       "REGBENCH_CACHE_DIR": "/nonexistent/regbench-test-cache",
                                       "REGBENCH_DOWNLOAD_URL": "http://127.0.0.1:9/",
                                       **faults}})  # the workers' l1 cells fail
    yield ray
    ray.shutdown()


@pytest.fixture
def todo(tmp_path):
    (tmp_path / "study.toml").write_text(STUDY)
    return load_study(tmp_path / "study.toml").cells()


@trains
def test_run_ray_gives_the_rows_of_run_local(ray_instance, local, todo, tmp_path):
    path = tmp_path / "ray.jsonl"
    progress = Progress(path)
    executors.run_ray(todo, path, options(DATA_DIR), progress, cpus_per_cell=1)
    assert ray_instance.is_initialized()  # a Ray the caller started is left running
    assert sorted(progress.finished) == sorted(cell.key for cell in todo)
    assert progress.skipped == 0 and all(progress.claim_held)
    rows, expected = by_key(path), by_key(local[0])
    assert {k: comparable(r) for k, r in rows.items()} == {
        k: comparable(r) for k, r in expected.items()}
    assert rows[todo[2].key]["status"] == "failed"
    assert rows[todo[2].key]["error"] == FAILED_ERROR


@trains
def test_run_ray_skips_finished_and_held_cells(ray_instance, local, todo, tmp_path):
    path = tmp_path / "ray.jsonl"
    expected = by_key(local[0])
    store.append(path, expected[todo[0].key])  # finished by an earlier run
    progress = Progress(path)
    with store.claim(path, todo[1].key) as mine:  # held by another runner
        assert mine
        executors.run_ray(todo, path, options(DATA_DIR), progress)
    assert progress.skipped == 2
    assert progress.finished == [todo[2].key]
    rows = by_key(path)
    assert list(rows) == [todo[0].key, todo[2].key]
    assert comparable(rows[todo[2].key]) == comparable(expected[todo[2].key])


@trains
def test_run_ray_trains_the_packs_run_local_would_and_isolates_a_broken_cell(
        ray_instance, local, todo, tmp_path):
    """One task for a pack of two cells; the pack raises (the l1 cell), so its cells are
    trained one by one, as run_local does, and give run_local's rows."""
    path = tmp_path / "ray.jsonl"
    progress = Progress(path)
    executors.run_ray(todo[1:], path, options(DATA_DIR, pack_size=2), progress)
    assert progress.started == [[cell.key for cell in todo[1:]]]
    rows, expected = by_key(path), by_key(local[0])
    assert [rows[cell.key]["status"] for cell in todo[1:]] == ["ok", "failed"]
    assert {k: comparable(r) for k, r in rows.items()} == {
        cell.key: comparable(expected[cell.key]) for cell in todo[1:]}


@trains
def test_run_ray_stops_on_bad_data_and_frees_its_claims(ray_instance, todo, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    good = (DATA_DIR / "mnist.npz").read_bytes()
    (folder / "mnist.npz").write_bytes(good[:len(good) // 3])
    path = tmp_path / "ray.jsonl"
    with pytest.raises(RegbenchError) as error:
        executors.run_ray(todo[:2], path, options(folder), Progress(path))
    assert f"{(folder / 'mnist.npz').resolve()} is unreadable" in str(error.value)
    assert store.read_rows(path) == []
    with contextlib.ExitStack() as stack:  # no claim outlives the run
        assert all(stack.enter_context(store.claim(path, cell.key)) for cell in todo)


@trains
def test_run_ray_refuses_more_cpus_per_cell_than_the_cluster_has(ray_instance, todo, tmp_path):
    path = tmp_path / "ray.jsonl"
    with pytest.raises(RegbenchError) as error:
        executors.run_ray(todo, path, options(DATA_DIR), Progress(path), cpus_per_cell=3)
    assert str(error.value) == ("--cpus-per-cell: 3 CPUs per cell, but the Ray cluster has "
                                "2 CPUs")
