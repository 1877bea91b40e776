"""The benchmark library: round planning, ratio intervals, compare, report. Timing itself is
exercised by `benchmarks/` and MAC counts by test_macs.py; here samples are synthetic."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regbench import cli, provenance, stats
from regbench.bench import cases, comparison, machine, report, results, timing
from regbench.errors import RegbenchError

# --- rounds ---------------------------------------------------------------------------------

PROFILE = cases.Profile("test", target_s=1.0, min_rounds=5, max_rounds=100, warmup_steps=1,
                        min_round_s=0.002)


@pytest.mark.parametrize(("step_s", "expected"), [
    (0.1, (10, 1)),      # 1 s of 0.1 s steps
    (0.5, (5, 1)),       # min_rounds wins over the target
    (0.001, (100, 10)),  # 1,000 steps fit: capped at 100 rounds of 10 steps
    (0.0005, (100, 20)),
    (0.003, (83, 4)),    # 333 steps fit: 4 per round keeps rounds <= 100
])
def test_plan_rounds(step_s, expected):
    assert timing.plan_rounds(step_s, PROFILE) == expected


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("REGBENCH_BENCH_PROFILE", "full")
    assert cases.profile().name == "full"
    assert cases.profile("default").name == "default"
    with pytest.raises(RegbenchError, match="unknown benchmark profile 'fast'"):
        cases.profile("fast")


# --- statistics -----------------------------------------------------------------------------


def test_summarize():
    assert results.summarize([5, 1, 4, 2, 3]) == {"median": 3.0, "q1": 2.0, "q3": 4.0, "iqr": 2.0,
                                                  "rounds": 5}


def test_ratio_of_constant_samples_is_exact():
    ratio, low, high = results.ratio_of_medians([2.0] * 10, [1.0] * 8)
    assert (ratio, low, high) == (2.0, 2.0, 2.0)


def test_ratio_interval_covers_the_true_ratio():
    """Percentile bootstrap of a ratio of medians: about 95% coverage on lognormal noise."""
    rng = np.random.default_rng(0)
    trials, covered, widths = 60, 0, []
    for seed in range(trials):
        a = 1.3 * rng.lognormal(0.0, 0.1, 40)  # true ratio of medians: 1.3
        b = rng.lognormal(0.0, 0.1, 40)
        ratio, low, high = results.ratio_of_medians(a, b, n_resamples=500, seed=seed)
        assert low <= ratio <= high
        covered += low <= 1.3 <= high
        widths.append(high - low)
    assert 0.85 <= covered / trials <= 1.0
    assert 0.05 < np.median(widths) < 0.3


def test_ratio_with_one_round_has_no_interval():
    ratio, low, high = results.ratio_of_medians([2.0], [1.0, 1.0])
    assert ratio == 2.0 and math.isnan(low) and math.isnan(high)


# --- synthetic runs -------------------------------------------------------------------------


def _benchmark(name: str, samples, **info) -> dict:
    return {"name": name, "stats": {"data": list(map(float, samples))}, "extra_info": info}


def _write_run(path, benchmarks: list[dict]) -> str:
    path.write_text(json.dumps({"machine_info": {"regbench": {"cpu_model": "test CPU",
                                                              "gpu": "none available"}},
                                "benchmarks": benchmarks}))
    return str(path)


def _step(technique, samples, batch=100, first_call_s=1.0):
    return _benchmark(f"test_step[cpu-mnist_mlp-b{batch}-{technique}]", samples, kind="step",
                      backend="tensorflow", device="cpu", problem="mnist_mlp", batch=batch,
                      technique=technique, flops_per_example=6e6, first_call_s=first_call_s)


def _matmul(n, samples):
    return _benchmark(f"test_matmul[cpu-{n}]", samples, kind="matmul", backend="tensorflow",
                      device="cpu", n=n, flops=2 * n ** 3, first_call_s=0.1)


def test_derive_ratios_throughput_and_roofline(tmp_path):
    path = _write_run(tmp_path / "run.json", [
        _step("none", [0.01] * 5), _step("l2", [0.015] * 5, first_call_s=2.0),
        _matmul(1000, [0.02] * 5), _matmul(2000, [0.2] * 5)])
    df = results.derive(results.load_runs([path])[0]).set_index("name")
    l2 = df.loc["test_step[cpu-mnist_mlp-b100-l2]"]
    assert l2["ratio"] == pytest.approx(1.5)
    assert (l2["ratio_low"], l2["ratio_high"]) == pytest.approx((1.5, 1.5))
    assert l2["examples_per_s"] == pytest.approx(100 / 0.015)
    assert l2["gflops"] == pytest.approx(6e6 * 100 / 0.015 / 1e9)          # 40
    assert l2["peak_gflops"] == pytest.approx(100.0)  # max(2e9 / 0.02, 16e9 / 0.2) / 1e9
    assert l2["roofline"] == pytest.approx(0.4)
    assert l2["compile_s"] == pytest.approx(2.0 - 0.015)
    assert df.loc["test_step[cpu-mnist_mlp-b100-none]", "ratio"] == 1.0


def _runs(tmp_path, slower=1.2, faster=0.8, seed=0):
    rng = np.random.default_rng(seed)

    def noise(scale):
        return scale * rng.lognormal(0.0, 0.02, 50)

    base = _write_run(tmp_path / "base.json", [
        _step("none", noise(1.0)), _step("l2", noise(1.0)), _step("dropout", noise(1.0)),
        _step("l1", noise(1.0))])
    new = _write_run(tmp_path / "new.json", [
        _step("none", noise(1.0)), _step("l2", noise(slower)), _step("dropout", noise(faster)),
        _step("batchnorm", noise(1.0))])
    return base, new


def test_compare_finds_what_got_slower_or_faster(tmp_path):
    base, new = _runs(tmp_path)
    result = comparison.compare(results.load_runs([base])[0], results.load_runs([new])[0])
    change = dict(zip(result["name"], result["change"]))
    assert change == {"test_step[cpu-mnist_mlp-b100-l2]": "slower",
                      "test_step[cpu-mnist_mlp-b100-dropout]": "faster",
                      "test_step[cpu-mnist_mlp-b100-none]": "same"}
    slower = result.iloc[0]
    assert slower["ratio_low"] < 1.2 < slower["ratio_high"]
    assert (result["p_holm"] >= result["p"]).all()
    np.testing.assert_array_equal(result["p_holm"], stats.holm(result["p"]))


def test_compare_of_a_run_with_itself_reports_no_change(tmp_path):
    base, _ = _runs(tmp_path)
    runs = results.load_runs([base])[0]
    assert (comparison.compare(runs, runs)["change"] == "same").all()


def test_compare_of_runs_with_nothing_in_common_is_empty(tmp_path):
    base, _ = _runs(tmp_path)
    runs = results.load_runs([base])[0]
    other = runs.assign(backend="jax")
    result = comparison.compare(runs, other)
    assert result.empty and "p_holm" in result and "change" in result


def _cli(argv):
    args = cli.build_parser().parse_args([str(a) for a in argv])
    return args.func(args)


def test_bench_compare_command(tmp_path, capsys):
    base, new = _runs(tmp_path)
    assert _cli(["bench-compare", base, new]) == 0
    out = capsys.readouterr().out
    assert "slower (1, Holm-corrected Mann-Whitney U p < 0.05):" in out
    assert "  test_step[cpu-mnist_mlp-b100-l2] [tensorflow]:" in out
    assert "faster (1," in out
    assert "no significant change: 1 of 3 compared" in out
    assert "only in baseline: 1 (test_step[cpu-mnist_mlp-b100-l1])" in out
    assert "only in new: 1 (test_step[cpu-mnist_mlp-b100-batchnorm])" in out
    assert _cli(["bench-compare", base, new, "--fail-on-slower"]) == 1


def test_bench_compare_bad_input(tmp_path):
    with pytest.raises(RegbenchError, match="missing.json: no such file"):
        _cli(["bench-compare", str(tmp_path / "missing.json"), str(tmp_path / "x.json")])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(RegbenchError, match="bad.json: not a pytest-benchmark JSON file"):
        results.load_run(tmp_path / "bad.json")
    nodata = tmp_path / "nodata.json"
    nodata.write_text(json.dumps({"benchmarks": [
        {"name": "test_step[x]", "stats": {"median": 1.0},
         "extra_info": {"kind": "step", "backend": "tensorflow", "device": "cpu",
                        "problem": "mnist_mlp", "batch": 32, "technique": "none"}}]}))
    with pytest.raises(RegbenchError, match=r"test_step\[x\] has no per-round samples"):
        results.load_run(nodata)
    base, _ = _runs(tmp_path)
    with pytest.raises(RegbenchError, match="--alpha must be in"):
        _cli(["bench-compare", base, base, "--alpha", "2"])


def test_bench_report_command(tmp_path, capsys):
    raw = _write_run(tmp_path / "tensorflow.json", [
        *[_step(t, np.full(5, 0.01 * (1 + i / 10)), batch=b) for i, t in
          enumerate(cases.TECHNIQUES) for b in cases.BATCH_SIZES],
        _matmul(1000, [0.02] * 5)])
    assert _cli(["bench-report", raw, "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == ["README.md", "figures/overhead.png", "fingerprint.json", "report.html",
                     "summary.csv"]
    text = (out / "README.md").read_text()
    assert re.findall(r"^## .*", text, re.M)[:2] == ["## Finding", "## What is timed"]
    assert "| l2 | 1.20 [1.20, 1.20] n=5 | 1.20 [1.20, 1.20] n=5 | 1.20 [1.20, 1.20] n=5 |" \
        in text  # the headline table first: steps 1.2 times the `none` ones
    assert "## mnist_mlp: 784-64-10 on CPU (tensorflow)" in text
    assert "| 32 | l2 | 12 | 0 | 5 | 1.20 [1.20, 1.20] |" in text
    assert "GPU: none available. No GPU was visible" in text
    assert "Early stopping has no per-step cost" in text
    fingerprint = json.loads((out / "fingerprint.json").read_text())
    assert fingerprint[0]["cpu_model"] == "test CPU"
    html = (out / "report.html").read_text()  # the same report, with its contents and plot
    assert '<nav class="toc">' in html and '<a href="#what-is-timed">What is timed</a>' in html
    assert html.count('src="data:image/png;base64,') == 1
    assert "1.20 [1.20, 1.20] n=5" in html


def test_plot_overhead_axes():
    import pandas as pd

    rows = pd.DataFrame([{"technique": t, "batch": b, "ratio": 1.1, "ratio_low": 1.0,
                          "ratio_high": 1.2} for t in cases.TECHNIQUES for b in cases.BATCH_SIZES])
    ax = report.plot_overhead(rows)
    assert ax.get_ylabel() == "step time / step time of none"
    assert len(ax.get_xticklabels()) == len(cases.TECHNIQUES)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["batch 32", "batch 128",
                                                                   "batch 512"]


def test_interleaved_baseline_runs_in_abba_order():
    calls = []
    pairs = timing.Interleaved(lambda: calls.append("none"))
    for _ in range(4):  # what pytest-benchmark's pedantic does per round
        pairs.setup()
        calls.append("technique")
        pairs.teardown()
    assert calls == ["none", "technique", "technique", "none"] * 2
    assert len(pairs.samples) == 4


def test_paired_ratio_cancels_shared_load():
    """Load that both rounds of a pair share widens the unpaired interval, not the paired one."""
    rng = np.random.default_rng(1)
    load = rng.lognormal(0.0, 0.5, 60)  # per pair, shared
    a = 1.5 * load * rng.lognormal(0.0, 0.01, 60)
    b = load * rng.lognormal(0.0, 0.01, 60)
    _, low, high = results.ratio_of_medians(a, b, paired=True)
    _, unpaired_low, unpaired_high = results.ratio_of_medians(a, b)
    assert low < 1.5 < high
    assert high - low < 0.1 * (unpaired_high - unpaired_low)
    with pytest.raises(ValueError, match="paired samples differ in length: 60 and 59"):
        results.ratio_of_medians(a, b[:-1], paired=True)


def test_derive_prefers_the_interleaved_baseline(tmp_path):
    technique = _step("l2", [0.03] * 6)
    technique["extra_info"]["baseline_samples"] = [0.02] * 6  # load doubled while l2 ran
    path = _write_run(tmp_path / "run.json", [_step("none", [0.01] * 6), technique])
    df = results.derive(results.load_runs([path])[0]).set_index("technique")
    assert df.loc["l2", "ratio"] == pytest.approx(1.5)
    assert df.loc["none", "ratio"] == 1.0  # no interleaved rounds: the `none` benchmark


REPORTS = Path(__file__).resolve().parents[1] / "reports" / "benchmarks"


def test_committed_report_is_what_its_raw_json_gives():
    """`bench-report` is deterministic: the committed Markdown regenerates byte for byte."""
    df, machines = results.load_runs(sorted((REPORTS / "raw").glob("*.json")))
    markdown = report.render_report(results.derive(df), machines)
    assert markdown == (REPORTS / "README.md").read_text()


@pytest.mark.slow
def test_the_package_starts_no_backend_and_exposes_what_cli_calls():
    code = ("import sys; from regbench import bench; "
            "assert not {'keras', 'tensorflow', 'jax', 'torch'} & set(sys.modules), sys.modules; "
            "print(*sorted(bench.__all__))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["compare", "format_comparison", "load_runs", "write_report"]


def test_two_runs_of_one_case_are_refused_in_one_line(tmp_path):
    base, _ = _runs(tmp_path)
    with pytest.raises(RegbenchError, match=r"is also in .*base.*give one run of each case"):
        results.load_runs([base, base])


INTEL = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\ncpu MHz\t\t: 2300.000\n"
         "flags\t\t: fpu sse4_1 sse4_2 avx avx2 fma avx512f avx512dq avx512_bf16\n")
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes\nBogoMIPS\t: 50.00\n"


@pytest.mark.parametrize("cpuinfo, isa, mhz", [
    (INTEL, "sse4_2 avx avx2 fma avx512f avx512_bf16", 2300.0),
    (ARM, "none of " + ", ".join(provenance.VECTOR_ISA), None),
    ("", "unknown", None),
])
def test_the_fingerprint_names_the_vector_instruction_sets_and_the_clock(cpuinfo, isa, mhz):
    """Two CPUs of one model name can differ in AVX-512, which decides a matmul's speed."""
    assert (provenance.cpu_isa(cpuinfo), provenance.cpu_mhz(cpuinfo)) == (isa, mhz)


def test_this_machines_fingerprint_has_its_instruction_sets():
    fingerprint = machine.machine_fingerprint()
    assert fingerprint["cpu_isa"] == provenance.cpu_isa() != ""
    assert set(fingerprint) >= {"cpu_model", "cpu_isa", "cpu_mhz", "cpu_cores"}
