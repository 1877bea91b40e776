"""Whole-study wall time: regbench against the naive loop, in one run on one machine.

The naive loop is how tutorials train a grid: for every cell a fresh Keras `Sequential` and a
default `model.fit` (no `steps_per_execution`, Keras's default `jit_compile`, shuffling by
Keras), then `evaluate`. It builds the same networks (`networks.build`, same seeded
initial weights) on the same split, so only the engine differs. regbench trains the same
cells as `regbench run` does (packs and stacks chosen by `engine.plan.plan_packs`).

Each (configuration, engine) runs in a fresh child process, timed from its start to its end
(imports, data loading and compilation included) and measured for peak resident memory. The
report gives the speed-up, peak memory and, per arm, whether the two engines' test-accuracy
means are the same within ±0.3 pp (TOST, with its power at the seeds used).

    regbench bench-grid                   # all configurations -> reports/benchmarks/grid.*
    regbench bench-grid --only mnist_b32  # one of them

The child is this module run as a script: `python -m regbench.bench.grid --child CONFIG
ENGINE OUT.json [--data-dir DIR]`, so that each engine starts from a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from regbench.document import markdown_table
from regbench.errors import RegbenchError


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    study: str
    seeds: int
    epochs: int
    batch_size: int
    train_subset: int = 0
    target: float = 1.0          # the speed-up the issue of speed asks of this configuration
    note: str = ""


CONFIGS = (
    Config("mnist_b32", "ablations/mnist_tutorial.toml", 5, 10, 32, target=10.0,
           note="tutorial MLP study, all 9 arms x 5 seeds x 10 epochs"),
    Config("mnist_b128", "ablations/mnist_tutorial.toml", 5, 10, 128, target=6.0,
           note="the same at batch 128"),
    Config("cifar10_b64", "ablations/cifar10.toml", 5, 2, 64, train_subset=4000, target=4.0,
           note="CIFAR-10 CNN study, all 9 arms x 5 seeds, 2 epochs on 4,000 images per seed"),
)

# A seconds-long configuration for the tests (`--only smoke`); not part of the default run.
SMOKE = Config("smoke", "ablations/smoke.toml", 2, 1, 64, train_subset=300,
               note="smoke study, 3 arms x 2 seeds, 1 epoch on 300 images")


# The engines compared: the naive loop, regbench as `regbench run` trains by default (packs
# in worker processes side by side), and regbench with `--workers 1` (packing alone).
NAIVE, REGBENCH, ONE_WORKER = "naive", "regbench", "regbench_w1"
ENGINES = (NAIVE, REGBENCH, ONE_WORKER)
ROUNDS = 3  # interleaved rounds per configuration: each engine once a round


# --- the child process: one engine on one configuration ------------------------------------

def cells_of(config: Config) -> list:
    from regbench.reproduce.registry import CHECKOUT
    from regbench.study import load_study

    path = Path(config.study)  # the shipped study, from the checkout when not found here
    study = load_study(path if path.is_file() else CHECKOUT / path).with_overrides(
        seeds=config.seeds, epochs=config.epochs, train_subset=config.train_subset or None)
    study = dataclasses.replace(study, training=dataclasses.replace(
        study.training, batch_size=config.batch_size))
    return study.cells()


def train_naive(cells: list, data_dir: str | None) -> list[dict]:
    """A fresh Sequential and a default `fit` per cell, as a tutorial would write it."""
    import keras

    from regbench import data
    from regbench.engine.data import member_indices, scaled

    info = data.info(cells[0].dataset)
    arrays = data.load(cells[0].dataset, data_dir=data_dir)
    x, y = scaled(arrays.x_train), arrays.y_train.astype(np.int32)
    x_test, y_test = scaled(arrays.x_test), arrays.y_test.astype(np.int32)
    rows = []
    for cell in cells:
        fit, val = member_indices(cell, arrays.y_train)
        net = naive_network(cell, info)
        stopping = cell.arm.get("early_stopping")
        callbacks = [keras.callbacks.EarlyStopping(
            monitor="val_xent", patience=stopping.patience, min_delta=stopping.min_delta,
            restore_best_weights=stopping.restore_best_weights)] if stopping else []
        history = net.fit(x[fit], y[fit], batch_size=cell.training.batch_size,
                          epochs=cell.training.epochs, validation_data=(x[val], y[val]),
                          callbacks=callbacks, verbose=0).history
        scores = net.evaluate(x_test, y_test, verbose=0, return_dict=True)
        rows.append({"arm": cell.arm.label, "seed": cell.seed, "n_fit": len(fit),
                     "epochs_run": len(history["loss"]), "test_acc": float(scores["accuracy"])})
    return rows


def naive_network(cell, info, jit_compile="auto"):
    """The naive loop's network for `cell`: a fresh, seeded `Sequential`, compiled with
    Keras's defaults (`jit_compile` as given: "auto" is Keras's own)."""
    import keras

    from regbench.engine.program import make_optimizer
    from regbench.networks import build

    keras.backend.clear_session()
    keras.utils.set_random_seed(cell.seed)
    net = build(cell.model, cell.arm, info.image_shape, info.classes, cell.seed, info.flip_ok)
    net.compile(optimizer=make_optimizer(cell.training), loss="sparse_categorical_crossentropy",
                metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(name="xent")],
                jit_compile=jit_compile)
    return net


def train_regbench(cells: list, data_dir: str | None, workers: int | None = None) -> list[dict]:
    """The cells as `regbench run` trains them (`--workers` as given), into a throw-away
    store."""
    from regbench import executors, store
    from regbench.progress import Progress

    options = executors.RunOptions(data_dir=data_dir, workers=workers)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.jsonl"
        executors.run_local(cells, path, options, Progress(len(cells), quiet=True))
        rows = store.read_rows(path)
    return [{"arm": row["arm"], "seed": row["seed"], "n_fit": row["n_fit"],
             "epochs_run": row["epochs_run"], "test_acc": row["test_acc"],
             "pack_size": row.get("pack_size", 1), "fit_s": row["fit_s"],
             "workers": row.get("workers", 1)} for row in rows]


def training_gflop(cells: list, rows: list[dict]) -> float:
    """Arithmetic of the epochs the cells ran: training FLOPs per example seen
    (`macs.train_flops`); all cells of a configuration share one network."""
    from regbench.macs import cell_train_flops

    flops = cell_train_flops(cells[0].model, cells[0].dataset)
    return sum(flops * row["n_fit"] * row["epochs_run"] for row in rows) / 1e9


def matmul_peak() -> float:
    """Best GFLOP/s of a float32 2048 x 2048 matmul on this backend: the roofline's roof."""
    from regbench.bench import timing

    n = 2048
    a, b = timing.matmul_operands(n)
    timing.matmul(a, b)  # warm-up
    best = min(timing.time_calls(lambda: timing.matmul(a, b), 5))
    return 2 * n ** 3 / best / 1e9


