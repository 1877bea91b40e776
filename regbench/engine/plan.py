"""The planner: which cells train together, and with which strategy.

The registry (`recipe.REGISTRY`) says which strategies implement each setting; a cell goes
only to a strategy that implements every setting it uses (`strategy_of`). Pack sizes follow
the arithmetic: many small networks per pack, few (or one) large ones.
"""

from __future__ import annotations

import math

import numpy as np

import regbench.engine.branch as branch
import regbench.engine.conv_choice as conv_choice
import regbench.engine.stack as stack
from regbench import data
from regbench.macs import cell_macs
from regbench.recipe import ALONE, BRANCH, REGISTRY, STACK, strategies_for
from regbench.study import Cell, weights

MAX_PACK = 16                # more members add compile time and little throughput on a CPU
PACK_MAC_BUDGET = 1e6        # packs grow while members' multiply-adds per example fit this:
                             # packing pays where framework overhead, not arithmetic, dominates
MIN_PACKED_STEPS = 2000      # a pack compiles for longer: not worth it for shorter trainings
# A stacked step's time, in multiply-adds of arithmetic that take as long: a fixed cost per
# step, one per member per weight (the optimizer's update, the penalties), and the members'
# examples. Fitted on a 2-core AVX-512 CPU to stacks of the tutorial MLP at batch 32 and 128
# (reports/benchmarks/grid.md): 1.7 ms a step, 0.13 ms a member, 3 us an example.
PACK_STEP_MACS = 3e7
MEMBER_WEIGHT_MACS = 44


