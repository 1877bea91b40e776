"""Where the numbers come from: the active Keras backend, its devices, and the machine
fingerprint stored with every benchmark run.

Timings only compare on one machine under similar load, so each run records its CPU, cores,
GPU and driver, library versions and load averages beside the numbers.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import shutil
import subprocess

from regbench import provenance


def backend() -> str:
    import keras

    return keras.backend.backend()


@functools.cache
def gpu_name() -> str | None:
    """The GPU the active Keras backend would compute on, or None."""
    return provenance.accelerator(backend())


def visible(device: str) -> bool:
    return device == "cpu" or gpu_name() is not None


def device_name(device: str) -> str:
    return (gpu_name() or "none") if device == "gpu" else provenance.cpu_model()


def nvidia_driver() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def load_average() -> str:
    """The 1, 5 and 15-minute load averages: above the core count, other processes compete."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_fingerprint() -> dict:
    """Where the numbers came from: CPU, cores, GPU and driver, library versions, backend."""
    gpu = gpu_name()
    out = provenance.fingerprint()
    out.update({
        "cpu_model": provenance.cpu_model(),
        "cpu_isa": provenance.cpu_isa(),
        "cpu_mhz": provenance.cpu_mhz(),
        "cpu_cores": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "gpu": gpu or "none available",
        "gpu_driver": nvidia_driver() or "none",
        "keras_backend": backend(),
        "load_average": load_average(),
    })
    for package in ("numpy", "scipy", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch",
                    "pytest-benchmark"):
        version = _version(package)
        if version:
            out[f"version_{package}"] = version
    return out
