"""What each cell costs on its own, whichever strategy trained it.

The members of a pack share one wall clock, so their `epoch_s` is the pack's: in a stack the
plain and the augmented member show the same seconds. After a pack trains, each distinct
cell in it (its arm, network and training; seeds cost alike) is built alone and timed for a
few of its own training steps (`probe`). Rows record that as `cost_step_s` and `cost_epoch_s`
(the step time times the steps of one epoch), and the reports' cost figures use it, so they
rank techniques as they cost alone. The probe runs after the pack's rows are final and
reseeds nothing they depend on.

Set `$REGBENCH_COST_PROBE=0` to skip it (the test suite does): rows then carry no cost
fields, and reports fall back to `epoch_s`, saying so.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

from regbench.engine import alone
from regbench.engine.data import Streams
from regbench.study import Cell

PROBE_STEPS = 128  # training steps per timed call: two calls of the loop's 64 steps each
_probed: dict = {}  # (dataset, model, training, arm, backend) -> seconds per step


def enabled() -> bool:
    return os.environ.get("REGBENCH_COST_PROBE", "1") != "0"


def steps_per_epoch(cell: Cell, n_fit: int) -> int:
    return math.ceil(n_fit / cell.training.batch_size)


def step_seconds(cell: Cell, data_dir: str | None) -> float:
    """Seconds per training step of `cell` trained alone (once per process and kind of cell)."""
    key = (cell.dataset, cell.model, cell.training, cell.arm, cell.backend)
    if key not in _probed:
        _probed[key] = probe(cell, data_dir)
    return _probed[key]


def probe(cell: Cell, data_dir: str | None) -> float:
    """Time `cell` alone on the first `PROBE_STEPS` batches of its first epoch: a call that
    compiles, then the faster of two timed calls (one `fit` call, as the loop makes per
    epoch)."""
    import keras

    streams = Streams.load([cell], alone.LAYOUT, data_dir)
    steps = min(PROBE_STEPS, steps_per_epoch(cell, streams.fit.shape[1]))
    streams = dataclasses.replace(streams, fit=streams.fit[:, :steps * cell.training.batch_size])
    keras.backend.clear_session()
    net = alone.build([cell], None, streams).net

    def timed() -> float:
        began = time.perf_counter()
        net.fit(streams.epoch(0, cell.training.batch_size), epochs=1, shuffle=False, verbose=0)
        return time.perf_counter() - began

    timed()  # compiles
    return min(timed(), timed()) / steps
