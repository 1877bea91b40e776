"""Benchmark results: pytest-benchmark JSON -> flat rows, and the statistics over their rounds
(summaries, ratios of medians with bootstrap intervals, overheads, throughput, roofline).

One row per benchmark, with flat, plain values; its per-round samples come from the JSON's
`stats.data`, which `--benchmark-json` always writes. Intervals are computed from the samples,
not from pytest-benchmark's own summary, so that paired rounds (see `timing.Interleaved`) can
be resampled together.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from regbench.bench.cases import BASELINE
from regbench.errors import RegbenchError


def summarize(samples) -> dict:
    """Median, quartiles, IQR and number of rounds of per-round times (seconds)."""
    s = np.asarray(samples, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no samples")
    q1, median, q3 = np.percentile(s, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
            "rounds": int(s.size)}


def ratio_of_medians(numerator, denominator, paired: bool = False, confidence: float = 0.95,
                     n_resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """median(numerator) / median(denominator) with a percentile-bootstrap interval.

    Unpaired, the two samples are resampled independently. `paired`: round i of each sample
    was taken back to back (interleaved), so pairs are resampled together and load that both
    rounds of a pair shared cancels out of the interval.
    """
    from scipy import stats

    a = np.asarray(numerator, dtype=np.float64)
    b = np.asarray(denominator, dtype=np.float64)
    ratio = float(np.median(a) / np.median(b))
    if a.size < 2 or b.size < 2:
        return ratio, math.nan, math.nan

    def statistic(x, y, axis):
        return np.median(x, axis=axis) / np.median(y, axis=axis)

    if paired and a.size != b.size:
        raise ValueError(f"paired samples differ in length: {a.size} and {b.size}")
    result = stats.bootstrap((a, b), statistic, vectorized=True, paired=paired,
                             confidence_level=confidence, n_resamples=n_resamples,
                             method="percentile", rng=np.random.default_rng(seed))
    return ratio, float(result.confidence_interval.low), float(result.confidence_interval.high)



# Columns every row has (NaN/None where a kind has no such field).
COLUMNS = ["backend", "device", "kind", "problem", "batch", "technique", "where", "n", "flops",
           "flops_per_example", "first_call_s", "baseline_samples"]


# What each kind of regbench benchmark records in its extra_info, besides backend and device.
KINDS = {"step": ("problem", "batch", "technique"), "fed_step": ("problem", "batch", "where"),
         "pipeline": ("problem", "batch", "where"), "matmul": ("n",)}
TEXTS = ("backend", "device", "problem", "technique", "where")
COUNTS = ("batch", "n")                                   # integers > 0
NUMBERS = ("flops", "flops_per_example", "first_call_s")  # finite numbers >= 0
MACHINE_TEXTS = ("backend", "keras_backend", "gpu")


def load_run(path: Path) -> tuple[list[dict], dict]:
    """(rows, machine fingerprint) of one pytest-benchmark JSON file written by the suite.
    A file of another shape is one RegbenchError naming the file and what is wrong."""
    raw = _read_json(Path(path))
    if not isinstance(raw, dict) or not isinstance(raw.get("benchmarks"), list):
        raise RegbenchError(f"{path}: not a pytest-benchmark JSON file (expected an object "
                            "with a `benchmarks` list)")
    machine = _machine(path, raw.get("machine_info", {}))
    rows = [row for i, b in enumerate(raw["benchmarks"]) if (row := _row(path, i, b))]
    if not rows:
        raise RegbenchError(f"{path}: no regbench benchmarks in it")
    return rows, machine


MAX_JSON_BYTES = 256 * 2**20  # a benchmark file of thousands of runs is a few MB


def _read_json(path: Path):
    from regbench import paths

    if path.is_dir():
        raise RegbenchError(f"{path}: is a folder; give a pytest-benchmark JSON file")
    info = paths.existing_file(path, "", "a pytest-benchmark JSON file")  # no FIFO, device
    if info is None:
        raise RegbenchError(f"{path}: no such file")
    if info.st_size > MAX_JSON_BYTES:
        raise RegbenchError(f"{path}: {info.st_size / 2**20:,.0f} MiB, more than any "
                            f"pytest-benchmark JSON file (at most {MAX_JSON_BYTES // 2**20} MiB)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegbenchError(f"{path}: no such file") from None
    except (OSError, ValueError, RecursionError) as error:  # unreadable, not UTF-8, not JSON
        message = " ".join(str(error).split()) or type(error).__name__
        raise RegbenchError(f"{path}: not a pytest-benchmark JSON file ({message})") from None


def _machine(path, machine_info) -> dict:
    """The fingerprint regbench stored in machine_info (empty if none)."""
    if not isinstance(machine_info, dict):
        raise RegbenchError(f"{path}: machine_info must be an object")
    machine = machine_info.get("regbench", {})
    if not isinstance(machine, dict):
        raise RegbenchError(f"{path}: machine_info.regbench must be an object")
    for key in MACHINE_TEXTS:
        if key in machine and not isinstance(machine[key], str):
            raise RegbenchError(f"{path}: machine_info.regbench.{key} must be text, found "
                                f"{_shown(machine[key])}")
    return machine


def _row(path, index: int, benchmark) -> dict | None:
    """The flat row of one benchmark, None for one that is not regbench's (no `kind`)."""
    if not isinstance(benchmark, dict):
        raise RegbenchError(f"{path}: benchmarks[{index}] must be an object, found "
                            f"{_shown(benchmark)}")
    info = benchmark.get("extra_info") or {}
    if not isinstance(info, dict):
        raise RegbenchError(f"{path}: benchmarks[{index}].extra_info must be an object")
    if "kind" not in info:
        return None  # not one of regbench's benchmarks
    name = benchmark.get("name")
    if not isinstance(name, str) or not name:
        raise RegbenchError(f"{path}: benchmarks[{index}] has no `name` (text)")
    where = f"{path}: {name}"
    _check_info(where, info)
    stats = benchmark.get("stats")
    if not isinstance(stats, dict):
        raise RegbenchError(f"{where}: `stats` must be an object with the per-round samples "
                            "(stats.data)")
    samples = stats.get("data")
    if not samples:
        raise RegbenchError(f"{where} has no per-round samples (stats.data)")
    _check_samples(where, "stats.data", samples)
    if "baseline_samples" in info:  # rounds interleaved with the benchmark's own: one each
        _check_samples(where, "extra_info.baseline_samples", info["baseline_samples"])
        if len(info["baseline_samples"]) != len(samples):
            raise RegbenchError(f"{where}: extra_info.baseline_samples has "
                                f"{len(info['baseline_samples'])} rounds and stats.data "
                                f"{len(samples)}; paired rounds come one of each")
    return {"name": name, **info, **summarize(samples), "samples": samples}


