"""pytest-benchmark settings for the training-step suite (see `regbench.bench`).

Run as `nox -s benchmarks`, or by hand:

    python -m pytest benchmarks --benchmark-json reports/benchmarks/raw/tensorflow.json

Profiles: `default` (about 0.5 s of timed steps per benchmark and as much again for its
interleaved `none` rounds; under 10 minutes on 2 idle CPU cores) or `full` (about 5 s):
`--full` or REGBENCH_BENCH_PROFILE=full. The profile, not `--benchmark-max-time` /
`--benchmark-min-rounds`, sets the rounds (`timing.plan_rounds`).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

import pytest  # noqa: E402

from regbench.bench import cases, machine, timing  # noqa: E402
from regbench.errors import RegbenchError  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", default=False,
                     help="regbench: the full benchmark profile (longer timing per benchmark)")


DETERMINISTIC = True  # as `regbench run` trains by default


LOAD_AT_START = machine.load_average()


def pytest_configure(config):
    from regbench import engine

    engine.configure(DETERMINISTIC)


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["regbench"] = {
        **machine.machine_fingerprint(), "load_average_at_start": LOAD_AT_START,
        "deterministic": DETERMINISTIC,
        "optimizer": f"{cases.TRAINING.optimizer} lr={cases.TRAINING.learning_rate}",
        "profile": cases.profile("full" if config.getoption("full") else None).name}


def pytest_collection_modifyitems(config, items):
    """GPU cases are skipped, before any setup, when the backend sees no GPU."""
    if machine.visible("gpu"):
        return
    skip = pytest.mark.skip(reason=f"no GPU visible to the {machine.backend()} backend")
    for item in items:
        if getattr(item, "callspec", None) and item.callspec.params.get("device") == "gpu":
            item.add_marker(skip)


@pytest.fixture(scope="session")
def profile(request) -> cases.Profile:
    try:
        return cases.profile("full" if request.config.getoption("full") else None)
    except RegbenchError as error:
        raise pytest.UsageError(str(error)) from None


@pytest.fixture(autouse=True)
def fresh_keras():
    """Each benchmark starts from an empty Keras session (no graphs or models of the last)."""
    import keras

    keras.backend.clear_session(free_memory=False)  # the baseline below stays usable


_baseline: dict = {}  # (backend, device, problem, batch) -> warmed-up `none` step; one kept


@pytest.fixture
def baseline_step(profile):
    """baseline_step(device, problem, batch): a warmed-up step of a `none` model, built once
    per (device, problem, batch) and shared by that group's tests (call inside device_scope)."""
    def get(device: str, problem: str, batch: int):
        key = (machine.backend(), device, problem, batch)
        if key not in _baseline:
            _baseline.clear()
            net = timing.build(problem, cases.BASELINE, batch)
            step = timing.train_step(net, *timing.on_device(*timing.batch_arrays(problem, batch)))
            timing.time_calls(step, 1 + profile.warmup_steps)
            _baseline[key] = step
        return _baseline[key]
    return get


@pytest.fixture
def timed(benchmark, profile):
    """timed(fn, info, baseline=None): the first call and warm-up untimed, then the profile's
    rounds, interleaved with rounds of `baseline` if given (its times go into extra_info as
    `baseline_samples`), so load from other processes hits both. The case, the first call's
    seconds and the plan go into extra_info (and the JSON)."""
    def run(fn, info: dict, baseline=None) -> None:
        first = timing.time_calls(fn, 1)[0]
        warm = sorted(timing.time_calls(fn, profile.warmup_steps))
        rounds, iterations = timing.plan_rounds(warm[len(warm) // 2], profile,
                                                single=baseline is not None)
        benchmark.extra_info.update(info)
        benchmark.extra_info.update({
            "backend": machine.backend(), "device_name": machine.device_name(info["device"]),
            "first_call_s": first, "warmup_steps": profile.warmup_steps,
            "iterations": iterations, "profile": profile.name, "seed": cases.SEED})
        if baseline is None:
            benchmark.pedantic(fn, rounds=rounds, iterations=iterations)
            return
        pairs = timing.Interleaved(baseline)
        benchmark.pedantic(fn, setup=pairs.setup, teardown=pairs.teardown, rounds=rounds)
        benchmark.extra_info["baseline_samples"] = [float(f"{t:.4g}") for t in pairs.samples]
    return run