class PeakMemory:
    """The largest resident memory of this process and its descendants (regbench's worker
    processes) together, sampled every `every` seconds, and this process's own maximum."""

    def __init__(self, every: float = 0.2):
        self.peak, self.every = 0, every
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()

    def mib(self) -> float:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
        return max(self.peak, own) / 2 ** 20

    def _watch(self) -> None:
        while not self.done.wait(self.every):
            self.peak = max(self.peak, sum(map(_rss, _tree(os.getpid()))))


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux /proc); just `pid` elsewhere."""
    pids, i = [pid], 0
    while i < len(pids):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pids[i]}/task").iterdir():
                pids += map(int, (task / "children").read_text().split())
        i += 1
    return pids


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def child(config_name: str, engine: str, out: Path, data_dir: str | None) -> None:
    from regbench import engine as regbench_engine

    if engine == "peak":
        out.write_text(json.dumps({"peak_gflops": matmul_peak()}))
        return
    config = _config(config_name)
    regbench_engine.configure(deterministic=engine != "naive")
    cells = cells_of(config)
    began = time.perf_counter()
    with PeakMemory() as memory:
        if engine == "naive":
            rows = train_naive(cells, data_dir)
        else:
            rows = train_regbench(cells, data_dir, workers=1 if engine == ONE_WORKER else None)
    out.write_text(json.dumps({
        "train_s": time.perf_counter() - began,
        "train_gflop": training_gflop(cells, rows),
        "peak_rss_mib": memory.mib(),
        "workers": max(row.get("workers", 1) for row in rows),
        "rows": rows,
    }))


# --- the parent: run every (configuration, engine), compare, report --------------------------

def _config(name: str) -> Config:
    for config in (*CONFIGS, SMOKE):
        if config.name == name:
            return config
    raise RegbenchError(f"--only: unknown configuration {name!r}; choose from "
                        f"{', '.join(c.name for c in CONFIGS)} (or {SMOKE.name}, seconds long)")


def configs(only: str | None) -> list[Config]:
    """The configurations to run: all of them, or those `only` names, comma-separated, in
    that order (an empty or unknown name is refused before anything starts)."""
    return list(CONFIGS) if only is None else [_config(name) for name in only.split(",")]


def measure(config: Config, engine: str, data_dir: str | None) -> dict:
    """One child process: `engine` ("naive", "regbench", or "peak") on `config`."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.json"
        load_before = os.getloadavg()[0]
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "regbench.bench.grid", "--child", config.name, engine,
             str(out)] + (["--data-dir", data_dir] if data_dir else []),
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True)
        wall = time.perf_counter() - began
        if done.returncode != 0:
            raise RegbenchError(f"bench-grid: {config.name}/{engine} failed: "
                                f"{done.stderr.strip().splitlines()[-1:]}")
        result = json.loads(out.read_text())
    return {"config": config.name, "engine": engine, "wall_s": wall,
            "load_before": load_before, "load_after": os.getloadavg()[0], **result}


