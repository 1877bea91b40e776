"""Executors: where the cells of a study are trained. The store semantics are the same for all.

Cells are trained in packs (`engine.plan.plan_packs`: one cell, or several small cells sharing one
compiled step). For every pack: claim its cells (`store.claim`), drop those another runner
holds or has finished, train the rest, append their rows, release the claims. Only the process
that claimed a cell appends its row, so a store gets each cell once however many runners share
it, and a runner killed at any moment leaves its cells free for the next one.

- `run_local`: packs on this machine. With several CPU cores and several packs, packs train
  side by side in worker processes (`default_workers`), each with its share of the cores:
  a small network's step uses a second core poorly, so whole packs in parallel beat one pack
  on every core (`regbench bench-grid` measures it). One pack, one core, or a GPU: in this
  process.
- `run_ray`: packs as Ray tasks on a cluster, each with `cpus_per_cell` CPUs.

With worker processes or Ray, the driver (this process) claims a pack's cells before
submitting it, holds the claims while the pack is in flight and appends the rows it returns;
workers never touch the store. The packs are the ones a single process would train, so the
rows are the same (up to the rounding of a different number of threads).
Workers need regbench and the dataset (at the `--data-dir` path, or `$REGBENCH_DATA_DIR` of
the driver) on every node.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from regbench import interrupts, startup
from regbench.errors import RegbenchError
from regbench.provenance import usable_cores

WORKER_MEMORY = 3 * 2 ** 30   # bytes a worker may need (CIFAR-10 in float32 and a network)
MIN_PARALLEL_WORK = 1e10      # forward multiply-adds x examples seen: below this (a smoke
                              # study), starting workers (TensorFlow's import, the data) costs
                              # more than it saves, unless workers are asked for


@dataclass(frozen=True)
class RunOptions:
    """How a run trains its cells (the `run` command's options, as plain values)."""
    data_dir: str | None = None     # folder with <dataset>.npz; None: $REGBENCH_DATA_DIR
    deterministic: bool = True      # TensorFlow op determinism
    retry_failed: bool = False      # train cells stored as failed again
    pack_size: int | None = None    # at most this many cells per pack; None: planned
    workers: int | None = None      # worker processes; None: $REGBENCH_WORKERS, else planned

    def data_folder(self) -> str | None:
        return self.data_dir or os.environ.get("REGBENCH_DATA_DIR")


def default_workers() -> int:
    """Worker processes for this machine: one per core, as many as memory holds; one on a
    GPU (the packs share one device)."""
    from regbench import provenance

    keras = startup.import_keras()

    if provenance.accelerator(keras.backend.backend()):
        return 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, min(usable_cores(), memory // WORKER_MEMORY))


def work(cells) -> float:
    """The cells' training arithmetic: forward multiply-adds x examples seen."""
    from regbench.engine.plan import fit_examples
    from regbench.macs import cell_macs

    return sum(cell_macs(cell.model, cell.dataset) * fit_examples(cell) * cell.training.epochs
               for cell in cells)


def check_workers(value, name: str) -> int:
    try:
        workers = int(str(value))
    except ValueError:
        workers = 0
    if workers < 1:
        raise RegbenchError(f"{name}: expected an integer >= 1, got {value!r}")
    most = max(1, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // WORKER_MEMORY)
    if workers > most:  # each worker holds TensorFlow and the data: more would swap or die
        raise RegbenchError(f"{name}: {workers:,} worker processes do not fit this machine's "
                            f"memory; at most {most} (about {WORKER_MEMORY / 2**30:.0f} GiB "
                            "each)")
    return workers


def check_data(cells, options) -> None:
    """Load and verify every dataset `cells` train on: a bad or missing file stops the run
    here, before anything is written, instead of in every cell. Verified data stays in memory
    for the cells trained in this process (`data.load` keeps it)."""
    from regbench import data

    for name in sorted({cell.dataset for cell in cells}):
        data.load(name, data_dir=options.data_folder())


def _import_engine():
    """The engine and Keras (with its backend, TensorFlow). A signal during the import acts
    once it is done: TensorFlow's import cut short can crash the interpreter."""
    startup.import_keras()
    with interrupts.deferred():
        from regbench import engine
    return engine


def run_local(todo, path, options, progress) -> None:
    """Train `todo` (cells) pack by pack on this machine, appending each row to store `path`.

    `options` (`RunOptions`): `workers` None means `$REGBENCH_WORKERS`, else
    `default_workers()` for a study worth them; `progress` is a `progress.Progress`.
    """
    engine = _import_engine()
    from regbench import store
    from regbench.engine import plan

    _check_pack_size(options.pack_size)
    deterministic = options.deterministic
    workers = options.workers
    if workers is not None:
        workers = check_workers(workers, "--workers")
    elif os.environ.get("REGBENCH_WORKERS"):  # asked for, like --workers
        workers = check_workers(os.environ["REGBENCH_WORKERS"], "$REGBENCH_WORKERS")
    else:
        workers = default_workers() if work(todo) >= MIN_PARALLEL_WORK else 1
    packs = plan.plan_packs(todo, options.pack_size, workers)
    if workers > 1 and len(packs) > 1:
        workers = min(workers, len(packs))
        pool = LocalPool(workers, max(1, usable_cores() // workers))
        with contextlib.closing(pool):
            _drive(pool, packs, path, options, progress)
        return
    engine.configure(deterministic)
    data_dir = options.data_folder()
    for members in packs:
        interrupts.check()
        with contextlib.ExitStack() as claims:
            mine = _claim(claims, members, path, options.retry_failed)
            for _ in range(len(members) - len(mine)):
                progress.skip()
            if not mine:
                continue
            progress.start(mine)
            for row in train_pack(mine, data_dir, deterministic, on_epoch=progress.epoch):
                store.append(path, {**row, "workers": 1})
                progress.finish(row)


def _claim(claims: contextlib.ExitStack, members, path, retry_failed: bool) -> list:
    """The members this runner may train: claimed here (held until `claims` closes), and not
    finished. Finished cells are read after claiming: a runner that stored a cell released its
    claim after the row was written, so a cell claimed here and not finished is not done."""
    from regbench import store

    held = [cell for cell in members if claims.enter_context(store.claim(path, cell.key))]
    finished = store.finished_keys(path, retry_failed)
    return [cell for cell in held if cell.key not in finished]


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


# Failures of the machine, not of a cell: a missing module, a file or disk that fails. A cell
# stored as failed for them would be skipped by every rerun, so the run stops instead.
ENVIRONMENT_ERRORS = (ImportError, OSError)


def _environment_fault(cells, error: BaseException) -> RegbenchError:
    what = "a missing module" if isinstance(error, ImportError) else "a system error"
    return RegbenchError(f"training stopped by {what} ({_why(error)[:300]}); nothing is stored "
                         f"for the {len(cells)} cell(s) in training: fix it and rerun to resume")


def train_pack(cells, data_dir, deterministic, on_epoch=None) -> list[dict]:
    """Rows for the cells; a pack that raises is retried cell by cell to isolate the cause."""
    from regbench import engine, rows

    try:
        return engine.fit(cells, data_dir, deterministic, on_epoch=on_epoch)
    except RegbenchError:
        raise
    except ENVIRONMENT_ERRORS as error:
        raise _environment_fault(cells, error) from error
    except Exception as error:  # one broken cell must not stop the study
        interrupts.reraise(error)
        if len(cells) == 1:
            return [rows.failed_row(cells[0], error, deterministic)]
        message = " ".join(str(error).split())[:200]
        print(f"regbench: a pack of {len(cells)} cells raised {type(error).__name__}: "
              f"{message}; training them one at a time", file=sys.stderr, flush=True)
    return [row for cell in cells
            for row in train_pack([cell], data_dir, deterministic, on_epoch)]


def _check_pack_size(pack_size) -> None:
    if pack_size is not None and pack_size < 1:
        raise RegbenchError(f"--pack-size: expected an integer >= 1, got {pack_size}")


def run_ray(todo, path, options, progress, address=None, cpus_per_cell=1) -> None:
    """Train `todo` as Ray tasks (one per pack); this process claims cells and appends rows.

    Connects to the cluster at `address` ("HOST:PORT", "ray://HOST:PORT" or "auto"); without
    one it starts a local Ray instance for the run (or joins `$RAY_ADDRESS`). If Ray is already
    initialized in this process, that connection is used as it is and left open. At most as
    many packs are in flight as the cluster has room for (its CPUs // `cpus_per_cell`), so the
    other cells stay unclaimed for other runners.
    """
    _import_engine()
    from regbench.engine import plan

    if isinstance(cpus_per_cell, bool) or not (
            isinstance(cpus_per_cell, int | float) and 0 < cpus_per_cell < float("inf")):
        raise RegbenchError(f"--cpus-per-cell: expected a number > 0, got {cpus_per_cell!r}")
    _check_pack_size(options.pack_size)
    try:
        import ray
    except ImportError:
        raise RegbenchError("--executor ray needs Ray, which is not installed: "
                            "pip install 'ray>=2.9'") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f"at {address}" if address else "locally"
            raise RegbenchError(f"--executor ray: cannot start or reach a Ray cluster {where} "
                                f"({' '.join(str(error).split())})") from None
    try:
        _drive(RayPool(ray, cpus_per_cell), plan.plan_packs(todo, options.pack_size), path,
               options, progress)
    finally:
        if started_here:
            ray.shutdown()


class LocalPool:
    """`workers` processes on this machine with `threads` CPU threads each."""

    def __init__(self, workers: int, threads: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.slots = self.workers = workers
        self.executor = ProcessPoolExecutor(  # spawn: TensorFlow does not survive a fork
            workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(threads, os.getpid()))

    def submit(self, cells, data_dir, deterministic):
        with interrupts.blocked():  # a worker this starts ignores SIGINT and SIGTERM
            return self.executor.submit(_train_remote, cells, data_dir, deterministic)

    def wait(self, handles):
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        return next(iter(done))

    def result(self, handle, cells, deterministic) -> tuple[str, object]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return handle.result()
        except BrokenProcessPool as error:  # a worker died (killed, out of memory)
            raise RegbenchError(f"a worker process died while training {len(cells)} "
                                f"cell(s) ({error}); rerun to resume") from None

    def cancel(self, handle) -> None:
        handle.cancel()

    def close(self) -> None:
        for process in list(getattr(self.executor, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                process.kill()  # a pack in flight is not waited for: its claims are gone
        self.executor.shutdown(wait=False, cancel_futures=True)


def _start_worker(threads: int, driver: int) -> None:
    """A worker process: its share of the cores' threads, quiet TensorFlow, and it ends with
    the driver (a killed driver leaves no training behind). Not bound to cores: a stack's
    input pipeline (dropout masks, augmentation) then runs beside its step."""
    def watch():
        while os.getppid() == driver:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    startup.import_keras()
    from regbench.engine.backend import seam

    seam().set_threads(threads)


class RayPool:
    """Ray tasks with `cpus_per_cell` CPUs each, as many in flight as the cluster holds."""

    def __init__(self, ray, cpus_per_cell):
        self.ray = ray
        capacity = ray.cluster_resources().get("CPU", 0)
        if capacity < cpus_per_cell:
            raise RegbenchError(f"--cpus-per-cell: {cpus_per_cell} CPUs per cell, but the Ray "
                                f"cluster has {capacity:g} CPUs")
        self.slots = max(1, int(capacity // cpus_per_cell))
        self.workers = None  # tasks on a cluster: no one machine's share to record
        self.task = ray.remote(_train_remote).options(num_cpus=cpus_per_cell)

    def submit(self, cells, data_dir, deterministic):
        return self.task.remote(cells, data_dir, deterministic)

    def wait(self, handles):
        (ref,), _ = self.ray.wait(list(handles), num_returns=1)
        return ref

    def result(self, handle, cells, deterministic) -> tuple[str, object]:
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayError as error:  # the worker or its node died
            from regbench import rows

            return "rows", [rows.failed_row(cell, error, deterministic) for cell in cells]

    def cancel(self, handle) -> None:
        self.ray.cancel(handle, force=True)


def _drive(pool, packs, path, options, progress) -> None:
    """Keep `pool.slots` packs in flight: claim a pack's cells, submit it, append the rows
    of whichever pack finishes, release its claims. Most work first (`plan.pack_cost`), so
    the last ones to finish are short."""
    from regbench import store
    from regbench.engine import plan

    deterministic = options.deterministic
    data_dir = options.data_folder()
    if data_dir:  # workers do not share the driver's working directory
        data_dir = str(Path(data_dir).resolve())
    queue = collections.deque(sorted(packs, key=plan.pack_cost, reverse=True))
    in_flight = {}  # handle -> (cells, their claims, when they were submitted)
    try:
        while queue or in_flight:
            while queue and len(in_flight) < pool.slots:
                members = queue.popleft()
                claims = contextlib.ExitStack()
                mine = _claim(claims, members, path, options.retry_failed)
                for _ in range(len(members) - len(mine)):
                    progress.skip()
                if not mine:
                    claims.close()
                    continue
                handle = pool.submit(mine, data_dir, deterministic)
                progress.begin()
                in_flight[handle] = (mine, claims, time.monotonic())
            if not in_flight:
                break
            handle = pool.wait(in_flight)
            interrupts.check()
            cells, claims, submitted = in_flight.pop(handle)
            with claims:  # released once the rows are stored, as in run_local
                outcome, value = pool.result(handle, cells, deterministic)
                if outcome == "error":  # the worker's RegbenchError (a DataError stays one)
                    raise value if isinstance(value, RegbenchError) else RegbenchError(value)
                progress.start(cells)
                progress.pack_began = submitted  # its time includes the wait for a worker
                for row in value:
                    if pool.workers:  # processes sharing this machine, its times among them
                        row["workers"] = pool.workers
                    store.append(path, row)
                    progress.finish(row)
    finally:  # interrupted or stopped by bad input: free the other cells for the next runner
        for handle, (_, claims, _) in in_flight.items():
            with contextlib.suppress(Exception):
                pool.cancel(handle)
            claims.close()


def _train_remote(cells, data_dir, deterministic) -> tuple[str, object]:
    """A worker's task: ("rows", result rows), or ("error", the RegbenchError) for bad input or
    a failure of the worker's machine; the driver raises it and stops the study."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        from regbench import engine

        engine.configure(deterministic)
        return "rows", train_pack(cells, data_dir, deterministic)
    except RegbenchError as error:  # its class (DataError...) and message cross the boundary
        return "error", error
    except ENVIRONMENT_ERRORS as error:  # the import or configuration of the backend failed
        return "error", _environment_fault(cells, error)
