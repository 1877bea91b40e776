"""A cell whose training fails as it would out of memory, for tests of failed cells.

No accepted study setting makes Keras raise, so a failing cell is made here: with
$REGBENCH_TEST_FAIL_ARM set to an arm's label, building the model of a pack that holds a cell
of that arm raises `MemoryError(MESSAGE)`, as running out of memory there would. Everything
else is the real thing: the executor claims, trains and stores; the engine loads the data,
routes the pack and calls the strategy's `build`, which is where the error is raised. A pack
that holds the cell raises as a whole, so the executor trains its cells one at a time and only
that cell is stored as failed.

Tests start real processes (`regbench run`, a driver script, the worker processes it spawns,
Ray workers): `environment(folder, arm)` writes a `sitecustomize.py` into `folder` and returns
the environment variables that make every Python process started with them (and the processes
those start) fail that arm. Without $REGBENCH_TEST_FAIL_ARM nothing is changed.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import math
import os
import sys
from pathlib import Path

VARIABLE = "REGBENCH_TEST_FAIL_ARM"
MESSAGE = "simulated: out of memory while building the model"
STORED_ERROR = f"MemoryError: {MESSAGE}"  # the `error` of the cell's row (`rows.failed_row`)

# Written to <folder>/sitecustomize.py: Python imports it when it starts, before any of
# regbench, and it loads this file and installs the fault.
SITECUSTOMIZE = """\
import importlib.util, os, sys
if os.environ.get({variable!r}):
    spec = importlib.util.spec_from_file_location("regbench_test_faults", {path!r})
    faults = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(faults)
    faults.install(os.environ[{variable!r}])
"""


def failing(build, arm: str):
    """`build(cells, grid, streams)` that raises MemoryError when a cell is of arm `arm`."""
    @functools.wraps(build)
    def build_or_run_out_of_memory(cells, *args, **kwargs):
        if any(cell.arm.label == arm for cell in cells):
            raise MemoryError(MESSAGE)
        return build(cells, *args, **kwargs)
    return build_or_run_out_of_memory


def inject(engine, arm: str) -> None:
    """Make every strategy of `engine` (the module `regbench.engine`) fail `arm`."""
    for strategy in engine.STRATEGIES.values():
        strategy.build = failing(strategy.build, arm)


class _WhenEngineImported(importlib.abc.MetaPathFinder):
    """Finds `regbench.engine` as Python would, and injects the fault once it is executed:
    nothing is imported before the program imports the engine itself."""

    def __init__(self, arm: str):
        self.arm = arm

    def find_spec(self, name, path=None, target=None):
        if name != "regbench.engine":
            return None
        sys.meta_path.remove(self)  # one engine per process; the next finders find it
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            inject(module, self.arm)

        spec.loader.exec_module = exec_module
        return spec


def install(arm: str) -> None:
    """Fail `arm` in this process: now if the engine is imported, else when it is."""
    if "regbench.engine" in sys.modules:
        inject(sys.modules["regbench.engine"], arm)
    else:
        sys.meta_path.insert(0, _WhenEngineImported(arm))


def environment(folder: Path, arm: str) -> dict[str, str]:
    """Variables for a process whose cells of arm `arm` fail (add them to its environment)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(
        variable=VARIABLE, path=str(Path(__file__).resolve())))
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {VARIABLE: arm, "PYTHONPATH": os.pathsep.join(paths)}


def assert_close(a, b, where: str = "row") -> None:
    """`a` equals `b`, floats within 1e-5 relative or 1e-6 absolute (a gap is a difference of
    two such values), at every depth."""
    if isinstance(b, float) and isinstance(a, float):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (where, a, b)
    elif isinstance(b, dict) and isinstance(a, dict):
        assert set(a) == set(b), where
        for k in b:
            assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(b, list) and isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)
