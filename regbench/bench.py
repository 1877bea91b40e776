"""Training-step benchmarks: the grid, timing helpers, statistics, report, compare.

The suite itself lives in `benchmarks/` (pytest-benchmark); this module holds what it and the
`bench-report` / `bench-compare` commands share. Keras is imported late, inside the timing
helpers only, so reports and comparisons never start a backend.

What is timed: one optimizer step (`model.train_on_batch`) on a fixed, seeded batch that already
sits on the device, in steady state. The first call (build, tracing, compilation, one step) and
a few warm-up steps run before timing; the first call is reported on its own. `train_on_batch`
returns Python floats, so every timed call ends only when the device has finished.

FLOP convention (`regbench.macs`): multiply-adds (MACs) of every Dense and Conv2D layer per
example; one training step counts 6 * MACs per example. The optimizer update and everything a
technique adds are not counted: a technique adds time but no counted FLOPs, so its achieved
GFLOP/s falls by its overhead.

One results row per benchmark (flat, plain values); per-round samples come from the
pytest-benchmark JSON (`stats.data`, always written by `--benchmark-json`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regbench import provenance
from regbench.document import markdown_table
from regbench.errors import RegbenchError
from regbench.recipe import (
    L1,
    L1L2,
    L2,
    Arm,
    Augmentation,
    BatchNorm,
    Dropout,
    MaxNorm,
    Model,
    Training,
)

# --- the grid: plain data ----------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    dataset: str
    model: Model
    architecture: str  # what a reader recognises


PROBLEMS: dict[str, Problem] = {
    # The Keras tutorial's MLP.
    "mnist_mlp": Problem("mnist", Model(hidden=(64,)), "784-64-10"),
    # Srivastava et al. (2014), Table 9.
    "mnist_mlp_wide": Problem("mnist", Model(hidden=(1024, 1024, 2048)),
                              "784-1024-1024-2048-10"),
    "cifar10_cnn": Problem("cifar10", Model(name="cnn", hidden=(128,), filters=(32, 64)),
                           "conv3x3(32)-pool-conv3x3(64)-pool-128-10"),
}

# Technique settings are the recipe defaults: they do not change the cost of a step.
TECHNIQUES: dict[str, tuple] = {
    "none": (),
    "l1": (L1(),),
    "l2": (L2(),),
    "l1_l2": (L1L2(),),
    "dropout": (Dropout(),),
    "batchnorm": (BatchNorm(),),
    "augmentation": (Augmentation(),),
    "max_norm": (MaxNorm(),),
    "l2+dropout+batchnorm+augmentation": (L2(), Dropout(), BatchNorm(), Augmentation()),
}
BASELINE = "none"
BATCH_SIZES = (32, 128, 512)
DEVICES = ("cpu", "gpu")
# Square float32 matmuls whose best median throughput is the device's peak for the roofline.
MATMUL_SIZES = {"cpu": (1024, 2048, 4096), "gpu": (4096, 8192, 16384)}
SEED = 0
TRAINING = Training()  # regbench's defaults: Adam, lr 1e-3; the batch size is set per case


@dataclass(frozen=True)
class Profile:
    """How long each benchmark is timed (after its first call and warm-up)."""
    name: str
    target_s: float    # seconds of timed steps per benchmark
    min_rounds: int    # even when one step takes longer than target_s / min_rounds
    max_rounds: int    # caps the samples stored in the JSON; longer rounds fill target_s
    warmup_steps: int  # untimed steps after the first call
    min_round_s: float  # a round repeats the step until it lasts this long (timer, dispatch)


PROFILES = {
    "default": Profile("default", target_s=0.5, min_rounds=7, max_rounds=150, warmup_steps=2,
                       min_round_s=0.002),
    "full": Profile("full", target_s=5.0, min_rounds=30, max_rounds=500, warmup_steps=10,
                    min_round_s=0.002),
}


def profile(name: str | None = None) -> Profile:
    """The named profile, else $REGBENCH_BENCH_PROFILE, else `default`."""
    name = name or os.environ.get("REGBENCH_BENCH_PROFILE") or "default"
    if name not in PROFILES:
        raise RegbenchError(f"unknown benchmark profile {name!r}; valid: {', '.join(PROFILES)}")
    return PROFILES[name]


def arm(technique: str) -> Arm:
    return Arm(technique, TECHNIQUES[technique])


# --- timing: Keras built as late as possible ----------------------------------------------------


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


def device_scope(device: str):
    """Place variables, data and computation on `device` ("cpu" or "gpu"), any backend."""
    import keras

    return keras.device(f"{device}:0")


def batch_arrays(problem: str, batch: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """A generated batch of the problem's shape: pixels uniform in [0, 1), labels 0..classes-1."""
    from regbench import data

    info = data.DATASETS[PROBLEMS[problem].dataset]
    rng = np.random.default_rng([seed, batch])
    x = rng.random((batch, *info.image_shape), dtype=np.float32)
    y = rng.integers(0, info.classes, batch).astype(np.int32)
    return x, y