def agreement(naive: list[dict], ours: list[dict]) -> list[dict]:
    """Per arm: the two engines' test accuracies, their difference (95% Welch interval) and
    whether they are the same within ±0.3 pp (`stats.equivalence`: TOST, with its power at
    the seeds used). The naive loop shuffles in Keras's own order, so seeds are not paired."""
    from regbench import stats

    out = []
    for arm in dict.fromkeys(row["arm"] for row in naive):
        a = np.array([r["test_acc"] for r in naive if r["arm"] == arm])
        b = np.array([r["test_acc"] for r in ours if r["arm"] == arm])
        difference = stats.welch(b, a, 0.95)
        test = stats.equivalence(b, a)
        out.append({"arm": arm, "n": len(a), "naive_mean": a.mean(), "naive_std": a.std(ddof=1),
                    "regbench_mean": b.mean(), "regbench_std": b.std(ddof=1),
                    "difference": b.mean() - a.mean(), "ci_low": difference["low"],
                    "ci_high": difference["high"], "tost_p": test["p"], "power": test["power"],
                    "seeds_needed": test["seeds_needed"], "verdict": test["verdict"],
                    "agree": test["verdict"] == "equivalent"})
    return out


def pack_times(rows: list[dict], batch_size: int | None = None) -> dict:
    """Where regbench's training time went: each pack's fit time (its members share one),
    and the cells trained alone, counted and summed. With `batch_size`, also the steps each
    pack ran (its longest member's) and the cells alone ran, for a time per step."""
    def steps(row):
        return math.ceil(row["n_fit"] / batch_size) * row["epochs_run"] if batch_size else 0

    packs: dict[tuple, int] = {}
    for r in rows:
        if r["pack_size"] > 1:
            key = (r["pack_size"], r["fit_s"])
            packs[key] = max(packs.get(key, 0), steps(r))
    alone = [r for r in rows if r["pack_size"] == 1]
    out = {"packs": sorted(packs, reverse=True), "alone": len(alone),
           "alone_fit_s": sum(r["fit_s"] for r in alone)}
    if batch_size:
        out["pack_steps"] = [packs[key] for key in out["packs"]]
        out["alone_steps"] = sum(steps(r) for r in alone)
    return out


