"""The training-step benchmark grid, as plain data: problems x techniques x batch sizes x
devices, and the profiles that say how long each case is timed.

Everything that builds, times or reports a case reads it from here, so the suite in
`benchmarks/` and the report's tables always agree on what the grid is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    """The arm of one technique of the grid (its recipe-default settings)."""
    return Arm(technique, TECHNIQUES[technique])