def make_model(problem: str, technique: str, seed: int = SEED):
    """The regbench model of one case, as `train.run_cell` builds it."""
    import keras

    from regbench import data
    from regbench.models import build_model

    p = PROBLEMS[problem]
    info = data.DATASETS[p.dataset]
    keras.utils.set_random_seed(seed)
    return build_model(p.model, arm(technique), info.image_shape, info.classes, seed,
                       flip_ok=info.flip_ok)


def build(problem: str, technique: str, batch: int, seed: int = SEED):
    """The model of one case, compiled exactly as `train.run_cell` compiles it."""
    from regbench.train import compile_model

    net = make_model(problem, technique, seed)
    compile_model(net, dataclasses.replace(TRAINING, batch_size=batch))
    return net


def on_device(*arrays):
    """Arrays as backend tensors on the current device (inside `device_scope`)."""
    import keras

    return tuple(keras.ops.convert_to_tensor(a) for a in arrays)


def train_step(net, x, y):
    """One optimizer step; returns when the device has finished (the logs are Python floats)."""
    return lambda: net.train_on_batch(x, y)


def time_calls(fn, n: int) -> list[float]:
    """Seconds taken by each of n calls of fn."""
    out = []
    for _ in range(n):
        began = time.perf_counter()
        fn()
        out.append(time.perf_counter() - began)
    return out


class Interleaved:
    """Rounds of a baseline interleaved with a benchmark's rounds, for pytest-benchmark's
    `pedantic(setup=..., teardown=...)`: one call of `baseline` per round, before the round on
    even rounds and after it on odd ones (ABBA order, so neither position biases the pairs).
    `samples[i]` is paired with round i of the benchmark."""

    def __init__(self, baseline):
        self.baseline, self.samples, self.round = baseline, [], 0

    def _time(self):
        self.samples.append(time_calls(self.baseline, 1)[0])

    def setup(self):
        if self.round % 2 == 0:
            self._time()

    def teardown(self):
        if self.round % 2 == 1:
            self._time()
        self.round += 1


def plan_rounds(step_s: float, prof: Profile, single: bool = False) -> tuple[int, int]:
    """(rounds, iterations per round) that fill about `prof.target_s`; `single`: one step
    per round (rounds interleaved with a baseline's)."""
    step_s = max(step_s, 1e-7)
    iterations = 1 if single else max(1, math.ceil(prof.min_round_s / step_s),
                                      math.ceil(prof.target_s / (prof.max_rounds * step_s)))
    rounds = round(prof.target_s / (iterations * step_s))
    return min(max(rounds, prof.min_rounds), prof.max_rounds), iterations


def matmul_operands(n: int, seed: int = SEED):
    rng = np.random.default_rng([seed, n])
    return on_device(rng.standard_normal((n, n), dtype=np.float32),
                     rng.standard_normal((n, n), dtype=np.float32))


