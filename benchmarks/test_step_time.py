"""One optimizer step of every technique: problem x technique x batch size x device."""

from __future__ import annotations

import pytest

from regbench.bench import cases, timing
from regbench.macs import forward_macs, network_train_flops


# The last parameter varies fastest: one (device, problem, batch) group after the other, so the
# group's shared `none` model is built once.
@pytest.mark.parametrize("technique", cases.TECHNIQUES)
@pytest.mark.parametrize("batch", cases.BATCH_SIZES, ids=lambda b: f"b{b}")
@pytest.mark.parametrize("problem", cases.PROBLEMS)
@pytest.mark.parametrize("device", cases.DEVICES)
def test_step(benchmark, timed, baseline_step, device, problem, batch, technique):
    """Rounds interleave with rounds of a separate `none` model (for `none` too: a null check
    of the ratio), so the overhead ratio holds on a machine whose load varies."""
    benchmark.group = f"{device} {problem} b{batch}"
    with timing.device_scope(device):
        baseline = baseline_step(device, problem, batch)
        net = timing.build(problem, technique, batch)
        x, y = timing.on_device(*timing.batch_arrays(problem, batch))
        macs = forward_macs(net)
        timed(timing.train_step(net, x, y), {
            "kind": "step", "device": device, "problem": problem, "batch": batch,
            "technique": technique, "macs_per_example": macs,
            "flops_per_example": network_train_flops(net), "params": net.count_params()},
            baseline=baseline)


@pytest.mark.parametrize(("device", "n"), [(device, n) for device, sizes in
                                          cases.MATMUL_SIZES.items() for n in sizes],
                         ids=str)
def test_matmul(benchmark, timed, device, n):
    """The device's float32 matmul throughput with this backend: the roofline's peak."""
    benchmark.group = f"{device} matmul"
    with timing.device_scope(device):
        a, b = timing.matmul_operands(n)
        timed(lambda: timing.matmul(a, b),
              {"kind": "matmul", "device": device, "n": n, "flops": 2 * n ** 3})
