"""Where a number came from: versions, commit, backend, device, host."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

import regbench


@functools.cache
def git_commit() -> str | None:
    """The commit of the regbench checkout, with `-dirty` if it has local changes."""
    root = Path(regbench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty.strip() else "")


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The vector instruction sets that decide how fast a float32 matmul can be on an x86 CPU.
VECTOR_ISA = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
              "avx512_fp16", "amx_tile")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_isa(cpuinfo: str | None = None) -> str:
    """The CPU's vector instruction sets among VECTOR_ISA (from its first core's flags), e.g.
    "sse4_2 avx avx2 fma avx512f"; "unknown" where /proc/cpuinfo says nothing."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith(("flags", "Features")):
            flags = set(line.split(":", 1)[1].split())
            return " ".join(isa for isa in VECTOR_ISA if isa in flags) or "none of " + \
                ", ".join(VECTOR_ISA)
    return "unknown"


def cpu_mhz(cpuinfo: str | None = None) -> float | None:
    """The first core's clock as /proc/cpuinfo reports it (MHz), or None."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":", 1)[1])
    return None


BACKENDS = ("tensorflow", "jax", "torch")  # the Keras backends regbench trains on


def configured_backend() -> str:
    """The backend Keras will use, read as Keras reads it (`$KERAS_BACKEND`, else
    `$KERAS_HOME/keras.json` or ~/.keras/keras.json, else TensorFlow), without importing Keras."""
    import json

    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return json.loads((home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def check_backend() -> None:
    """One line, instead of Keras's traceback, when Keras's backend is not installed."""
    import importlib.util

    from regbench.errors import RegbenchError

    backend = configured_backend()
    if backend not in BACKENDS:  # Keras would raise a ValueError on import
        where = "KERAS_BACKEND" if os.environ.get("KERAS_BACKEND") else "keras.json's backend"
        raise RegbenchError(f"{where}: unknown Keras backend {backend!r}; regbench trains on "
                            + ", ".join(BACKENDS))
    if importlib.util.find_spec(backend) is None:
        installed = [name for name in BACKENDS if importlib.util.find_spec(name)]
        hint = (f"set KERAS_BACKEND to {' or '.join(installed)}" if installed
                else "install one of " + ", ".join(BACKENDS))
        raise RegbenchError(f"Keras backend `{backend}` is not installed: {hint}")


def backend_version(backend: str) -> str | None:
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    try:
        return __import__(module).__version__ if module else None
    except ImportError:
        return None


def accelerator(backend: str) -> str | None:
    """Name of the GPU the backend computes on, or None on CPU."""
    try:
        if backend == "jax":
            import jax
            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            return gpus[0].device_kind if gpus else None
        if backend == "torch":
            import torch
            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        if backend == "tensorflow":
            import tensorflow as tf
            gpus = tf.config.list_physical_devices("GPU")
            return gpus[0].name if gpus else None
    except Exception:  # a broken driver must not stop a run: report CPU
        return None
    return None


def fingerprint() -> dict:
    """Provenance fields common to every row written in this process."""
    import keras

    backend = keras.backend.backend()
    gpu = accelerator(backend)
    return {
        "regbench_version": regbench.__version__,
        "git_commit": git_commit(),
        "keras_version": keras.__version__,
        "backend": backend,
        "backend_version": backend_version(backend),
        "device": gpu or f"CPU: {cpu_model()}",
        "cpu_count": os.cpu_count(),
        # Timings taken while other work loads the machine are slower: keep the load beside them.
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python_version": platform.python_version(),
        "host": platform.node(),
    }