def matmul(a, b) -> float:
    """a @ b, waiting for the device: one element of the product is copied to the host."""
    import keras

    return float(keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0]))


def augmentation_layers(problem: str, seed: int = SEED) -> list:
    """The Keras preprocessing layers regbench puts at the front of the `augmentation` model."""
    import keras

    kinds = (keras.layers.RandomRotation, keras.layers.RandomTranslation, keras.layers.RandomFlip)
    net = make_model(problem, "augmentation", seed)
    return [layer for layer in net.layers if isinstance(layer, kinds)]


def input_pipeline(x, y, layers: list, prefetch: bool):
    """tf.data on the host CPU: the fixed batch repeated, with `layers` mapped over it in
    training mode (parallel map, as a tf.data pipeline would run them)."""
    import tensorflow as tf

    def augment(images, labels):
        for layer in layers:  # layer by layer: Keras runs preprocessing layers in tf.data
            images = layer(images, training=True)  # with TF, whatever the Keras backend
        return images, labels

    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds


def batches(dataset):
    """An iterator of batches the active backend can train on."""
    return iter(dataset) if backend() == "tensorflow" else dataset.as_numpy_iterator()


def fed_step(net, iterator):
    """One optimizer step on the next batch of an input pipeline."""
    def step():
        x, y = next(iterator)
        return net.train_on_batch(x, y)
    return step


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
    import keras

    gpu = gpu_name()
    out = provenance.fingerprint()
    out.update({
        "cpu_model": provenance.cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "gpu": gpu or "none available",
        "gpu_driver": nvidia_driver() or "none",
        "keras_backend": keras.backend.backend(),
        "load_average": load_average(),
    })
    for package in ("numpy", "scipy", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch",
                    "pytest-benchmark"):
        version = _version(package)
        if version:
            out[f"version_{package}"] = version
    return out


# --- statistics: pure ---------------------------------------------------------------------------


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


# --- results: pytest-benchmark JSON -> flat rows ------------------------------------------------

# Columns every row has (NaN/None where a kind has no such field).
COLUMNS = ["backend", "device", "kind", "problem", "batch", "technique", "where", "n", "flops",
           "flops_per_example", "first_call_s", "baseline_samples"]


