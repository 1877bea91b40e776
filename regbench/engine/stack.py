"""Strategy `stack`: a grid of cells (seeds x arms) trained as one network.

Branch packing keeps each member's ops as they are alone, so a small network still pays the
fixed cost of every op once per member. Stacking removes that for the multilayer perceptron:
each Dense layer of a grid's S x A members is one stacked weight tensor, so a training step is
a handful of large batched matmuls however many members there are. Members at one seed see
the same batches (the data order depends only on the seed), so unless each member transforms
its own input (augmentation, random crop, noise, input dropout) the first layer is one matmul
per seed, (batch, pixels) @ (pixels, A * units): the arms at a seed share the read of the input.

What stays per member: initial weights (the same seeded initializers as alone), penalty
coefficients per layer, max-norm, dropout rates and masks (the masks the cell draws alone),
batch normalization (on or off, momentum, epsilon, statistics over the member's own batch;
before or after the activation, the same for a whole stack), the late L1 switch, KL sparsity,
augmentation, random crops and Gaussian noise (the images the member's own seeded layers make
alone), optimizer state (Adam, SGD and RMSprop act element-wise), and early stopping (the
epoch loop's, per member).
A CNN's conv blocks stack too (`engine/stack_conv.py`): each member's convolutions on its own
block of channels, batch norm over each member's own channels, pooling and local response
normalization within them. What differs from training alone is floating-point rounding
only: a stacked matmul may sum in another order. `tests/test_engine.py` measures the
agreement for every setting the registry says a stack implements.
"""

from __future__ import annotations

import numpy as np

from regbench import data
from regbench.engine.backend import seam
from regbench.engine.conv_choice import CONV_BLOCKS
from regbench.engine.program import Program, compile_network
from regbench.recipe import STACK
from regbench.study import Cell

NAME = STACK
LAYOUT = "stack"
STACK_MAC_BUDGET = 4e6   # members' multiply-adds per example: beyond this a step is compute-bound
MAX_STACK = 64


OWN_INPUT = ("augmentation", "random_crop", "gaussian_noise")  # each member draws its own


def per_member_input(cell: Cell) -> bool:
    """Whether the cell transforms its own input: augmentation, a random crop, Gaussian
    noise, or input dropout where the flattened input is the image (an MLP; a CNN drops its
    flattened conv features)."""
    dropout = cell.arm.get("dropout")
    drops_image = bool(dropout and dropout.input_rate) and cell.model.name == "mlp"
    return any(cell.arm.get(kind) is not None for kind in OWN_INPUT) or drops_image


def stack_key(cell: Cell) -> tuple:
    """Cells with equal keys can share one stacked network: the same data, network shape and
    training, the same kind of input (shared by a seed's members, or per member), and batch
    norm in the same place (a hidden layer is affine-norm-activation with it `before`)."""
    return (cell.dataset, cell.model, cell.training, per_member_input(cell), cell.arm.bn_before())


CONVOLUTIONAL = tuple(CONV_BLOCKS)  # networks with conv blocks
CONV_STACK = 16  # conv members per stack: each is as much arithmetic as alone (see below)


def stack_size(macs: int, convolutional: bool = False) -> int:
    """Members per stack for a network of `macs` multiply-adds per example. An MLP stack
    batches its members' matmuls into larger ones, which pays until the step is
    compute-bound. A conv stack's convolutions stay one per member (`engine/conv_choice.py`),
    so its gain is one compiled program, one input pipeline and one evaluation pass for all,
    whatever the arithmetic."""
    if convolutional:
        return CONV_STACK
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


def sources(cells: list, grid) -> list:
    return [row[0] for row in grid]  # one stream per seed row


def build(cells: list[Cell], grid, streams) -> Program:
    import regbench.engine.stack_layers as stack_layers

    info = data.info(cells[0].dataset)
    net = stack_layers.build_stacked(grid, info, per_member_input(cells[0]),
                                     cells[0].arm.bn_before())
    net(np.zeros((1, len(grid), *info.image_shape), np.float32))  # creates the weights
    rows, cols = len(grid), len(grid[0])
    members = [stack_layers.StackedMember(net, s, a) for s in range(rows) for a in range(cols)]
    streams.draws = net.draws
    compile_network(net, cells[0].training, stack_layers.MemberCrossentropy(),
                    [stack_layers.MemberMetrics(rows, cols)])
    seam().enable_xla(net)
    return Program(NAME, net, members, streams, [s for s in range(rows) for _ in range(cols)],
                   [f"m{k}_" for k in range(rows * cols)],
                   outputs=lambda p: [p[:, s, a] for s in range(rows) for a in range(cols)])