def pack_size(cell: Cell) -> int:
    """How many cells like this one to pack: many small networks, few (or one) large ones."""
    t = cell.training
    if math.ceil(fit_examples(cell) / t.batch_size) * t.epochs < MIN_PACKED_STEPS:
        return 1
    return int(max(1, min(MAX_PACK, PACK_MAC_BUDGET // _macs(cell))))


def fit_examples(cell: Cell) -> float:
    """Examples the cell trains on per epoch (its subset, or the split's fit part)."""
    t = cell.training
    return t.train_subset or data.info(cell.dataset).train_size * (
        1 - t.validation_fraction)


def strategy_of(cell: Cell) -> str:
    """The fastest strategy that implements every setting of the cell (the registry says
    which do), ignoring pack sizes: a stack, else a branch pack, else alone."""
    supported = strategies_for(cell.model, cell.training, cell.arm)
    if (STACK in supported and cell.model.name in stack.CONVOLUTIONAL
            and not conv_choice.stacks_pay(cell)):
        supported = supported - {STACK}  # measured: a CNN stack is slower here
    return next(name for name in (STACK, BRANCH, ALONE) if name in supported)


def group_key(cell: Cell) -> tuple:
    """Cells with equal keys can train together, with the strategy that heads the key."""
    strategy = strategy_of(cell)
    if strategy == STACK:
        return (STACK, stack.stack_key(cell))
    if strategy == BRANCH:
        return (BRANCH, branch.pack_key(cell))
    return (ALONE, cell.key)


def route(cells: list[Cell]) -> list[tuple[str, list[Cell], list | None]]:
    """How to train a pack (or what is left of one): (strategy, cells, grid of a stack)."""
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(group_key(cell), []).append(cell)
    out = []
    for key, members in groups.items():
        if key[0] == STACK and len(members) > 1:
            for grid in stack.grids(members):
                flat = [cell for row in grid for cell in row]
                out.append((STACK, flat, grid) if len(flat) > 1 else (ALONE, flat, None))
        elif key[0] == BRANCH and len(members) > 1:
            out.append((BRANCH, members, None))
        else:
            out += [(ALONE, [cell], None) for cell in members]
    return out


def plan_packs(cells: list[Cell], limit: int | None = None,
               workers: int = 1) -> list[list[Cell]]:
    """Group cells into packs, keeping the study's order within each group.

    Cells go to the fastest strategy that implements all their settings (`strategy_of`).
    Stacked cells are packed as grids of whole seed rows, so the arms at a seed share their
    input; branch-packed cells by `branch.pack_key`. With `workers` > 1 (and no `limit`),
    large stacks are shared among the workers so that each worker gets about the same work
    (`pack_cost`) once every pack is handed out.
    """
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(group_key(cell), []).append(cell)
    packs, shared = [], []
    for key, members in groups.items():
        if key[0] != STACK:
            size = (limit or pack_size(members[0])) if key[0] == BRANCH else 1
            packs += [members[i:i + size] for i in range(0, len(members), size)]
            continue
        first = members[0]
        convolutional = first.model.name in stack.CONVOLUTIONAL
        size = limit or (stack.stack_size(_macs(first), convolutional)
                         if convolutional or pack_size(first) > 1 else 1)
        for grid in stack.grids(members):
            if not limit and size > 1 and workers > 1 and _cells(grid) >= 2 * MIN_SHARE:
                shared.append((grid, size))
            else:
                packs += _blocks(grid, size)
    packs += _shares(shared, packs, workers)
    position = {id(cell): i for i, cell in enumerate(cells)}
    return sorted(packs, key=lambda p: min(position[id(cell)] for cell in p))  # study order


MIN_SHARE = 4  # a worker's share of a stack: fewer members would pay the compile for little


def pack_cost(members: list[Cell]) -> float:
    """Estimated work of training a pack, in multiply-adds: per member, the forward
    multiply-adds of every example it trains on, plus what its techniques cost per input value
    of the image it sees (`Entry.input_cost`: augmentation), plus per step its weights'
    update (`MEMBER_WEIGHT_MACS`); and per training step of the pack, a fixed cost
    (`PACK_STEP_MACS`). The per-step terms are why an augmented member weighs about 3 plain
    ones at batch 32 and 5 at batch 128: its images cost per example, a plain member's
    update per step."""
    return sum(map(_member_work, members)) + _steps(members) * PACK_STEP_MACS


def _member_work(cell: Cell) -> float:
    """One member's share of `pack_cost`: its examples and its weights' updates."""
    info = data.info(cell.dataset)
    per_value = sum(REGISTRY[t.kind].input_cost for t in cell.arm.techniques)
    per_example = _macs(cell) + per_value * int(np.prod(cell.model.seen_shape(info.image_shape)))
    per_step = MEMBER_WEIGHT_MACS * weights(cell.model, cell.dataset)
    return per_example * fit_examples(cell) * cell.training.epochs + per_step * _steps([cell])


def _steps(members: list[Cell]) -> int:
    """Training steps of the pack's longest member, every epoch."""
    return max(math.ceil(fit_examples(cell) / cell.training.batch_size) * cell.training.epochs
               for cell in members)


def _shares(grids: list, packs: list[list[Cell]], workers: int) -> list[list[Cell]]:
    """Cut stack grids into one share per worker, balancing the workers' work: packs are
    handed out largest first to whichever worker is free (`executors._drive`), so a share is
    a set of whole arm columns (seed rows where there are fewer arms than shares) given one
    at a time to the worker with the least work so far."""
    loads = [0.0] * workers
    for members in sorted(packs, key=pack_cost, reverse=True):
        loads[loads.index(min(loads))] += pack_cost(members)
    out = []
    for grid, size in sorted(grids, key=lambda g: pack_cost(sum(g[0], [])), reverse=True):
        shares = min(workers, _cells(grid) // MIN_SHARE)
        bins = sorted(range(workers), key=loads.__getitem__)[:shares]
        by_arms = len(grid[0]) >= shares
        units = list(zip(*grid)) if by_arms else grid  # columns (one arm) or rows (one seed)
        taken: dict[int, list[int]] = {b: [] for b in bins}
        for i, unit in enumerate(units):
            worker = min(bins, key=loads.__getitem__)
            if not taken[worker]:  # the share's steps, once
                loads[worker] += _steps(list(unit)) * PACK_STEP_MACS
            taken[worker].append(i)
            loads[worker] += sum(map(_member_work, unit))
        for picked in taken.values():
            if picked:
                share = ([[row[i] for i in picked] for row in grid] if by_arms
                         else [grid[i] for i in picked])
                out += _blocks(share, size)
    return out


def _cells(grid: list[list[Cell]]) -> int:
    return len(grid) * len(grid[0])


def _blocks(grid: list[list[Cell]], size: int) -> list[list[Cell]]:
    """A seeds x arms grid cut into blocks of at most `size` cells (`_grid_cut`)."""
    rows, cols = _grid_cut(len(grid), len(grid[0]), size)
    return [[cell for row in grid[s:s + rows] for cell in row[a:a + cols]]
            for s in range(0, len(grid), rows) for a in range(0, len(grid[0]), cols)]


def _grid_cut(seeds: int, arms: int, size: int) -> tuple[int, int]:
    """(seed rows, arm columns) of the blocks that cut a seeds x arms grid into the fewest
    blocks of at most `size` cells; among those, the most even, then the widest (arms at a
    seed share their input)."""
    def rows(cols):
        return max(1, min(seeds, size // cols))

    def cost(cols):
        return math.ceil(seeds / rows(cols)) * math.ceil(arms / cols), rows(cols) * cols, -cols

    cols = min(range(1, min(size, arms) + 1), key=cost)
    return rows(cols), cols


def _macs(cell: Cell) -> int:
    return cell_macs(cell.model, cell.dataset)
