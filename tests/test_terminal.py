"""What a run prints on a terminal: no TensorFlow start-up notices (from the driver or from
worker processes), one line per finished pack, and a real warning written during the import
still shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from regbench import progress, startup

NOISE = re.compile(r"absl|oneDNN|^[IWEF]\d{4} |cpu_feature_guard|tensorflow", re.I)


@pytest.mark.slow
def test_a_run_with_worker_processes_prints_no_start_up_notices(regbench_cli, data_dir,
                                                                 tmp_path):
    study = tmp_path / "tiny.toml"
    study.write_text('name = "tiny"\ndatasets = ["mnist"]\nseeds = 2\n[model]\nhidden = [8]\n'
                     '[training]\nepochs = 1\ntrain_subset = 200\n[techniques.l2]\n'
                     '[design]\narms = ["none", "l2"]\n')
    done = regbench_cli("run", study, "--workers", "2", cwd=tmp_path, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert [line for line in lines if NOISE.search(line)] == []
    assert lines[0] == "tiny: 4 cells, 0 stored, 4 to train -> results/tiny.jsonl"
    assert all(re.match(r"\[\d/4\] mnist mlp ", line) for line in lines[1:]), lines
    assert len(lines) >= 2


@pytest.mark.slow
def test_reproduce_asks_for_a_gpu_without_start_up_notices():
    """`regbench reproduce` imports Keras first to look for a GPU, before it trains."""
    done = subprocess.run([sys.executable, "-c", "from regbench.reproduce import orchestration; "
                           "print(orchestration.gpu_visible())"],
                          capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items()
                               if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert done.returncode == 0 and done.stdout in ("False\n", "True\n"), done.stderr
    assert [line for line in done.stderr.splitlines() if NOISE.search(line)] == []


def test_start_up_notices_are_held_back_and_other_lines_shown(capfd):
    capfd.readouterr()
    with startup._filtered_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                    b"written to STDERR\n")
        os.write(2, b"I0000 00:00:1.2 14425 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"a real warning\n")
    assert capfd.readouterr().err == "a real warning\n"


def row(arm, seed, status="ok", acc=0.9):
    return {"dataset": "mnist", "model": "mlp", "arm": arm, "seed": seed, "status": status,
            "test_acc": acc, "gap_acc": 0.01, "epochs_run": 3, "strategy": "stack",
            "error": "MemoryError: out of memory"}


def test_a_pack_is_one_line_and_a_cell_alone_is_its_own(capsys):
    shown = progress.Progress(5, stream=sys.stdout)
    shown.start(["cell"])
    shown.finish(row("none", 0, acc=0.91))
    shown.start(["a", "b", "c", "d"])
    for i, (arm, status, acc) in enumerate([("none", "ok", 0.93), ("l2", "ok", 0.88),
                                           ("none", "diverged", 0.1), ("l2", "failed", 0)]):
        shown.finish(row(arm, i // 2, status, acc))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"\[1/5\] mnist mlp none seed=0: ok: test_acc 0\.9100 gap \+0\.0100 "
                        r"epochs 3 \(\d+\.\d s\)  ETA \d+m\d\ds", lines[0])
    assert re.fullmatch(r"\[5/5\] mnist mlp: 4 cells \(2 arms x 2 seeds, stack\): 2 ok, "
                        r"1 diverged, 1 failed; test_acc 0\.1000 to 0\.9300 \(\d+\.\d s\)  "
                        r"ETA 0m00s", lines[1])


def test_the_eta_counts_from_the_first_pack_sent_to_a_worker(capsys, monkeypatch):
    """Workers train packs in parallel and the driver hears of a pack when it is done: the
    ETA's clock must start when the first pack was sent, not when its rows came back."""
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    shown = progress.Progress(4, stream=sys.stdout)
    shown.begin()  # the first pack goes to a worker at t = 0
    now[0] = 100.0  # its two rows come back at t = 100
    shown.start(["a", "b"])
    for i in range(2):
        shown.finish(row("none", i))
    assert capsys.readouterr().out.rstrip().endswith("ETA 1m40s")  # 100 s / 2 cells * 2 left
