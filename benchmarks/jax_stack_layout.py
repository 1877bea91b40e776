"""On JAX, which layout trains a stack of MLP members faster: stacked kernels with batched
matmuls (what `engine/stack_layers.StackedDense` does), or `jax.vmap` of one member's step?

    python benchmarks/jax_stack_layout.py [members] [batch]

One training step (forward, backward, SGD update) of M members of the tutorial MLP
(784-64-10, ReLU, softmax cross-entropy) on one batch each, both layouts jitted, timed in
interleaved rounds after warm-up; prints each layout's median and the ratio vmap / stacked
with a 95% bootstrap interval over rounds.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROUNDS, STEPS = 15, 20


def init(members: int, seed: int = 0):
    keys = jax.random.split(jax.random.PRNGKey(seed), 2)
    return {"w1": jax.random.normal(keys[0], (members, 784, 64)) * 0.05,
            "b1": jnp.zeros((members, 64)),
            "w2": jax.random.normal(keys[1], (members, 64, 10)) * 0.1,
            "b2": jnp.zeros((members, 10))}


def member_loss(p, x, y):
    """One member: x (B, 784), y (B,)."""
    h = jax.nn.relu(x @ p["w1"] + p["b1"])
    logits = h @ p["w2"] + p["b2"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))


def stacked_loss(p, x, y):
    """All members at once: x (M, B, 784), batched matmuls over stacked kernels."""
    h = jax.nn.relu(jnp.matmul(x, p["w1"]) + p["b1"][:, None, :])
    logits = jnp.matmul(h, p["w2"]) + p["b2"][:, None, :]
    losses = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[..., None], 2), (1, 2))
    return jnp.sum(losses)


@jax.jit
def step_stacked(p, x, y):
    grads = jax.grad(stacked_loss)(p, x, y)
    return jax.tree.map(lambda w, g: w - 0.01 * g, p, grads)


@jax.jit
def step_vmap(p, x, y):
    grads = jax.vmap(jax.grad(member_loss))(p, x, y)
    return jax.tree.map(lambda w, g: w - 0.01 * g, p, grads)


def timed(step, p, x, y) -> float:
    began = time.perf_counter()
    for _ in range(STEPS):
        p = step(p, x, y)
    jax.block_until_ready(p)
    return (time.perf_counter() - began) / STEPS


def main(members: int = 40, batch: int = 32) -> None:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((members, batch, 784), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, 10, (members, batch)), dtype=jnp.int32)
    p = init(members)
    same = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                        step_stacked(p, x, y), step_vmap(p, x, y))
    for step in (step_stacked, step_vmap):  # warm-up: compile, then a few steps
        timed(step, p, x, y)
    samples = {"stacked": [], "vmap": []}
    for _ in range(ROUNDS):  # interleaved, so that a busy moment hits both
        samples["stacked"].append(timed(step_stacked, p, x, y))
        samples["vmap"].append(timed(step_vmap, p, x, y))
    a, b = np.array(samples["vmap"]), np.array(samples["stacked"])
    boot = np.random.default_rng(1)
    ratios = [np.median(boot.choice(a, len(a))) / np.median(boot.choice(b, len(b)))
              for _ in range(4999)]
    low, high = np.percentile(ratios, [2.5, 97.5])
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; {members} members, "
          f"batch {batch}; largest difference of the updated weights {max(same.values()):.2e}")
    print(f"stacked {1e3 * np.median(b):.3f} ms, vmap {1e3 * np.median(a):.3f} ms per step; "
          f"vmap / stacked {np.median(a) / np.median(b):.3f} [{low:.3f}, {high:.3f}], "
          f"{ROUNDS} interleaved rounds of {STEPS} steps")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