def load_run(path: Path) -> tuple[list[dict], dict]:
    """(rows, machine fingerprint) of one pytest-benchmark JSON file written by the suite."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RegbenchError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise RegbenchError(f"{path}: not a pytest-benchmark JSON file ({error})") from None
    if not isinstance(raw, dict) or "benchmarks" not in raw:
        raise RegbenchError(f"{path}: not a pytest-benchmark JSON file (no `benchmarks`)")
    rows = []
    for b in raw["benchmarks"]:
        info = b.get("extra_info") or {}
        if "kind" not in info:
            continue  # not one of regbench's benchmarks
        samples = b["stats"].get("data")
        if not samples:
            raise RegbenchError(f"{path}: {b['name']} has no per-round samples (stats.data)")
        row = {"name": b["name"], **info, **summarize(samples), "samples": samples}
        rows.append(row)
    if not rows:
        raise RegbenchError(f"{path}: no regbench benchmarks in it")
    return rows, raw.get("machine_info", {}).get("regbench", {})


def load_runs(paths) -> tuple:
    """A DataFrame of rows from several JSON files (e.g. one per backend) and their
    fingerprints, one per file."""
    import pandas as pd

    rows, machines = [], []
    for path in paths:
        r, machine = load_run(path)
        rows += r
        machines.append({"file": str(path), **machine})
    df = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in df:
            df[column] = None
    return df, machines


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


# --- report -------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return "" if seconds is None or not math.isfinite(seconds) else f"{seconds * 1e3:.3g}"


def _ratio(row, n: bool = False) -> str:
    if not math.isfinite(row["ratio"]):
        return ""
    text = f"{row['ratio']:.2f} [{row['ratio_low']:.2f}, {row['ratio_high']:.2f}]"
    return text + (f" n={row['rounds']}" if n else "")


def _num(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:,.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"


def stepmarkdown_table(df) -> str:
    """Markdown: one row per (batch, technique) of one problem, device and backend."""
    header = ["batch", "technique", "median ms", "IQR ms", "rounds", "overhead vs none [95% CI]",
              "examples/s", "GFLOP/s", "of peak", "compile s"]
    order = {t: i for i, t in enumerate(TECHNIQUES)}
    df = df.assign(_t=df["technique"].map(order)).sort_values(["batch", "_t"])
    lines = [[str(int(r["batch"])), r["technique"], _ms(r["median"]), _ms(r["iqr"]),
              str(r["rounds"]), _ratio(r), _num(r["examples_per_s"]), _num(r["gflops"]),
              f"{r['roofline']:.1%}" if math.isfinite(r["roofline"]) else "",
              f"{r['compile_s']:.2f}"] for _, r in df.iterrows()]
    return markdown_table(header, lines)


def headlinemarkdown_table(df) -> str:
    """Markdown: overhead ratio [95% CI] per technique (rows) and problem/batch (columns);
    the `none` row is the null check (`none` against its own paired `none` model)."""
    steps = df[df["kind"] == "step"]
    columns = [(p, b) for p in PROBLEMS for b in BATCH_SIZES
               if not steps[(steps["problem"] == p) & (steps["batch"] == b)].empty]
    header = ["technique"] + [f"{p} b{b}" for p, b in columns]
    lines = []
    for technique in TECHNIQUES:
        line = [f"{technique} (null check)" if technique == BASELINE else technique]
        for p, b in columns:
            hit = steps[(steps["problem"] == p) & (steps["batch"] == b)
                        & (steps["technique"] == technique)]
            line.append(_ratio(hit.iloc[0], n=True) if not hit.empty else "")
        lines.append(line)
    return markdown_table(header, lines)


def augmentationmarkdown_table(df, device: str) -> str:
    """Markdown: what augmentation costs per batch where it runs, per problem and batch.

    `df`: rows of one backend; steps on `device`, the tf.data pipeline always on the host CPU.
    """
    header = ["problem", "batch", "in model: step(augmentation) - paired step(none), ms",
              "tf.data: augmented - plain batch, ms", "fed step, aug. in model, ms",
              "fed step, aug. in tf.data, ms", "tf.data / model [95% CI]"]

    def pick(kind, column, value, problem, batch):
        hit = df[(df["kind"] == kind) & (df["problem"] == problem) & (df["batch"] == batch)
                 & (df[column] == value) & ((df["device"] == device) | (kind == "pipeline"))]
        return hit.iloc[0] if not hit.empty else None

    def difference(a, b) -> str:
        if a is not None and isinstance(a.get("baseline_samples"), list):  # paired `none`
            return _ms(a["median"] - float(np.median(a["baseline_samples"])))
        return _ms(a["median"] - b["median"]) if a is not None and b is not None else ""

    lines = []
    for problem in PROBLEMS:
        for batch in BATCH_SIZES:
            aug, none = (pick("step", "technique", t, problem, batch)
                         for t in ("augmentation", BASELINE))
            piped, plain = (pick("pipeline", "where", w, problem, batch)
                            for w in ("augmented", "plain"))
            in_model, in_data = (pick("fed_step", "where", w, problem, batch)
                                 for w in ("model", "pipeline"))
            if all(r is None for r in (aug, piped, in_model)):
                continue
            lines.append([problem, str(batch), difference(aug, none), difference(piped, plain),
                          _ms(in_model["median"]) if in_model is not None else "",
                          _ms(in_data["median"]) if in_data is not None else "",
                          _ratio(in_data) if in_data is not None else ""])
    return markdown_table(header, lines)


def plot_overhead(df, ax=None):
    """Overhead ratio to `none` per technique (x), one colour per batch size, with 95% intervals
    (`none` itself: the null check).

    `df`: step rows of one problem, device and backend, as returned by `derive`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    techniques = list(TECHNIQUES)
    colours = dict(zip(BATCH_SIZES, sns.color_palette("colorblind", len(BATCH_SIZES))))
    width = 0.8 / len(BATCH_SIZES)
    for i, batch in enumerate(BATCH_SIZES):
        rows = df[df["batch"] == batch].set_index("technique").reindex(techniques)
        x = np.arange(len(techniques)) + (i - (len(BATCH_SIZES) - 1) / 2) * width
        errors = np.vstack([rows["ratio"] - rows["ratio_low"], rows["ratio_high"] - rows["ratio"]])
        ax.errorbar(x, rows["ratio"], yerr=errors, fmt="o", color=colours[batch], capsize=2,
                    label=f"batch {batch}")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(np.arange(len(techniques)))
    ax.set_xticklabels([t.replace("+", "+\n") for t in techniques], fontsize=7)
    ax.set_ylabel("step time / step time of none")
    ax.legend(fontsize=7)
    return ax


