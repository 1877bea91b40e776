"""What each cell costs on its own, whichever strategy trained it.

The members of a pack share one wall clock, so their `epoch_s` is the pack's: in a stack the
plain and the augmented member show the same seconds. After a pack of several cells trains,
each distinct cell in it (its arm, network and training; seeds cost alike) is built alone and
timed for a few hundred of its own training steps (`probe`). Rows record `cost_step_s` and
`cost_epoch_s` (that times its steps per epoch), and the reports' cost
figures use them, so they rank techniques as they cost alone. A cell trained alone is its own
measurement (`epoch_s`, which also holds its validation pass, a few per cent of an epoch at
a 10% split). The probe runs after the pack's rows are final and reseeds nothing they
depend on.

Set `$REGBENCH_COST_PROBE=0` to skip it (the test suite does): rows then carry no cost
fields, and reports fall back to `epoch_s`, saying so.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import regbench.engine.alone as alone
from regbench.engine.data import Streams
from regbench.study import Cell

PROBE_STEPS = 256  # steps per timed call: four of the loop's 64-step executions
ROUNDS = 3
_probed: dict = {}  # (dataset, model, training, arm, backend) -> seconds per step


def enabled() -> bool:
    return os.environ.get("REGBENCH_COST_PROBE", "1") != "0"


def steps_per_epoch(cell: Cell, n_fit: int) -> int:
    return math.ceil(n_fit / cell.training.batch_size)


def epoch_seconds(cells: list[Cell], data_dir: str | None, n_fit: list[int]) -> list[tuple]:
    """(seconds per step, seconds per epoch) of each cell trained alone. Each kind of cell is
    probed once per process, the new ones of a pack together (`probe`)."""
    keys = [_key(cell) for cell in cells]
    new = {key: cell for key, cell in zip(keys, cells) if key not in _probed}
    if new:
        _probed.update(zip(new, probe(list(new.values()), data_dir)))
    return [(_probed[key], _probed[key] * steps_per_epoch(cell, n))
            for key, cell, n in zip(keys, cells, n_fit)]


def _key(cell: Cell) -> tuple:
    return (cell.dataset, cell.model, cell.training, cell.arm, cell.backend)


def probe(cells: list[Cell], data_dir: str | None) -> list[float]:
    """Seconds per training step of each cell alone: one `fit` call (as the loop makes per
    epoch) on the first `PROBE_STEPS` batches of its first epoch, the fastest of `ROUNDS`.
    Every network is built and compiled first, then the rounds interleave the cells, so a
    change of load falls on each alike. A call's fixed cost (about 0.1 s) is in the time, as
    it is in every epoch the loop trains."""
    import keras

    keras.backend.clear_session()
    probes = []
    for cell in cells:
        streams = Streams.load([cell], alone.LAYOUT, data_dir)
        steps = min(PROBE_STEPS, steps_per_epoch(cell, streams.fit.shape[1]))
        size = cell.training.batch_size
        batches = dataclasses.replace(streams, fit=streams.fit[:, :steps * size])
        probes.append((alone.build([cell], None, streams).net, batches, size, steps))
        _timed(*probes[-1][:3])  # compiles
    best = [math.inf] * len(cells)
    for _ in range(ROUNDS):
        for k, (net, batches, size, _) in enumerate(probes):
            best[k] = min(best[k], _timed(net, batches, size))
    return [seconds / steps for seconds, (*_, steps) in zip(best, probes)]


def _timed(net, batches: Streams, size: int) -> float:
    """Seconds of one `fit` call on one epoch of `batches`."""
    began = time.perf_counter()
    net.fit(batches.epoch(0, size), epochs=1, shuffle=False, verbose=0)
    return time.perf_counter() - began
