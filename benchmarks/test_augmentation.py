"""Where augmentation runs: as model layers on the device (regbench's default) or mapped over a
tf.data input pipeline on the host CPU. The in-model cost is `test_step[...augmentation]` minus
`test_step[...none]`; these add the pipeline's own cost and steps fed from each pipeline."""

from __future__ import annotations

import pytest

from regbench.bench import cases, timing

pytest.importorskip("tensorflow", reason="the input pipelines timed here are tf.data's")
from regbench.macs import network_train_flops


@pytest.mark.parametrize("where", ["plain", "augmented"])
@pytest.mark.parametrize("batch", cases.BATCH_SIZES, ids=lambda b: f"b{b}")
@pytest.mark.parametrize("problem", cases.PROBLEMS)
def test_pipeline(benchmark, timed, problem, batch, where):
    """Per batch: the tf.data pipeline with or without the augmentation layers (host CPU)."""
    benchmark.group = f"pipeline {problem} b{batch}"
    layers = timing.augmentation_layers(problem) if where == "augmented" else []
    batches = iter(timing.input_pipeline(*timing.batch_arrays(problem, batch), layers,
                                         prefetch=False))
    timed(lambda: next(batches),
          {"kind": "pipeline", "device": "cpu", "problem": problem, "batch": batch,
           "where": where, "layers": [layer.name for layer in layers]})


@pytest.mark.parametrize("where", ["model", "pipeline"])
@pytest.mark.parametrize("batch", cases.BATCH_SIZES, ids=lambda b: f"b{b}")
@pytest.mark.parametrize("problem", cases.PROBLEMS)
@pytest.mark.parametrize("device", cases.DEVICES)
def test_fed_step(benchmark, timed, device, problem, batch, where):
    """One step fed from a prefetching pipeline; augmentation in the model or the pipeline."""
    benchmark.group = f"fed {device} {problem} b{batch}"
    layers = timing.augmentation_layers(problem) if where == "pipeline" else []
    batches = timing.batches(timing.input_pipeline(*timing.batch_arrays(problem, batch),
                                                   layers, prefetch=True))
    with timing.device_scope(device):
        net = timing.build(problem, "none" if where == "pipeline" else "augmentation", batch)
        timed(timing.fed_step(net, batches),
              {"kind": "fed_step", "device": device, "problem": problem, "batch": batch,
               "where": where, "flops_per_example": network_train_flops(net)})