def speedup(runs: list[dict], config: str, slow: str, fast: str) -> dict:
    """`slow` wall time / `fast` wall time per round (the engines ran in one round, in
    rotating order); the geometric mean over rounds with a 95% t-interval of the log ratio."""
    from regbench import stats

    by_round = {}
    for run in runs:
        if run["config"] == config:
            by_round.setdefault(run.get("round", 0), {})[run["engine"]] = run["wall_s"]
    ratios = [r[slow] / r[fast] for r in by_round.values() if slow in r and fast in r]
    if not ratios:
        return {"n": 0}
    logs = np.log(ratios)
    low, high = stats.interval(logs) if len(logs) > 1 else (math.nan, math.nan)
    return {"n": len(ratios), "ratios": ratios, "mean": float(np.exp(logs.mean())),
            "low": float(np.exp(low)), "high": float(np.exp(high))}


def summarize(runs: list[dict]) -> list[dict]:
    """Per configuration with both engines measured: wall times, speed-ups by round,
    agreement per arm, memory, where the time went."""
    summary = []
    for config in (*CONFIGS, SMOKE):
        mine = [run for run in runs if run["config"] == config.name]
        first = {}
        for run in mine:  # rows and memory of each engine's first run (later rounds repeat it)
            first.setdefault(run["engine"], run)
        if NAIVE not in first or REGBENCH not in first:
            continue
        naive, ours = first[NAIVE], first[REGBENCH]
        fast = speedup(runs, config.name, NAIVE, REGBENCH)
        arms = agreement(naive["rows"], ours["rows"])
        wall = {engine: float(np.median([r["wall_s"] for r in mine if r["engine"] == engine]))
                for engine in first}
        bound = fast["mean"] if math.isnan(fast.get("low", math.nan)) else fast["low"]
        peak_gflops = max(run["peak_gflops"] for run in mine)
        summary.append({
            "config": config.name, "note": config.note, "cells": len(ours["rows"]),
            "naive_s": wall[NAIVE], "regbench_s": wall[REGBENCH],
            "speedup": fast["mean"], "speedup_ci": [fast.get("low"), fast.get("high")],
            "rounds": fast["n"],
            "one_worker": speedup(runs, config.name, NAIVE, ONE_WORKER),
            "target": config.target, "met": bound >= config.target,
            "naive_peak_mib": naive["peak_rss_mib"], "regbench_peak_mib": ours["peak_rss_mib"],
            "load": [naive["load_before"], naive["load_after"], ours["load_before"],
                     ours["load_after"]],
            "arms_agree": sum(a["agree"] for a in arms), "arms": arms,
            "pack_sizes": sorted({r["pack_size"] for r in ours["rows"]}),
            "packs": pack_times(ours["rows"], config.batch_size),
            # outside training: start-up, data and compilation before the first step
            "regbench_fixed_s": float(np.median([r["wall_s"] - r["train_s"] for r in mine
                                                 if r["engine"] == REGBENCH])),
            "workers": ours.get("workers", 1),
            "commits": sorted({(run.get("git_commit") or "unknown")[:7] for run in mine}),
            # where the time goes: achieved training arithmetic against the matmul roof
            "peak_gflops": peak_gflops,
            "naive_gflops": naive["train_gflop"] / naive["train_s"],
            "regbench_gflops": ours["train_gflop"] / ours["train_s"],
        })
    return summary


def _packs_line(packs: dict) -> str:
    steps = packs.get("pack_steps") or [0] * len(packs["packs"])
    parts = [f"a pack of {size} cells {seconds:.0f} s" + _per_step(seconds, n)
             for (size, seconds), n in zip(packs["packs"], steps)]
    if packs["alone"]:
        parts.append(f"{packs['alone']} cells alone {packs['alone_fit_s']:.0f} s in all"
                     + _per_step(packs["alone_fit_s"], packs.get("alone_steps", 0)))
    return ", ".join(parts)


def _per_step(seconds: float, steps: int) -> str:
    return f" ({1000 * seconds / steps:.1f} ms a step)" if steps else ""