def _check_info(where: str, info: dict) -> None:
    kind = info["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise RegbenchError(f"{where}: unknown kind {_shown(kind)}; expected one of "
                            f"{', '.join(KINDS)}")
    for key in ("backend", "device", *KINDS[kind]):
        if key not in info:
            raise RegbenchError(f"{where}: extra_info lacks `{key}`")
    for key in TEXTS:
        if key in info and not (isinstance(info[key], str) and info[key]):
            raise RegbenchError(f"{where}: extra_info.{key} must be text, found "
                                f"{_shown(info[key])}")
    for key in COUNTS:
        if key in info and not (_is_number(info[key]) and info[key] == int(info[key]) > 0):
            raise RegbenchError(f"{where}: extra_info.{key} must be an integer > 0, found "
                                f"{_shown(info[key])}")
    for key in NUMBERS:
        if key in info and info[key] is not None and not (
                _is_number(info[key]) and info[key] >= 0):
            raise RegbenchError(f"{where}: extra_info.{key} must be a finite number >= 0, "
                                f"found {_shown(info[key])}")


def _check_samples(where: str, field: str, samples) -> None:
    """Per-round times: a non-empty list of finite numbers > 0 (seconds)."""
    is_list = isinstance(samples, list) and samples
    bad = [s for s in samples if not (_is_number(s) and s > 0)] if is_list else [samples]
    if bad:
        raise RegbenchError(f"{where}: {field} must be a list of per-round times in seconds "
                            f"(finite numbers > 0), found {_shown(bad[0])}")


