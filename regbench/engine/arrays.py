"""The engine's pipeline off TensorFlow (JAX, torch): numpy batches through
`keras.utils.PyDataset`, gathered on the fly from arrays held once in memory. A stack's random
draws (dropout masks, augmentation) are made inside the network by each member's own seeded
generator, so none come with the batch."""

from __future__ import annotations

import math

import numpy as np


def configure(deterministic: bool = True) -> None:
    """Nothing to set: JAX on the CPU is deterministic; torch is asked to be."""
    import keras

    if keras.backend.backend() == "torch" and deterministic:
        import torch

        torch.use_deterministic_algorithms(True)


def set_threads(threads: int) -> None:
    import keras

    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(threads)


def constant(array: np.ndarray) -> np.ndarray:
    return array


def gather(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    return x[index]


def batches(x, y, index: np.ndarray, batch_size: int, layout: str, draws=None,
            first_step: int = 0):
    """Batches of `index` (n, streams), shaped as `engine.tensorflow.batches` shapes them."""
    if draws is not None:
        raise ValueError("off TensorFlow a stack draws inside its network, not in the pipeline")
    return _batch_class()(x, y, index, batch_size, layout)


def enable_xla(net) -> None:
    """JAX compiles every step with XLA already; torch runs eagerly."""


def in_pipeline() -> bool:
    return False


def _batch_class():
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self, x, y, index, batch_size, layout):
            super().__init__()
            self.x, self.y, self.index = x, y, index
            self.batch_size, self.layout = batch_size, layout

        def __len__(self):
            return math.ceil(len(self.index) / self.batch_size)

        def __getitem__(self, i):
            idx = self.index[i * self.batch_size:(i + 1) * self.batch_size]
            if self.layout == "alone":
                return self.x[idx[:, 0]], self.y[idx[:, 0]]
            if self.layout == "branch":
                return self.x[idx], tuple(self.y[idx[:, j]] for j in range(idx.shape[1]))
            return self.x[idx], self.y[idx]

    return Batches