def plot_overheads(df):
    """One panel per problem (columns) and backend/device (rows); returns the Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    steps = df[df["kind"] == "step"]
    places = sorted(set(zip(steps["backend"], steps["device"])))
    fig, axes = plt.subplots(len(places), len(PROBLEMS), squeeze=False,
                             figsize=(5 * len(PROBLEMS), 4.2 * len(places)), sharey="row")
    for r, (backend_name, device) in enumerate(places):
        for c, problem in enumerate(PROBLEMS):
            ax = axes[r, c]
            rows = steps[(steps["backend"] == backend_name) & (steps["device"] == device)
                         & (steps["problem"] == problem)]
            plot_overhead(rows, ax=ax)
            ax.set_title(f"{problem} ({PROBLEMS[problem].architecture})\n"
                         f"{device.upper()}, {backend_name}", fontsize=9)
    fig.tight_layout()
    return fig


def _machine_section(machines: list[dict]) -> str:
    keys = []
    for machine in machines:
        keys += [k for k in machine if k not in keys and k != "file"]
    header = ["", *[Path(m["file"]).name for m in machines]]
    return markdown_table(header, [[k, *[str(m.get(k, "")) for m in machines]] for k in keys])


def render_report(df, machines: list[dict]) -> str:
    """The Markdown report of derived rows `df` (see `derive`)."""
    gpus = sorted({m.get("gpu", "none available") for m in machines})
    parts = [
        "# Training-step benchmarks",
        "",
        "Written by `regbench bench-report` from the pytest-benchmark JSON in `raw/` "
        "(`nox -s benchmarks`). Regenerate; do not edit.",
        "",
        f"GPU: {', '.join(gpus)}. "
        + ("No GPU was visible, so this report has CPU rows only; the suite adds GPU rows in "
           "the same run whenever the backend sees one." if gpus == ["none available"] else ""),
        "",
        "## What is timed",
        "",
        "- One optimizer step (`model.train_on_batch`: forward, loss with penalties, backward, "
        "Adam update, constraints, metrics) on a fixed, seeded, generated batch already on the "
        "device, with the model built and compiled exactly as `regbench run` does. The first "
        "call (build, tracing/compilation and one step) and the warm-up steps are not timed; "
        "`compile s` = first call - median step. Each call returns only when the device has "
        "finished (the logs come back as Python floats).",
        "- A round times one step (or, without a baseline, several consecutive steps and "
        "stores their mean); `median`, `IQR` and `rounds` are over rounds. Each round of a step "
        "benchmark is paired with one step of a separate `none` model of the same problem and "
        "batch, run right before or right after it (alternating, ABBA), so load from other "
        "processes that changes over seconds hits both. `overhead` = median step of the "
        "technique / median of its paired `none` steps (for `none` itself this is a null check "
        "and should include 1); the interval is a 95% percentile bootstrap of that ratio of "
        "medians over pairs of rounds (2,000 resamples). Pipeline and fed-step ratios are "
        "unpaired (rounds of each side resampled independently).",
        "- FLOPs: multiply-adds of every Dense and Conv2D layer; forward = 2 x MACs, backward "
        "= 2 x forward, so a step counts 6 x MACs per example. Techniques add no counted FLOPs. "
        "`of peak` = achieved GFLOP/s / the best median GFLOP/s of square float32 matmuls "
        "timed with the same backend and device in the same run (a roofline fraction).",
        "- Early stopping has no per-step cost: it is a callback that reads the validation "
        "loss once per epoch, so it is not in the grid (its cost is the validation pass each "
        "epoch, which regbench runs for every arm anyway).",
        "- Other processes on the machine still add noise within a step (preemption), which "
        "widens intervals and inflates medians, and differ between runs: compare runs with "
        "`regbench bench-compare`, on the same machine only. `load_average_at_start` and "
        "`load_average` (at the end) in the machine table say how busy it was (1, 5 and "
        "15-minute averages; above the core count, other processes were competing).",
        "",
        "## Machine",
        "",
        _machine_section(machines),
        "",
        "## Overhead ratio to `none` (median step time, 95% CI, n = pairs of rounds)",
        "",
    ]
    steps = df[df["kind"] == "step"]
    for (backend_name, device), group in steps.groupby(["backend", "device"]):
        parts += [f"### {device.upper()}, {backend_name}", "", headlinemarkdown_table(group), ""]
    parts += ["![overhead ratios](overhead.png)", ""]
    for (backend_name, device), group in steps.groupby(["backend", "device"]):
        for problem in PROBLEMS:
            rows = group[group["problem"] == problem]
            if rows.empty:
                continue
            p = PROBLEMS[problem]
            parts += [f"## {problem}: {p.architecture} on {device.upper()} ({backend_name})", "",
                      stepmarkdown_table(rows), ""]
    parts += [
        "## Augmentation: in the model or in a tf.data pipeline",
        "",
        "regbench's default puts the augmentation layers (RandomRotation, RandomTranslation, "
        "RandomFlip where the labels allow it) inside the model, right after the input: they "
        "run on the training device (on a GPU, not competing for the host CPU), are inactive at "
        "inference by construction, and every arm of a study shares one input pipeline, so arms "
        "differ only in their model and see the same batches in the same order. The "
        "alternative maps the same Keras layers over a tf.data pipeline on the host CPU "
        "(parallel map, prefetch), overlapping augmentation with the training step.",
        "",
        "- `in model`: extra step time of the augmentation model over its paired `none` steps "
        "(fixed batch).",
        "- `tf.data`: time per batch of the pipeline with the augmentation layers mapped over it "
        "minus the same pipeline without them (throughput of a parallel map, no training).",
        "- `fed step`: one step fed from a prefetching pipeline, augmentation in the model "
        "(plain pipeline) or in the pipeline (model without augmentation); the ratio is tf.data / "
        "model.",
        "",
    ]
    for (backend_name, device), group in df.groupby(["backend", "device"]):
        if group[group["kind"] == "fed_step"].empty:
            continue
        parts += [f"### {device.upper()}, {backend_name}", "",
                  augmentationmarkdown_table(df[df["backend"] == backend_name], device), ""]
    matmul = df[df["kind"] == "matmul"].sort_values(["backend", "device", "n"])
    parts += ["## Matmul peak (float32, n x n @ n x n)", "",
              markdown_table(["backend", "device", "n", "median ms", "IQR ms", "rounds", "GFLOP/s"],
                     [[r["backend"], r["device"], str(int(r["n"])), _ms(r["median"]),
                       _ms(r["iqr"]), str(r["rounds"]), _num(r["gflops"])]
                      for _, r in matmul.iterrows()]), ""]
    return "\n".join(parts)


def write_report(raw_paths, out_dir: Path) -> list[Path]:
    """Markdown report, overhead plot, fingerprint and flat CSV from benchmark JSON files."""
    paths = [Path(p) for p in raw_paths]
    if not paths:
        raise RegbenchError("no benchmark JSON files given (run `nox -s benchmarks` first)")
    df, machines = load_runs(paths)
    df = derive(df)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    report = out_dir / "README.md"
    report.write_text(render_report(df, machines) + "\n")
    written.append(report)
    if not df[df["kind"] == "step"].empty:
        import matplotlib.pyplot as plt

        fig = plot_overheads(df)
        plot = out_dir / "overhead.png"
        fig.savefig(plot, dpi=110)
        plt.close(fig)
        written.append(plot)
    fingerprint = out_dir / "fingerprint.json"
    fingerprint.write_text(json.dumps(machines, indent=2, sort_keys=True) + "\n")
    written.append(fingerprint)
    table = out_dir / "summary.csv"
    df.drop(columns=["samples", "baseline_samples"]).to_csv(table, index=False, float_format="%.6g")
    written.append(table)
    return written


# --- regression comparison ----------------------------------------------------------------------


def compare(baseline, new, alpha: float = 0.05):
    """Benchmarks in both runs: ratio of medians new / baseline with a 95% interval, and a
    two-sided Mann-Whitney U test on the per-round times, Holm-corrected over all benchmarks.

    `baseline`, `new`: DataFrames from `load_runs`. Returns one row per common benchmark with
    `change` in {"slower", "faster", "same"}, sorted by ratio (slowest first).
    """
    import pandas as pd
    from scipy import stats as sps

    from regbench.stats import holm

    base = {(r["backend"], r["name"]): r for _, r in baseline.iterrows()}
    rows = []
    for _, r in new.iterrows():
        b = base.get((r["backend"], r["name"]))
        if b is None:
            continue
        ratio, low, high = ratio_of_medians(r["samples"], b["samples"])
        p = sps.mannwhitneyu(r["samples"], b["samples"], alternative="two-sided").pvalue
        rows.append({"backend": r["backend"], "name": r["name"], "baseline_ms": b["median"] * 1e3,
                     "new_ms": r["median"] * 1e3, "ratio": ratio, "ratio_low": low,
                     "ratio_high": high, "baseline_rounds": b["rounds"], "new_rounds": r["rounds"],
                     "p": float(p)})
    out = pd.DataFrame(rows, columns=["backend", "name", "baseline_ms", "new_ms", "ratio",
                                      "ratio_low", "ratio_high", "baseline_rounds", "new_rounds",
                                      "p"])
    out["p_holm"] = holm(out["p"])
    significant = out["p_holm"] < alpha
    out["change"] = np.where(significant & (out["ratio"] > 1), "slower",
                             np.where(significant & (out["ratio"] < 1), "faster", "same"))
    return out.sort_values("ratio", ascending=False, ignore_index=True)


def format_comparison(result, alpha: float, only_in: dict) -> str:
    lines = []
    for change in ("slower", "faster"):
        rows = result[result["change"] == change]
        lines.append(f"{change} ({len(rows)}, Holm-corrected Mann-Whitney U p < {alpha}):")
        for _, r in rows.iterrows():
            lines.append(f"  {r['name']} [{r['backend']}]: {r['baseline_ms']:.3g} -> "
                         f"{r['new_ms']:.3g} ms, x{r['ratio']:.3f} "
                         f"[{r['ratio_low']:.3f}, {r['ratio_high']:.3f}], p_holm {r['p_holm']:.2g}")
    lines.append(f"no significant change: {int((result['change'] == 'same').sum())} of "
                 f"{len(result)} compared")
    for side, names in only_in.items():
        if names:
            lines.append(f"only in {side}: {len(names)} ({', '.join(sorted(names)[:5])}"
                         f"{', ...' if len(names) > 5 else ''})")
    return "\n".join(lines)


# --- command line (wired into `regbench` by cli.py) ---------------------------------------------

REPORT_DIR = Path("reports/benchmarks")