def _is_number(value) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _shown(value) -> str:
    """A value from the file, short and on one line, for a message."""
    text = " ".join(json.dumps(value).split())
    return text if len(text) <= 40 else text[:37] + "..."


def load_runs(paths) -> tuple:
    """A DataFrame of rows from several JSON files (e.g. one per backend) and their
    fingerprints, one per file."""
    import pandas as pd

    runs = [(path, *load_run(path)) for path in paths]
    # One order whatever the order of the arguments: by backend, then file.
    runs.sort(key=lambda run: (_backend_rank(run[2]), str(run[0])))
    rows, machines, seen = [], [], {}
    for i, (path, r, machine) in enumerate(runs):
        for row in r:  # one run per case: two would be averaged into one line unseen
            case = (row.get("backend"), row.get("name"))
            if seen.setdefault(case, (i, path))[0] != i:
                raise RegbenchError(f"{path}: {case[1]} [{case[0]}] is also in "
                                    f"{seen[case][1]}; give one run of each case "
                                    "(bench-compare compares runs)")
        rows += r
        machines.append({"file": str(path), **machine})
    df = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in df:
            df[column] = None
    return df, machines


def _backend_rank(machine: dict) -> int:
    from regbench.provenance import BACKENDS

    backend = machine.get("keras_backend") or machine.get("backend")
    return BACKENDS.index(backend) if backend in BACKENDS else len(BACKENDS)


def derive(df):
    """Add overhead ratios with 95% intervals, examples per second, achieved GFLOP/s and its
    fraction of the measured matmul peak.

    A step's ratio is to `none` at the same backend, device, problem and batch: to the `none`
    rounds interleaved with its own (`baseline_samples`, paired) where the run has them, else
    to the `none` benchmark's rounds (unpaired). Pipelines compare to `plain`, fed steps to
    augmentation in the `model`.
    """
    import pandas as pd

    df = df.copy()
    for column in ("batch", "n", "flops", "flops_per_example", "first_call_s"):
        df[column] = pd.to_numeric(df[column], errors="coerce").astype(float)
    is_matmul = df["kind"] == "matmul"
    df["examples_per_s"] = df["batch"] / df["median"]
    df["gflops"] = (df["flops"].where(is_matmul, df["flops_per_example"] * df["batch"])
                    / df["median"] / 1e9)
    df["compile_s"] = (df["first_call_s"] - df["median"]).clip(lower=0.0)
    peak = df[is_matmul].groupby(["backend", "device"])["gflops"].max()
    df["peak_gflops"] = [peak.get((b, d), math.nan) for b, d in zip(df["backend"], df["device"])]
    df["roofline"] = (df["gflops"] / df["peak_gflops"]).where(~is_matmul)
    for column in ("ratio", "ratio_low", "ratio_high", "baseline_rounds"):
        df[column] = math.nan
    base_of = {"step": ("technique", BASELINE), "fed_step": ("where", "model"),
               "pipeline": ("where", "plain")}
    for (kind, *_), group in df.groupby(["kind", "backend", "device", "problem", "batch"],
                                        dropna=False):
        if kind not in base_of:
            continue
        column, value = base_of[kind]
        base = group[group[column] == value]
        if base.empty and not group["baseline_samples"].map(lambda v: isinstance(v, list)).all():
            continue
        for index, row in group.iterrows():
            paired = isinstance(row["baseline_samples"], list)
            base_samples = row["baseline_samples"] if paired else base.iloc[0]["samples"]
            ratio, low, high = ratio_of_medians(row["samples"], base_samples, paired=paired)
            df.loc[index, ["ratio", "ratio_low", "ratio_high", "baseline_rounds"]] = (
                ratio, low, high, len(base_samples))
    return df

