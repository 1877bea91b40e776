"""Executors: where the cells of a study are trained. The store semantics are the same for all.

Cells are trained in packs (`pack.plan_packs`: one cell, or several small cells sharing one
compiled step). For every pack: claim its cells (`store.claim`), drop those another runner
holds or has finished, train the rest, append their rows, release the claims. Only the process
that claimed a cell appends its row, so a store gets each cell once however many runners share
it, and a runner killed at any moment leaves its cells free for the next one.

- `run_local`: one pack after another in this process.
- `run_ray`: packs as Ray tasks on a cluster, each with `cpus_per_cell` CPUs. The driver (this
  process) claims a pack's cells before submitting it, holds the claims while the task is in
  flight and appends the rows the task returns; workers never touch the store. Workers need
  regbench and the dataset (at the `--data-dir` path, or `$REGBENCH_DATA_DIR` of the driver) on
  every node. The packs are the ones `run_local` would train, so the rows are the same.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from pathlib import Path

from regbench.errors import RegbenchError


def run_local(todo, path, options, progress) -> None:
    """Train `todo` (cells) pack by pack in this process, appending each row to store `path`.

    `options` carries `nondeterministic`, `data_dir`, `retry_failed` and `pack_size` (the
    `run` arguments); `progress` is the command line's `Progress`.
    """
    from regbench import pack, store, train

    _check_pack_size(options.pack_size)
    deterministic = not options.nondeterministic
    train.configure(deterministic)
    data_dir = options.data_dir or os.environ.get("REGBENCH_DATA_DIR")
    for members in pack.plan_packs(todo, options.pack_size):
        with contextlib.ExitStack() as claims:
            mine = _claim(claims, members, path, options.retry_failed)
            for _ in range(len(members) - len(mine)):
                progress.skip()
            if not mine:
                continue
            progress.start(mine)
            for row in train_pack(mine, data_dir, deterministic, on_epoch=progress.epoch):
                store.append(path, row)
                progress.finish(row)


def _claim(claims: contextlib.ExitStack, members, path, retry_failed: bool) -> list:
    """The members this runner may train: claimed here (held until `claims` closes), and not
    finished. Finished cells are read after claiming: a runner that stored a cell released its
    claim after the row was written, so a cell claimed here and not finished is not done."""
    from regbench import store

    held = [cell for cell in members if claims.enter_context(store.claim(path, cell.key))]
    finished = store.finished_keys(path, retry_failed)
    return [cell for cell in held if cell.key not in finished]


def train_pack(cells, data_dir, deterministic, on_epoch=None) -> list[dict]:
    """Rows for the cells; a pack that raises is retried cell by cell to isolate the cause."""
    from regbench import pack, train

    try:
        return pack.run_pack(cells, data_dir, deterministic, on_epoch=on_epoch)
    except RegbenchError:
        raise
    except Exception as error:  # one broken cell must not stop the study
        if len(cells) == 1:
            return [train.failed_row(cells[0], error, deterministic)]
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
        _drive(ray, todo, path, options, progress, cpus_per_cell)
    finally:
        if started_here:
            ray.shutdown()


def _drive(ray, todo, path, options, progress, cpus_per_cell) -> None:
    from regbench import pack, store

    deterministic = not options.nondeterministic
    data_dir = options.data_dir or os.environ.get("REGBENCH_DATA_DIR")
    if data_dir:  # workers do not share the driver's working directory
        data_dir = str(Path(data_dir).resolve())
    capacity = ray.cluster_resources().get("CPU", 0)
    if capacity < cpus_per_cell:
        raise RegbenchError(f"--cpus-per-cell: {cpus_per_cell} CPUs per cell, but the Ray "
                            f"cluster has {capacity:g} CPUs")
    slots = max(1, int(capacity // cpus_per_cell))
    task = ray.remote(_train_remote).options(num_cpus=cpus_per_cell)
    queue = collections.deque(pack.plan_packs(todo, options.pack_size))
    in_flight = {}  # ObjectRef -> (cells, their claims, when they were submitted)
    try:
        while queue or in_flight:
            while queue and len(in_flight) < slots:
                members = queue.popleft()
                claims = contextlib.ExitStack()
                mine = _claim(claims, members, path, options.retry_failed)
                for _ in range(len(members) - len(mine)):
                    progress.skip()
                if not mine:
                    claims.close()
                    continue
                ref = task.remote(mine, data_dir, deterministic)
                in_flight[ref] = (mine, claims, time.monotonic())
            if not in_flight:
                break
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            cells, claims, submitted = in_flight.pop(ref)
            with claims:  # released once the rows are stored, as in run_local
                outcome, value = _result(ray, ref, cells, deterministic)
                if outcome == "error":
                    raise RegbenchError(value)
                progress.start(cells)
                progress.pack_began = submitted  # its time includes the wait for a worker
                for row in value:
                    store.append(path, row)
                    progress.finish(row)
    finally:  # interrupted or stopped by bad input: free the other cells for the next runner
        for ref, (_, claims, _) in in_flight.items():
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            claims.close()


def _result(ray, ref, cells, deterministic) -> tuple[str, object]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:  # the worker or its node died; Ray's retries spent
        from regbench import train

        return "rows", [train.failed_row(cell, error, deterministic) for cell in cells]


def _train_remote(cells, data_dir, deterministic) -> tuple[str, object]:
    """A Ray task: ("rows", result rows) or ("error", message) for bad input (RegbenchError)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from regbench import train

    train.configure(deterministic)
    try:
        return "rows", train_pack(cells, data_dir, deterministic)
    except RegbenchError as error:  # bad data or settings: the driver stops the study
        return "error", str(error)
