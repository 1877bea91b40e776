"""A pack's data: the splits of each seed, its data order, and its batches.

What makes arms at one seed comparable: the same validation split (carved from the training
set), the same training subset and the same per-epoch order, all drawn from the seed alone and
never from the arm. A stream is one such seed's view of the data: a cell trained alone has
one, a branch pack one per member, a stack one per seed row.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from regbench import data
from regbench.engine.backend import seam
from regbench.study import Cell

EVAL_BATCH = 1024  # examples per evaluation batch (Keras's `validation_batch_size`)


def member_indices(cell: Cell, y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the training arrays of the cell's fit and validation examples."""
    t = cell.training
    fit, val = data.split_indices(y_train, t.validation_fraction, cell.seed)
    if t.train_subset:  # a random subset per seed, the same for every arm at that seed
        fit = np.sort(np.random.default_rng([cell.seed, 1]).permutation(fit)[:t.train_subset])
    return fit, val


def scaled(x: np.ndarray) -> np.ndarray:
    """uint8 images as float32 in [0, 1]."""
    return x.astype(np.float32) * np.float32(1 / 255)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of one epoch; depends only on (seed, epoch), never on the arm."""
    return np.random.default_rng([seed, epoch]).permutation(n)


@dataclass
class Streams:
    """Per stream, fit and validation indices into the training arrays and a seed (which
    fixes its order); the test set is every stream's. `layout` is the shape of a batch for
    the strategy's network (see `engine.tensorflow.batches`)."""
    x: Any                     # training images, float32, held once
    y: np.ndarray              # training labels, int32
    x_test: Any
    y_test: np.ndarray
    fit: np.ndarray            # (streams, n_fit)
    val: np.ndarray            # (streams, n_val)
    seeds: list[int]
    layout: str
    draws: Any = None          # (step, images) -> a stack's random draws (`PipelineDraws`)

    @classmethod
    def load(cls, sources: list[Cell], layout: str, data_dir: str | None) -> Streams:
        """One stream per cell of `sources` (all of one dataset)."""
        arrays = data.load(sources[0].dataset, data_dir=data_dir)
        indices = [member_indices(cell, arrays.y_train) for cell in sources]
        return cls(*_held(arrays), np.stack([fit for fit, _ in indices]),
                   np.stack([val for _, val in indices]), [cell.seed for cell in sources],
                   layout)

    def index(self, split: str) -> np.ndarray:
        """(n, streams) indices of a split ("fit", "val" or "test")."""
        if split == "test":
            return np.tile(np.arange(len(self.y_test))[:, None], (1, len(self.seeds)))
        return (self.fit if split == "fit" else self.val).T

    def arrays(self, split: str) -> tuple:
        return (self.x_test, self.y_test) if split == "test" else (self.x, self.y)

    def batches(self, split: str):
        """Evaluation batches of a split, in order."""
        return seam().batches(*self.arrays(split), self.index(split), EVAL_BATCH, self.layout)

    def epoch(self, epoch: int, batch_size: int):
        """One epoch's training batches, each stream in its own order (`epoch_order`)."""
        n_fit = self.fit.shape[1]
        order = np.stack([idx[epoch_order(n_fit, seed, epoch)]
                          for idx, seed in zip(self.fit, self.seeds)], axis=1)
        first_step = epoch * math.ceil(n_fit / batch_size)  # training steps so far
        return seam().batches(self.x, self.y, order, batch_size, self.layout, self.draws,
                                first_step)

    def chunks(self, split: str, size: int):
        """(inputs, labels) of a split in chunks of `size` examples, as numpy arrays shaped for
        the network: inputs (n, *image) alone, else (n, streams, *image); labels (n, streams)."""
        x, y = self.arrays(split)
        index = self.index(split)
        for start in range(0, len(index), size):
            rows = index[start:start + size]
            yield seam().gather(x, rows[:, 0] if self.layout == "alone" else rows), y[rows]


@functools.lru_cache(maxsize=1)
def _held(arrays: data.Arrays) -> tuple:
    """A dataset's images scaled and held by the backend once per process (the last one
    used): every pack of a study reads the same arrays."""
    return (seam().constant(scaled(arrays.x_train)), arrays.y_train.astype(np.int32),
            seam().constant(scaled(arrays.x_test)), arrays.y_test.astype(np.int32))
