"""The engine: cells in, rows out, whichever strategy trains them.

The contract is `fit(cells) -> rows`: one row per cell, in order, each the row the cell gets
trained alone (bit for bit in a branch pack, within floating-point rounding in a stack). Every
strategy (`alone`, `branch`, `stack`) only builds a `Program` (a compiled network and a
member view per cell); the data streams, the epoch loop, the evaluation and the row are the
same code for all of them. `plan.plan_packs` chooses packs and `plan.route` strategies from
what the registry says each strategy implements. See docs/architecture.md.
"""

from __future__ import annotations

import time

from regbench import rows
from regbench.engine import alone, branch, cost, loop, plan, stack
from regbench.engine.backend import configure
from regbench.engine.data import Streams
from regbench.engine.evaluate import evaluate
from regbench.errors import RegbenchError
from regbench.study import Cell

STRATEGIES = {module.NAME: module for module in (alone, branch, stack)}

__all__ = ["configure", "fit"]


def fit(cells: list[Cell], data_dir: str | None = None, deterministic: bool = True,
        on_epoch=None) -> list[dict]:
    """Train `cells` (one pack of `plan.plan_packs`, or any part of one) and return their
    rows in order. `on_epoch(epoch, epochs, logs)` is called after every epoch."""
    import keras

    running = keras.backend.backend()
    for cell in cells:  # a cell's key says which backend trains it
        if cell.backend != running:
            raise RegbenchError(f"a cell of the `{cell.backend}` backend cannot train on "
                                f"Keras's `{running}` backend; set KERAS_BACKEND="
                                f"{cell.backend}")
    trained = {}
    for strategy, members, grid in plan.route(cells):
        trained.update(zip(map(id, members), fit_program(
            STRATEGIES[strategy], members, grid, data_dir, deterministic, on_epoch)))
    return [trained[id(cell)] for cell in cells]


def fit_program(strategy, cells: list[Cell], grid, data_dir, deterministic: bool,
                on_epoch=None) -> list[dict]:
    """Rows of `cells` trained together by `strategy` (a module of this package)."""
    import keras

    streams = Streams.load(strategy.sources(cells, grid), strategy.LAYOUT, data_dir)
    keras.backend.clear_session()  # nothing from an earlier pack (names, graphs) carries over
    keras.utils.set_random_seed(cells[0].seed)
    program = strategy.build(cells, grid, streams)
    started = time.perf_counter()
    records = loop.train(program, cells, on_epoch)
    fit_s = time.perf_counter() - started
    evaluations = evaluate(program, cells, records)
    trained = [rows.build_row(cell, evaluation, {**record, "fit_s": fit_s,
                                                 "strategy": strategy.NAME,
                                                 "pack_size": len(cells)}, deterministic)
               for cell, record, evaluation in zip(cells, records, evaluations)]
    if len(cells) == 1 and trained[0]["epoch_s"] is not None:  # alone: its own epochs
        row = trained[0]
        row.update(cost_step_s=row["epoch_s"] / cost.steps_per_epoch(cells[0], row["n_fit"]),
                   cost_epoch_s=row["epoch_s"])
    elif len(cells) > 1 and cost.enabled():  # after the rows are final: probes train others
        costs = cost.epoch_seconds(cells, data_dir, [row["n_fit"] for row in trained])
        for row, (step, epoch) in zip(trained, costs):
            row.update(cost_step_s=step, cost_epoch_s=epoch)
    return trained
