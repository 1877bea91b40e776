"""Shared fixtures: the real datasets, a study-file writer, and the command line in a subprocess.

Tests that train need MNIST: $REGBENCH_DATA_DIR (relative values are relative to the repo root,
as CI sets it), else <repo>/../shared/datasets. Without either they are skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "ablations" / "smoke.toml"
# Each trained pack's cells are timed alone afterwards (`engine.cost`): seconds per pack that
# only tests/test_cost.py needs. It turns the probe back on where it checks it.
os.environ.setdefault("REGBENCH_COST_PROBE", "0")
# Stacked convolutions one way, unmeasured (tests/test_engine.py trains both ways)
os.environ.setdefault("REGBENCH_STACKED_CONV", "separate")


def _data_dir() -> Path | None:
    env = os.environ.get("REGBENCH_DATA_DIR")
    if env:  # set: used as given (an absolute value wins `/`), so a wrong one fails loudly
        return (REPO / env).resolve()
    default = (REPO / "../shared/datasets").resolve()
    return default if (default / "mnist.npz").is_file() else None


DATA_DIR = _data_dir()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder with mnist.npz, or skip: these tests train on real MNIST."""
    if DATA_DIR is None:
        pytest.skip("real MNIST not found: REGBENCH_DATA_DIR is unset and "
                    f"{REPO.parent / 'shared/datasets'} has no mnist.npz")
    return DATA_DIR


@pytest.fixture
def write_study(tmp_path):
    """write_study(text, name="study.toml") -> path of a study file holding `text`."""
    def write(text: str, name: str = "study.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path
    return write


@pytest.fixture(scope="session")
def regbench_cli():
    """regbench_cli(*args, cwd=..., data_dir=None) -> CompletedProcess of `regbench ARGS`."""
    return cli


def cli(*args, cwd: Path, data_dir: Path | None = None, timeout: float = 300,
        **popen) -> subprocess.CompletedProcess:
    """`regbench ARGS` in a fresh interpreter, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "regbench.cli", *map(str, args)], cwd=cwd,
                          env=cli_env(data_dir), capture_output=True, text=True,
                          timeout=timeout, **popen)


@pytest.fixture(scope="session")
def start_cli():
    """start_cli(*args, cwd=..., data_dir=None, stdout=..., stderr=...) -> a running Popen."""
    def start(*args, cwd: Path, data_dir: Path | None = None, **popen) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "regbench.cli", *map(str, args)],
                                cwd=cwd, env=cli_env(data_dir), **popen)
    return start


def cli_env(data_dir: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGBENCH_")}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command line must quiet TensorFlow itself
    env.update(CI="1", REGBENCH_CACHE_DIR="/nonexistent/regbench-test-cache",
               REGBENCH_DOWNLOAD_URL="http://127.0.0.1:9/",  # never the user's cache or the web
               REGBENCH_COST_PROBE="0",  # tests/test_cost.py probes; the rest need not
               REGBENCH_STACKED_CONV="separate")
    if data_dir is not None:
        env["REGBENCH_DATA_DIR"] = str(data_dir)
    return env


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_dir):
    """`regbench run ablations/smoke.toml --store <tmp>`, once per session (3 arms x 2 seeds)."""
    work = tmp_path_factory.mktemp("smoke")
    store = work / "smoke.jsonl"
    result = cli("run", SMOKE, "--store", store, cwd=work, data_dir=data_dir)
    return result, store
