"""Strategy `alone`: one cell, one Keras network (`networks.build`). The reference every
other strategy is tested against; it implements every setting of the registry."""

from __future__ import annotations

from regbench import data
from regbench.engine.program import Member, Program, cell_metrics, compile_network
from regbench.recipe import ALONE

NAME = ALONE
LAYOUT = "alone"


def sources(cells: list, grid) -> list:
    return cells


def build(cells: list, grid, streams) -> Program:
    import keras

    from regbench import networks
    from regbench.user_models import flat_layers

    (cell,) = cells
    info = data.info(cell.dataset)
    net = networks.build(cell.model, cell.arm, info.image_shape, info.classes, cell.seed,
                      flip_ok=info.flip_ok)
    compile_network(net, cell.training, keras.losses.SparseCategoricalCrossentropy(),
                    cell_metrics())
    return Program(NAME, net, [Member(flat_layers(net))], streams, [0], [""],
                   outputs=lambda predicted: [predicted])
