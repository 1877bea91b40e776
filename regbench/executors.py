"""Executors: where the cells of a study are trained. The store semantics are the same for all.

For every cell: claim it (`store.claim`), skip it if another runner holds it or has finished it
meanwhile, train it, append its row, release the claim. Only the process that claimed a cell
appends its row, so a store gets each cell once however many runners share it, and a runner
killed at any moment leaves its cells free for the next one.

- `run_local`: one cell after another in this process.
- `run_ray`: cells as Ray tasks on a cluster, each with `cpus_per_cell` CPUs. The driver (this
  process) claims a cell before submitting it, holds the claim while the task is in flight and
  appends the row the task returns; workers never touch the store. Workers need regbench and
  the dataset (at the `--data-dir` path, or `$REGBENCH_DATA_DIR` of the driver) on every node.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from pathlib import Path

from regbench.errors import RegbenchError


def run_local(todo, path, options, progress) -> None:
    """Train `todo` (cells) one by one in this process, appending each row to the store `path`.

    `options` carries `nondeterministic`, `data_dir` and `retry_failed` (the `run` arguments);
    `progress` is the command line's `Progress`.
    """
    from regbench import store, train

    deterministic = not options.nondeterministic
    train.configure(deterministic)
    data_dir = options.data_dir or os.environ.get("REGBENCH_DATA_DIR")
    for cell in todo:
        with store.claim(path, cell.key) as mine:
            # Another runner on this store may hold the cell, or have finished it meanwhile.
            if not mine or cell.key in store.finished_keys(path, options.retry_failed):
                progress.skip(cell)
                continue
            progress.start(cell)
            try:
                row = train.run_cell(cell, data_dir=data_dir, deterministic=deterministic,
                                     on_epoch=progress.epoch)
            except RegbenchError:
                raise
            except Exception as error:  # one broken cell must not stop the study
                row = train.failed_row(cell, error, deterministic)
            store.append(path, row)
            progress.finish(row)


def run_ray(todo, path, options, progress, address=None, cpus_per_cell=1) -> None:
    """Train `todo` as Ray tasks; this process claims the cells and appends their rows.

    Connects to the cluster at `address` ("HOST:PORT", or "auto"); without one it starts a
    local Ray instance for the run (or uses `$RAY_ADDRESS`). If Ray is already initialized in
    this process, that connection is used as it is and left open. At most as many cells are in
    flight as the cluster has room for (its CPUs // `cpus_per_cell`), so the rest stay
    unclaimed for other runners.
    """
    if isinstance(cpus_per_cell, bool) or not (
            isinstance(cpus_per_cell, int | float) and 0 < cpus_per_cell < float("inf")):
        raise RegbenchError(f"--cpus-per-cell: expected a number > 0, got {cpus_per_cell!r}")
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
        _drive(ray, todo, path, options, progress, cpus_per_cell)
    finally:
        if started_here:
            ray.shutdown()


def _drive(ray, todo, path, options, progress, cpus_per_cell) -> None:
    from regbench import store

    deterministic = not options.nondeterministic
    data_dir = options.data_dir or os.environ.get("REGBENCH_DATA_DIR")
    if data_dir:  # workers do not share the driver's working directory
        data_dir = str(Path(data_dir).resolve())
    capacity = ray.cluster_resources().get("CPU", 0)
    if capacity < cpus_per_cell:
        raise RegbenchError(f"--cpus-per-cell: {cpus_per_cell} CPUs per cell, but the Ray "
                            f"cluster has {capacity:g} CPUs")
    slots = max(1, int(capacity // cpus_per_cell))
    task = ray.remote(_train_cell).options(num_cpus=cpus_per_cell)
    queue = collections.deque(todo)
    in_flight = {}  # ObjectRef -> (cell, its claim, when it was submitted)
    try:
        while queue or in_flight:
            while queue and len(in_flight) < slots:
                cell = queue.popleft()
                claim = contextlib.ExitStack()
                mine = claim.enter_context(store.claim(path, cell.key))
                # Another runner on this store may hold the cell, or have finished it meanwhile.
                if not mine or cell.key in store.finished_keys(path, options.retry_failed):
                    claim.close()
                    progress.skip(cell)
                    continue
                ref = task.remote(cell, data_dir, deterministic)
                in_flight[ref] = (cell, claim, time.monotonic())
            if not in_flight:
                break
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            cell, claim, submitted = in_flight.pop(ref)
            with claim:  # released once the row is stored, as in run_local
                outcome, value = _result(ray, ref, cell, deterministic)
                if outcome == "error":
                    raise RegbenchError(value)
                store.append(path, value)
                progress.start(cell)
                progress.cell_began = submitted  # the cell's time includes its wait for a worker
                progress.finish(value)
    finally:  # interrupted or stopped by bad input: free the other cells for the next runner
        for ref, (_, claim, _) in in_flight.items():
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            claim.close()


def _result(ray, ref, cell, deterministic) -> tuple[str, object]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:  # the worker or its node died; Ray's retries spent
        from regbench import train

        return "row", train.failed_row(cell, error, deterministic)


def _train_cell(cell, data_dir, deterministic) -> tuple[str, object]:
    """A Ray task: ("row", result row) or ("error", message) for bad input (RegbenchError)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from regbench import train

    train.configure(deterministic)
    try:
        return "row", train.run_cell(cell, data_dir=data_dir, deterministic=deterministic)
    except RegbenchError as error:  # bad data or settings: the driver stops the study
        return "error", str(error)
    except Exception as error:  # one broken cell must not stop the study
        return "row", train.failed_row(cell, error, deterministic)
