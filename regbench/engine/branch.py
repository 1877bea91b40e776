"""Strategy `branch`: several cells side by side in one compiled training step.

Small networks spend most of a training step in framework overhead, not arithmetic. A branch
pack puts K cells that share dataset, model and training settings into one Keras model with K
independent branches: each member keeps its own weights, optimizer state, penalty, dropout
masks, batch-norm statistics, augmentation draws, validation split and data order. The packed
loss is the sum of the members' losses, so each member's gradient is exactly the gradient it
would get alone, and Adam, SGD and RMSprop update every variable on its own. A member's ops are
the ops it runs alone, so its row is the row it gets alone, bit for bit
(`tests/test_engine.py`).
"""

from __future__ import annotations

from regbench import data
from regbench.engine.program import Member, Program, cell_metrics, compile_network
from regbench.recipe import BRANCH
from regbench.study import Cell

NAME = BRANCH
LAYOUT = "branch"


def pack_key(cell: Cell) -> tuple:
    """Cells with equal keys can share one compiled step."""
    return (cell.dataset, cell.model, cell.training)


def sources(cells: list, grid) -> list:
    return cells  # one stream per member


def build(cells: list[Cell], grid, streams) -> Program:
    import keras

    net, members = build_packed(cells, data.info(cells[0].dataset))
    compile_network(net, cells[0].training,
                    [keras.losses.SparseCategoricalCrossentropy() for _ in cells],
                    [cell_metrics() for _ in cells])
    return Program(NAME, net, members, streams, list(range(len(cells))),
                   [f"m{k}_" for k in range(len(cells))], outputs=list)


def build_packed(cells: list[Cell], info):
    """One model over input (batch, K, *image): member k reads slice k, outputs `m{k}`."""
    import keras

    from regbench.models import model_layers

    image = keras.Input(shape=(len(cells), *info.image_shape), name="images")
    outputs, members = [], []
    for k, cell in enumerate(cells):
        layers = model_layers(cell.model, cell.arm, info.classes, cell.seed, info.flip_ok,
                              prefix=f"m{k}_")
        h = image[:, k]
        for layer in layers:
            h = layer(h)
        outputs.append(keras.layers.Identity(name=f"m{k}")(h))
        members.append(Member(layers, prefix=f"m{k}_"))
    return keras.Model(image, outputs, name="pack"), members
