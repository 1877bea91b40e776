"""bench-grid: both engines really run, and the report says what it measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regbench.bench import grid


def _bench_grid(out: Path, data_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "regbench.cli", "bench-grid", "--only",
                           "smoke", "--out", str(out), "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True)


@pytest.mark.slow
def test_smoke_configuration_end_to_end_and_a_second_call_resumes(tmp_path, data_dir):
    """One round, then two: the second call measures round 2 only, keeping round 1's runs."""
    done = _bench_grid(tmp_path, data_dir, "--rounds", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    first = json.loads((tmp_path / "grid.json").read_text())["runs"]
    assert "resuming" not in done.stdout
    done = _bench_grid(tmp_path, data_dir, "--rounds", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {tmp_path / grid.JOURNAL}: 3 of 6 runs left" in done.stdout
    result = json.loads((tmp_path / "grid.json").read_text())
    assert result["runs"][:3] == first
    assert result["runs"] == grid.read_journal(tmp_path / grid.JOURNAL)
    assert result["command"] == "regbench bench-grid --only smoke --rounds 2"
    assert [(run["round"], run["engine"]) for run in result["runs"]] == [
        (0, "naive"), (0, "regbench"), (0, "regbench_w1"),
        (1, "regbench"), (1, "regbench_w1"), (1, "naive")]  # rotating order
    assert {run["workers"] for run in result["runs"] if run["engine"] == "regbench_w1"} == {1}
    for run in result["runs"]:
        assert len(run["rows"]) == 6  # 3 arms x 2 seeds, each trained and evaluated
        assert all(0.0 < row["test_acc"] <= 1.0 for row in run["rows"])
        assert run["wall_s"] > run["train_s"] > 0 and run["peak_rss_mib"] > 100
    (summary,) = result["summary"]
    ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(
        *[[r for r in result["runs"] if r["engine"] == e] for e in ("naive", "regbench")])]
    assert summary["speedup"] == pytest.approx(np.exp(np.mean(np.log(ratios))))
    assert summary["rounds"] == 2 and summary["one_worker"]["n"] == 2
    assert [arm["arm"] for arm in summary["arms"]] == ["none", "l1", "dropout"]
    markdown = (tmp_path / "grid.md").read_text()
    assert "| smoke (" in markdown
    assert "Regenerate: `regbench bench-grid --only smoke --rounds 2`" in markdown


@pytest.mark.slow
def test_unknown_configuration_is_one_line_and_status_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "regbench.cli", "bench-grid", "--only", "nope",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("regbench: error: --only: unknown")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_child_entry_point_writes_its_result(tmp_path):
    """What `measure` starts: this module as a script, one engine, its result as JSON."""
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, "-m", "regbench.bench.grid", "--child", "smoke",
                           "peak", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(out.read_text())["peak_gflops"] > 0


def test_a_half_written_journal_line_is_dropped_and_another_machine_is_refused(tmp_path):
    journal = tmp_path / grid.JOURNAL
    here = {"cpu_model": "A", "cpu_cores": 2, "cpu_isa": "avx2", "keras_backend": "jax"}
    grid.append_run(journal, {"round": 0, "machine": here})
    with journal.open("a") as f:
        f.write('{"round": 1, "mach')  # killed while appending
    runs = grid.read_journal(journal)
    assert runs == [{"round": 0, "machine": here}]
    grid.check_machine(runs, here | {"cpu_mhz": 3000.0}, journal)  # the clock may vary
    with pytest.raises(grid.RegbenchError, match="not this machine.*delete grid_runs.jsonl"):
        grid.check_machine(runs, here | {"cpu_isa": "avx2 avx512f"}, journal)


def test_the_regenerate_command_names_what_the_runs_hold():
    runs = [{"config": name, "round": r} for name in ("mnist_b128", "cifar10_b64")
            for r in range(3)]
    assert grid.command_of(runs) == "regbench bench-grid --only mnist_b128,cifar10_b64"
    every = [{"config": c.name, "round": 0} for c in grid.CONFIGS]
    assert grid.command_of(every) == "regbench bench-grid --rounds 1"


def test_a_speed_up_is_paired_by_round_with_an_interval_and_a_target_needs_its_lower_end():
    runs = [{"config": "c", "round": i, "engine": engine, "wall_s": wall}
            for i, (slow, fast) in enumerate([(100, 10), (90, 10), (110, 10)])
            for engine, wall in (("naive", slow), ("regbench", fast))]
    fast = grid.speedup(runs, "c", "naive", "regbench")
    assert fast["n"] == 3 and fast["mean"] == pytest.approx((10 * 9 * 11) ** (1 / 3))
    assert fast["low"] < 9.5 < fast["mean"] < 10.5 < fast["high"]
    assert grid._ratio(fast) == (f"{fast['mean']:.2f}x [{fast['low']:.2f}, "
                                 f"{fast['high']:.2f}] (n = 3)")
    assert grid._ratio(grid.speedup(runs[:2], "c", "naive", "regbench")) == (
        "10.00x (1 run: no interval)")
    assert grid.speedup(runs, "c", "naive", "regbench_w1") == {"n": 0}


def _rows(accuracies: dict) -> list[dict]:
    return [{"arm": arm, "seed": seed, "test_acc": acc}
            for arm, values in accuracies.items() for seed, acc in enumerate(values)]


def test_agreement_is_an_equivalence_test_that_can_fail_and_says_its_power():
    """Equal engines at a small spread are declared equivalent; a 5-point shift is
    different; a 0.2-point shift at a wide spread and 3 seeds is not resolved, with a power
    that says the test could not have shown equivalence there."""
    rng = np.random.default_rng(0)
    base = rng.normal(0.97, 0.0005, 8)
    noisy = rng.normal(0.97, 0.004, 3)
    naive = _rows({"same": base, "shifted": base}) + _rows({"noisy": noisy})
    ours = _rows({"same": base + rng.normal(0, 0.0005, 8), "shifted": base - 0.05}) + _rows(
        {"noisy": noisy + 0.002 + rng.normal(0, 0.004, 3)})
    same, shifted, noisy = grid.agreement(naive, ours)
    assert (same["verdict"], shifted["verdict"], noisy["verdict"]) == (
        "equivalent", "different", "not resolved")
    assert same["agree"] and not shifted["agree"] and not noisy["agree"]
    assert same["power"] > 0.8 > noisy["power"] and noisy["seeds_needed"] > 3
    assert shifted["ci_high"] < 0 < same["ci_high"] and same["ci_low"] < 0
    assert shifted["difference"] == np.mean(base - 0.05) - np.mean(base)
    assert grid._verdict(noisy).startswith("not resolved (about ")


@pytest.mark.slow
def test_peak_memory_counts_child_processes():
    """regbench's memory is its driver's and its workers' together: a child's 300 MiB count.
    Measured from a fresh driver process, whose own memory holds still (a test process that
    has trained networks can give back 100 MiB while it samples)."""
    child = ("import time; b = bytearray(300 * 2 ** 20); b[::4096] = b'x' * len(b[::4096]); "
             "time.sleep(1)")
    driver = (f"import os, subprocess, sys; from regbench.bench import grid\n"
              f"own = grid._rss(os.getpid()) / 2 ** 20\n"
              f"with grid.PeakMemory(every=0.05) as memory:\n"
              f"    subprocess.run([sys.executable, '-c', {child!r}], check=True)\n"
              f"print(own, memory.peak / 2 ** 20, memory.mib())")
    out = subprocess.run([sys.executable, "-c", driver], check=True, capture_output=True,
                         text=True).stdout.split()
    own, peak, reported = map(float, out)
    assert peak > own + 250
    assert reported >= peak


def test_pack_times_name_each_pack_once_and_sum_the_cells_alone():
    rows = ([{"pack_size": 20, "fit_s": 185.0}] * 20 + [{"pack_size": 5, "fit_s": 72.0}] * 5
            + [{"pack_size": 1, "fit_s": 3.0}, {"pack_size": 1, "fit_s": 4.5}])
    assert grid.pack_times(rows) == {"packs": [(20, 185.0), (5, 72.0)], "alone": 2,
                                          "alone_fit_s": 7.5}


def test_a_pack_runs_as_many_steps_as_its_longest_member():
    """An early-stopped member ends before its pack: the pack's steps are its longest
    member's, so its time per step is not inflated by a short member's count."""
    rows = [{"pack_size": 2, "fit_s": 30.0, "n_fit": 1000, "epochs_run": 10},
            {"pack_size": 2, "fit_s": 30.0, "n_fit": 1000, "epochs_run": 4},
            {"pack_size": 1, "fit_s": 6.0, "n_fit": 999, "epochs_run": 3}]
    times = grid.pack_times(rows, batch_size=100)
    assert times["pack_steps"] == [100] and times["alone_steps"] == 30
    assert grid._packs_line(times) == ("a pack of 2 cells 30 s (300.0 ms a step), "
                                       "1 cells alone 6 s in all (200.0 ms a step)")


REPORTS = Path(__file__).resolve().parents[1] / "reports" / "benchmarks"


def test_committed_grid_report_is_what_its_json_gives():
    """grid.md is rendered from what grid.json stores, so the JSON regenerates it exactly."""
    result = json.loads((REPORTS / "grid.json").read_text())
    markdown = grid.render(result["summary"], result["machine"], result["command"])
    assert markdown == (REPORTS / "grid.md").read_text()
