"""bench-grid: both engines really run, and the report says what it measured."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from regbench import gridbench


def test_smoke_configuration_end_to_end(tmp_path, data_dir):
    done = subprocess.run([sys.executable, "-m", "regbench.cli", "bench-grid", "--only",
                           "smoke", "--out", str(tmp_path), "--data-dir", str(data_dir)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "grid.json").read_text())
    assert result["command"] == "regbench bench-grid --only smoke"
    assert [run["engine"] for run in result["runs"]] == ["naive", "regbench"]
    for run in result["runs"]:
        assert len(run["rows"]) == 6  # 3 arms x 2 seeds, each trained and evaluated
        assert all(0.0 < row["test_acc"] <= 1.0 for row in run["rows"])
        assert run["wall_s"] > run["train_s"] > 0 and run["peak_rss_mib"] > 100
    (summary,) = result["summary"]
    assert summary["speedup"] == summary["naive_s"] / summary["regbench_s"]
    assert [arm["arm"] for arm in summary["arms"]] == ["none", "l1", "dropout"]
    markdown = (tmp_path / "grid.md").read_text()
    assert "| smoke (" in markdown and "Regenerate: `regbench bench-grid --only smoke`" in markdown


def test_unknown_configuration_is_one_line_and_status_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "regbench.cli", "bench-grid", "--only", "nope",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("regbench: error: --only: unknown")
    assert not any(tmp_path.iterdir())


def _rows(accuracies: dict) -> list[dict]:
    return [{"arm": arm, "seed": seed, "test_acc": acc}
            for arm, values in accuracies.items() for seed, acc in enumerate(values)]


def test_agreement_separates_equal_from_shifted_distributions():
    rng = np.random.default_rng(0)
    base = rng.normal(0.97, 0.002, 8)
    naive = _rows({"same": base, "shifted": base})
    ours = _rows({"same": base + rng.normal(0, 0.002, 8), "shifted": base - 0.05})
    same, shifted = gridbench.agreement(naive, ours)
    assert same["agree"] and not shifted["agree"]
    assert shifted["ci_high"] < 0 < same["ci_high"] and same["ci_low"] < 0
    assert shifted["difference"] == np.mean(base - 0.05) - np.mean(base)


def test_peak_memory_counts_child_processes():
    """regbench's memory is its driver's and its workers' together: a child's 300 MiB count."""
    own = gridbench._rss(gridbench.os.getpid()) / 2 ** 20
    script = ("import time; b = bytearray(300 * 2 ** 20); b[::4096] = b'x' * len(b[::4096]); "
              "time.sleep(1)")
    with gridbench.PeakMemory(every=0.05) as memory:
        subprocess.run([sys.executable, "-c", script], check=True)
    assert memory.peak / 2 ** 20 > own + 250
    assert memory.mib() >= memory.peak / 2 ** 20


def test_pack_times_name_each_pack_once_and_sum_the_cells_alone():
    rows = ([{"pack_size": 20, "fit_s": 185.0}] * 20 + [{"pack_size": 5, "fit_s": 72.0}] * 5
            + [{"pack_size": 1, "fit_s": 3.0}, {"pack_size": 1, "fit_s": 4.5}])
    assert gridbench.pack_times(rows) == {"packs": [(20, 185.0), (5, 72.0)], "alone": 2,
                                          "alone_fit_s": 7.5}
