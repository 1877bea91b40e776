"""Does the data order explain the naive loop's lower `none` accuracy at batch 32?

    REGBENCH_DATA_DIR=../shared/datasets python benchmarks/naive_order.py keras|order|noxla

Trains the `none` cells of bench-grid's `mnist_b32` configuration (the tutorial MLP, 5 seeds,
10 epochs) as the naive loop does (`regbench.bench.grid.naive_network`: a fresh `Sequential`,
default `fit`), in one variant: `keras`, as there (Keras shuffles); `order`, fed regbench's
per-seed order (`engine.data.epoch_order`), one epoch a call without shuffling; `noxla`,
Keras's shuffle without XLA. Prints each seed's test accuracy, then their mean and sd.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from regbench import data
from regbench.bench.grid import CONFIGS, cells_of, naive_network
from regbench.engine.data import epoch_order, member_indices, scaled


def main(variant: str) -> None:
    config = next(c for c in CONFIGS if c.name == "mnist_b32")
    cells = [c for c in cells_of(config) if c.arm.label == "none"]
    info = data.info("mnist")
    arrays = data.load("mnist", data_dir=os.environ.get("REGBENCH_DATA_DIR"))
    x, y = scaled(arrays.x_train), arrays.y_train.astype(np.int32)
    x_test, y_test = scaled(arrays.x_test), arrays.y_test.astype(np.int32)
    accuracies = []
    for cell in cells:
        fit, _ = member_indices(cell, arrays.y_train)
        net = naive_network(cell, info, jit_compile=False if variant == "noxla" else "auto")
        batch, epochs = cell.training.batch_size, cell.training.epochs
        if variant == "order":
            for epoch in range(epochs):
                index = fit[epoch_order(len(fit), cell.seed, epoch)]
                net.fit(x[index], y[index], batch_size=batch, epochs=1, shuffle=False,
                        verbose=0)
        else:
            net.fit(x[fit], y[fit], batch_size=batch, epochs=epochs, verbose=0)
        accuracy = net.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
        accuracies.append(accuracy)
        print(f"{variant} seed {cell.seed}: test accuracy {accuracy:.4f}", flush=True)
    print(f"{variant}: {np.mean(accuracies):.4f} ± {np.std(accuracies, ddof=1):.4f} "
          f"(n = {len(accuracies)})")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("keras", "order", "noxla"):
        sys.exit("usage: python benchmarks/naive_order.py keras|order|noxla")
    main(sys.argv[1])
