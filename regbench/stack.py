"""Stacked execution: a grid of small MLP cells (seeds x arms) trained as one network.

Branch packing (`pack.py`) keeps each member's ops as they are alone, so a small network still
pays the fixed cost of every op once per member. Stacking removes that for the multilayer
perceptron: each Dense layer of a grid's S x A members is one stacked weight tensor, so a
training step is a handful of large batched matmuls however many members there are. Members at
one seed see the same batches (the data order depends only on the seed), so unless each member
transforms its own input (augmentation, input dropout) the first layer is one matmul per seed,
(batch, pixels) @ (pixels, A * units): the arms at a seed share the read of the input.

What stays per member: initial weights (the same seeded initializers as alone), penalty
coefficients per layer, max-norm, dropout rates and masks (the masks the cell draws alone:
`stack_layers.StackedDropout`, `stack_layers.PipelineDraws`), batch normalization (on or off,
momentum, epsilon, statistics over the member's own batch), augmentation (the images the
member's own seeded Keras layers make alone, drawn in the input pipeline on TensorFlow:
`stack_layers.PipelineDraws`), optimizer state (Adam, SGD and RMSprop act element-wise), and
early stopping (Keras's EarlyStopping on the member's validation cross-entropy, via
`pack.fit_pack`). What differs from training alone is floating-point rounding only: a
stacked matmul may sum in another order.
`tests/test_pack.py` measures the agreement for every technique.
"""

from __future__ import annotations

import dataclasses

from regbench.study import Cell

STACK_MAC_BUDGET = 4e6   # members' multiply-adds per example: beyond this a step is compute-bound
MAX_STACK = 64

# What a stacked network implements; any other setting trains alone or in a branch pack.
_SETTINGS = {
    "l1": {"factor", "layers"}, "l2": {"factor", "layers"}, "l1_l2": {"l1", "l2", "layers"},
    "dropout": {"rate", "input_rate"}, "batchnorm": {"momentum", "epsilon"},
    "augmentation": {"rotation", "shift", "flip"},
    "early_stopping": {"patience", "min_delta", "restore_best_weights"}, "max_norm": {"c"},
}
_MODEL = {"name", "hidden", "activation", "filters"}
_TRAINING = {"optimizer", "learning_rate", "momentum", "batch_size", "epochs",
             "validation_fraction", "train_subset"}


def _others_default(settings, known: set) -> bool:
    """True if every field of `settings` outside `known` has its default value."""
    return all(getattr(settings, f.name) == f.default
               for f in dataclasses.fields(settings) if f.name not in known)


def stackable(cell: Cell) -> bool:
    """Whether the cell's network and training are ones a stacked network reproduces."""
    return (cell.model.name == "mlp" and _others_default(cell.model, _MODEL)
            and _others_default(cell.training, _TRAINING)
            and all(t.kind in _SETTINGS and _others_default(t, _SETTINGS[t.kind])
                    for t in cell.arm.techniques))


def augments(cell: Cell) -> bool:
    return cell.arm.get("augmentation") is not None


def stack_key(cell: Cell) -> tuple:
    """Cells with equal keys can share one stacked network: the same data, network shape and
    training, and the same kind of input (shared by a seed's members, or transformed per
    member by augmentation or input dropout)."""
    dropout = cell.arm.get("dropout")
    per_member = augments(cell) or bool(dropout and dropout.input_rate)
    return (cell.dataset, cell.model, cell.training, per_member)


def stack_size(cell: Cell, macs: int) -> int:
    return int(max(1, min(MAX_STACK, STACK_MAC_BUDGET // macs)))


def grids(cells: list[Cell]) -> list[list[list[Cell]]]:
    """Cells (of one stack key) as grids: rows are seeds, columns arms, every row the same
    arms. Rows with another set of arms (a study resumed half-way) form grids of their own."""
    rows: dict[int, list[Cell]] = {}
    for cell in cells:
        rows.setdefault(cell.seed, []).append(cell)
    by_arms: dict[tuple, list[list[Cell]]] = {}
    for row in rows.values():
        by_arms.setdefault(tuple(cell.arm.label for cell in row), []).append(row)
    return list(by_arms.values())