def _bound(s: dict) -> str:
    """What a configuration's regbench wall time is made of, where its target is not met."""
    fixed = s.get("regbench_fixed_s")
    if s["met"] or fixed is None:
        return ""
    return (f"- {s['config']} (target not met): of regbench's {s['regbench_s']:.0f} s, "
            f"{fixed:.0f} s come before training (start-up, data, compilation); training "
            f"reaches {100 * s['regbench_gflops'] / s['peak_gflops']:.1f}% of the matmul peak "
            f"against the naive loop's {100 * s['naive_gflops'] / s['peak_gflops']:.1f}%")


def render(summary: list[dict], machine: dict, command: str) -> str:
    """grid.md: what was compared, the speed-ups, where the time went, accuracy per arm."""
    lines = [*_intro(command), _measured_on(machine, summary)]
    if summary:
        lines += [_summary_table(summary), *_notes(summary)]
    for s in summary:
        lines += _arms_section(s)
    lines += ["## Machine", "", *(f"- {k}: {v}" for k, v in machine.items()), ""]
    return "\n".join(lines)


def _intro(command: str) -> list[str]:
    return [
        "# Whole-study wall time: regbench vs the naive loop", "",
        "The naive loop trains each cell as tutorials do: a fresh `Sequential` and a default "
        "`model.fit` (Keras defaults: no `steps_per_execution`; `jit_compile=\"auto\"`, "
        "which is XLA for every arm but augmentation, whose image transforms have no XLA "
        "kernels), then `evaluate`. Same networks, initial weights, split, batch size and "
        "epochs; only the engine differs. regbench runs as `regbench run` does by default: "
        "stacks and packs, in worker processes side by side; `1 worker` is the same with "
        "`--workers 1`, so packing and process parallelism show apart. Each engine runs in "
        "its own process, timed end to end (start-up, data and compilation included), once "
        "per round in rotating order; a speed-up is the geometric mean over rounds of the "
        "naive time / regbench's time in the same round, with a 95% t-interval of its log, "
        "and a target is met when the interval's lower end reaches it. Peak memory is "
        "the largest resident memory of the engine's processes together (regbench's driver "
        "and its workers), sampled every 0.2 s.", "",
        f"Regenerate: `{command}`", "",
    ]


def _measured_on(machine: dict, summary: list[dict]) -> str:
    """Which CPU and commit: a report from before the fingerprint had them says so."""
    cpu = (f"Measured on {machine.get('cpu_model', 'unknown')} (vector ISA "
           f"{machine.get('cpu_isa', 'not recorded')}, {machine.get('cpu_mhz') or '?'} MHz, "
           f"{machine.get('cpu_cores', '?')} cores), Keras on "
           f"{machine.get('keras_backend', 'unknown')}")
    if not summary:
        return cpu + "; no configuration has both engines measured yet.\n"
    return cpu + "; at commit " + "; ".join(
        f"{s['config']} {', '.join(s.get('commits') or [machine.get('git_commit', '?')[:7]])}"
        for s in summary) + ".\n"


def _summary_table(summary: list[dict]) -> str:
    """One row per configuration: times, speed-up against its target, memory, GFLOP/s."""
    header = ["configuration", "cells", "naive s", "regbench s", "speed-up", "target",
              "1 worker: speed-up", "naive peak MiB", "regbench peak MiB",
              "GFLOP/s naive / regbench (of peak)", "arms equivalent (±0.3 pp)",
              "load avg (1 min)"]
    rows = [[f"{s['config']} ({s['note']})", s["cells"], f"{s['naive_s']:.0f}",
             f"{s['regbench_s']:.0f}", _speedup(s),
             f"{'>=' if s['target'] > 1 else 'not slower: >='} {s['target']:g}x "
             f"({_met(s)})",
             _ratio(s.get("one_worker") or {"n": 0}),
             f"{s['naive_peak_mib']:.0f}", f"{s['regbench_peak_mib']:.0f}",
             f"{s['naive_gflops']:.3g} / {s['regbench_gflops']:.3g} "
             f"({s['naive_gflops'] / s['peak_gflops']:.1%} / "
             f"{s['regbench_gflops'] / s['peak_gflops']:.1%})",
             f"{s['arms_agree']}/{len(s['arms'])}",
             " / ".join(f"{x:.1f}" for x in s["load"])] for s in summary]
    return markdown_table(header, rows)


