"""Benchmarks of regbench itself: the training-step suite and the whole-study grid.

The suite lives in `benchmarks/` (pytest-benchmark); this package holds what it and the
`bench-report`, `bench-compare` and `bench-grid` commands share, one job per module:

- `cases`: the step grid (problems, techniques, batch sizes, devices) and timing profiles;
- `timing`: building a case and timing it (rounds, interleaved baselines, matmul peak);
- `machine`: the backend, its devices and the machine fingerprint stored with a run;
- `results`: pytest-benchmark JSON -> flat rows, and the statistics over their rounds;
- `report`: the report (README.md and report.html), plot and CSV of `bench-report`;
- `comparison`: `bench-compare`, two runs on one machine;
- `grid`: `bench-grid`, whole studies against the naive loop, one child process each.

Multiply-adds are counted by `regbench.macs`. Importing the package starts no Keras backend:
only `timing`, `machine` and `grid` need one, and they import Keras when they run.
"""

from regbench.bench.comparison import compare, format_comparison
from regbench.bench.report import write_report
from regbench.bench.results import load_runs

__all__ = ["compare", "format_comparison", "load_runs", "write_report"]