def _met(s: dict) -> str:
    if s.get("rounds", 1) < 2:
        return "1 run: not established"
    return "met" if s["met"] else "NOT met"


def _speedup(s: dict) -> str:
    low, high = s.get("speedup_ci") or (None, None)
    return _ratio({"n": s.get("rounds", 1), "mean": s["speedup"], "low": low, "high": high},
                  bold=True)


def _ratio(r: dict, bold: bool = False) -> str:
    """`8.40x [7.9, 9.0] (n = 3)`; without an interval at one run, says so."""
    if not r.get("n"):
        return "not measured"
    mean = f"**{r['mean']:.2f}x**" if bold else f"{r['mean']:.2f}x"
    if r["n"] < 2 or r.get("low") is None or math.isnan(r["low"]):
        return f"{mean} (1 run: no interval)"
    return f"{mean} [{r['low']:.2f}, {r['high']:.2f}] (n = {r['n']})"


def _notes(summary: list[dict]) -> list[str]:
    """How to read GFLOP/s and the load averages, and where regbench's fit time went."""
    return ["", "GFLOP/s: training FLOPs per example (`macs.train_flops`: 6 x forward "
            "multiply-adds, less 2 x the first layer's, whose input gradient is never "
            "computed) x examples of the epochs each cell ran, over the engine's training "
            "time; `of peak`: against the best float32 2048 x 2048 matmul measured in the "
            "same run "
            f"({summary[0]['peak_gflops']:.0f} GFLOP/s), the roof of a roofline. A small "
            "fraction means the time goes to per-step overhead, not arithmetic.", "",
            "Load average: before and after the naive run, then the regbench run.", "",
            "Where regbench's time goes (fit seconds; packs and cells run side by side in "
            "the worker processes, so they add up to more than the wall time):", "",
            *(f"- {s['config']}: {s['workers']} worker(s); " + _packs_line(s["packs"])
              for s in summary), "",
            *(["What bounds each unmet target:", "", *bounds, ""]
              if (bounds := [b for s in summary if (b := _bound(s))]) else [])]


def _arms_section(s: dict) -> list[str]:
    """Test accuracy of each arm under both engines, and whether they are the same."""
    from regbench import stats

    header = ["arm", "n", "naive mean ± sd", "regbench mean ± sd", "difference [95% CI]",
              "TOST p", "power", "verdict"]
    rows = [[a["arm"], a["n"], f"{a['naive_mean']:.4f} ± {a['naive_std']:.4f}",
             f"{a['regbench_mean']:.4f} ± {a['regbench_std']:.4f}",
             f"{a['difference']:+.4f} [{a['ci_low']:+.4f}, {a['ci_high']:+.4f}]",
             f"{a['tost_p']:.3f}", f"{a['power']:.2f}", _verdict(a)] for a in s["arms"]]
    margin = 100 * stats.EQUIVALENCE_MARGIN
    return [f"## {s['config']}: test accuracy per arm (n = seeds per engine)", "",
            f"**Equivalent**: two one-sided Welch tests (TOST) put the difference within "
            f"±{margin:.1f} pp (p < {stats.ALPHA}); **different**: its 95% interval excludes 0; "
            "otherwise **not resolved**. Power: the chance these seeds and spreads declare "
            "equivalence when the engines truly agree; below 0.8 a failure to declare it is "
            "no evidence of a difference (the seeds per engine that would give 0.8 stand "
            "beside it). The naive loop shuffles in Keras's own order, so seeds are not "
            "paired.", "", markdown_table(header, rows), ""]


def _verdict(arm: dict) -> str:
    if arm["verdict"] != "not resolved" or arm["power"] >= 0.8 or not arm["seeds_needed"]:
        return arm["verdict"]
    return f"not resolved (about {arm['seeds_needed']} seeds would give power 0.8)"


# --- the journal: every finished measurement, so a killed run resumes ----------------------

JOURNAL = "grid_runs.jsonl"
# What must match for runs to compare: timings from another CPU or backend never mix.
SAME_MACHINE = ("cpu_model", "cpu_cores", "cpu_isa", "keras_backend")


def read_journal(path: Path) -> list[dict]:
    """The measurements `path` holds, in order; a half-written last line (a kill while
    appending) is dropped, since it is measured again."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return runs


def append_run(path: Path, run: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(run, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())


def comparable(machine: dict) -> dict:
    """The part of a fingerprint that runs must share to compare."""
    return {key: machine.get(key) for key in SAME_MACHINE}


def check_machine(runs: list[dict], machine: dict, path: Path) -> None:
    here = comparable(machine)
    for run in runs:
        if run.get("machine") != here:
            raise RegbenchError(
                f"{path}: measured on {run.get('machine')}, not this machine ({here}); "
                f"choose another --out, or delete {path.name} to measure anew")


def command_of(runs: list[dict]) -> str:
    """The command that measures what `runs` hold, from an empty --out."""
    names = list(dict.fromkeys(run["config"] for run in runs))
    rounds = 1 + max((run["round"] for run in runs), default=ROUNDS - 1)
    return ("regbench bench-grid"
            + ("" if set(names) == {c.name for c in CONFIGS} else f" --only {','.join(names)}")
            + (f" --rounds {rounds}" if rounds != ROUNDS else ""))


def write_report(out: Path, runs: list[dict], machine: dict) -> list[dict]:
    """grid.json and grid.md from every run of the journal, each replaced whole."""
    summary, command = summarize(runs), command_of(runs)
    for name, text in (("grid.json", json.dumps(
            {"command": command, "machine": machine, "summary": summary, "runs": runs},
            indent=1, default=float) + "\n"), ("grid.md", render(summary, machine, command))):
        partial = out / f".{name}.partial"
        partial.write_text(text)
        os.replace(partial, out / name)
    return summary


def run_grid(only: str | None, out: Path, data_dir: str | None, say=print,
             rounds: int = ROUNDS) -> list[dict]:
    """Every configuration (or those `only` names): `rounds` interleaved rounds of every
    engine, each run in a child process. Each finished run is appended to `out`/grid_runs.jsonl
    and grid.json and grid.md are rewritten from all of it, so a killed run resumes where it
    stopped and configurations measured by separate calls share one report."""
    from regbench.bench.machine import machine_fingerprint

    chosen = configs(only)
    out.mkdir(parents=True, exist_ok=True)
    journal = out / JOURNAL
    runs = read_journal(journal)
    machine = machine_fingerprint()
    check_machine(runs, machine, journal)
    done = {(run["config"], run["engine"], run["round"]) for run in runs}
    todo = [(config, i, engine) for config in chosen for i in range(rounds)
            # the engines in rotating order, so a busy spell hits all of them
            for engine in ENGINES[i % len(ENGINES):] + ENGINES[:i % len(ENGINES)]
            if (config.name, engine, i) not in done]
    if len(todo) < len(chosen) * rounds * len(ENGINES):
        say(f"bench-grid: resuming {journal}: {len(todo)} of "
            f"{len(chosen) * rounds * len(ENGINES)} runs left")
    if not todo:
        return write_report(out, runs, machine)
    peak = measure(CONFIGS[0], "peak", data_dir)["peak_gflops"]
    for step, (config, i, engine) in enumerate(todo, 1):
        say(f"bench-grid: [{step}/{len(todo)}] {config.name}: round {i + 1}/{rounds}: "
            f"{engine} ...")
        run = measure(config, engine, data_dir) | {
            "round": i, "peak_gflops": peak, "git_commit": machine.get("git_commit"),
            "machine": comparable(machine)}
        say(f"bench-grid: {config.name}: {engine} {run['wall_s']:.0f} s, "
            f"peak {run['peak_rss_mib']:.0f} MiB")
        append_run(journal, run)
        runs.append(run)
        summary = write_report(out, runs, machine)
    return summary


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        name, engine, out = sys.argv[2:5]
        data_dir = sys.argv[6] if sys.argv[5:6] == ["--data-dir"] else None
        child(name, engine, Path(out), data_dir)
