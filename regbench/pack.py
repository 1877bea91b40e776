"""Packed execution: several cells trained side by side in one compiled training step.

Small networks spend most of a training step in framework overhead, not arithmetic. A pack
puts K cells that share dataset, model and training settings (the arms and seeds of a study)
into one Keras model with K independent branches: each member keeps its own weights, optimizer
state, penalty, dropout masks, batch-norm statistics, augmentation draws, validation split and
data order. The packed loss is the sum of the members' losses, so each member's gradient is
exactly the gradient it would get alone, and Adam/SGD/RMSprop update every variable on its own.

Per member, what differs from training alone is only floating-point rounding (a fused XLA
program may order sums differently): a member starts from the same weights, sees the same
batches, and gets the same random draws. Keras's EarlyStopping runs once per member on that
member's validation cross-entropy; a stopped member keeps being computed (its branch is part
of the compiled program) but its weights are frozen in a snapshot taken when it stopped, as
they would be had it trained alone. After training, each member is copied into its own plain
network and evaluated by the same code as a cell trained alone (`train.result_row`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from regbench import data, train
from regbench.study import Cell

MAX_PACK = 16                # more members add compile time and little throughput on a CPU
PACK_MAC_BUDGET = 1e6        # packs grow while members' multiply-adds per example fit this:
                             # packing pays where framework overhead, not arithmetic, dominates
MIN_PACKED_STEPS = 2000      # a pack compiles for longer: not worth it for shorter trainings


def pack_key(cell: Cell) -> tuple:
    """Cells with equal keys can share one compiled step."""
    return (cell.dataset, cell.model, cell.training)


def pack_size(cell: Cell) -> int:
    """How many cells like this one to pack: many small networks, few (or one) large ones."""
    info = data.DATASETS[cell.dataset]
    t = cell.training
    if math.ceil(fit_examples(cell) / t.batch_size) * t.epochs < MIN_PACKED_STEPS:
        return 1
    return int(max(1, min(MAX_PACK, PACK_MAC_BUDGET // macs_per_example(cell.model, info))))


def fit_examples(cell: Cell) -> float:
    """Examples the cell trains on per epoch (its subset, or the split's fit part)."""
    t = cell.training
    return t.train_subset or data.DATASETS[cell.dataset].train_size * (
        1 - t.validation_fraction)


def macs_per_example(model, info) -> int:
    """Multiply-adds of one forward pass through the model's Dense and Conv2D layers."""
    macs = 0
    side, channels = info.image_shape[0], info.image_shape[-1]
    if model.name == "cnn":
        for filters in model.filters:  # 3x3 'same' convolution, then 2x2 pooling
            macs += side * side * 9 * channels * filters
            side, channels = side // 2, filters
    width = side * side * channels if model.name == "cnn" else int(np.prod(info.image_shape))
    for units in (*model.hidden, info.classes):
        macs += width * units
        width = units
    return macs


def plan_packs(cells: list[Cell], limit: int | None = None,
               workers: int = 1) -> list[list[Cell]]:
    """Group cells into packs, keeping the study's order within each group.

    Stackable cells (`stack.stackable`) are packed as grids of whole seed rows, so the arms at
    a seed share their input; other cells as branches of one model (`pack_key`). With
    `workers` > 1 (and no `limit`), large stacks are shared among the workers so that each
    worker gets about the same work (`pack_cost`) once every pack is handed out.
    """
    from regbench import stack

    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        key = ("stack", stack.stack_key(cell)) if stack.stackable(cell) else pack_key(cell)
        groups.setdefault(key, []).append(cell)
    packs, shared = [], []
    for key, members in groups.items():
        if key[0] != "stack":
            size = limit or pack_size(members[0])
            packs += [members[i:i + size] for i in range(0, len(members), size)]
            continue
        size = limit or (stack.stack_size(members[0], _macs(members[0]))
                         if pack_size(members[0]) > 1 else 1)
        for grid in stack.grids(members):
            if not limit and size > 1 and workers > 1 and _cells(grid) >= 2 * MIN_SHARE:
                shared.append((grid, size))
            else:
                packs += _blocks(grid, size)
    packs += _shares(shared, packs, workers)
    position = {id(cell): i for i, cell in enumerate(cells)}
    return sorted(packs, key=lambda p: min(position[id(cell)] for cell in p))  # study order


MIN_SHARE = 4  # a worker's share of a stack: fewer members would pay the compile for little
AUGMENT_MACS_PER_VALUE = 64  # an augmented input value costs about as much as 64 multiply-adds
                             # (rotation and shift of MNIST: an augmented stacked member of
                             # the tutorial MLP trains at half the speed of a plain one)


def pack_cost(members: list[Cell]) -> float:
    """Estimated work of training a pack: per member, the forward multiply-adds of every
    example it trains on, plus the cost of augmenting them."""
    total = 0.0
    for cell in members:
        info = data.DATASETS[cell.dataset]
        per_example = macs_per_example(cell.model, info)
        if cell.arm.get("augmentation") is not None:
            per_example += AUGMENT_MACS_PER_VALUE * int(np.prod(info.image_shape))
        total += per_example * fit_examples(cell) * cell.training.epochs
    return total


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
            taken[worker].append(i)
            loads[worker] += pack_cost(list(unit))
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
    return macs_per_example(cell.model, data.DATASETS[cell.dataset])


class _Member:
    """The view of one member that Keras's EarlyStopping needs: weights and a stop flag."""

    def __init__(self, layers: list):
        self.layers = [layer for layer in layers if layer.weights]
        self.stop_training = False

    def get_weights(self) -> list:
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: list) -> None:
        weights = list(weights)
        for layer in self.layers:
            n = len(layer.weights)
            layer.set_weights(weights[:n])
            weights = weights[n:]

    def kernels(self) -> dict:
        from regbench.models import kernels

        return {name.split("_", 1)[1]: w for name, w in kernels(self.layers).items()}

    def penalty(self) -> float:
        import keras

        return float(sum(float(keras.ops.convert_to_numpy(loss))
                         for layer in self.layers for loss in layer.losses))


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
        members.append(_Member(layers))
    return keras.Model(image, outputs, name="pack"), members


@dataclass
class Streams:
    """A pack's data: per stream (a member of a branch pack, a seed row of a stack) its fit
    and validation indices into `x`/`y` and its seed, which fixes its data order."""
    x: Any
    y: Any
    fit: np.ndarray            # (streams, n_fit)
    val: np.ndarray            # (streams, n_val)
    seeds: list[int]
    split_labels: bool         # labels as one tensor per stream (branch packs' K outputs)
    draws: Any = None          # (step, images) -> a stack's random draws (`PipelineDraws`)

    def batches(self, index: np.ndarray, batch_size: int):
        """Batches of (x: (b, streams, *image), labels) from an (n, streams) index matrix:
        stream k's example i is x[index[i, k]]."""
        import tensorflow as tf

        x, y, k = self.x, self.y, index.shape[1]
        if self.split_labels:
            def gather(idx):
                return tf.gather(x, idx), tuple(tf.gather(y, idx[:, j]) for j in range(k))
        else:
            def gather(idx):
                return tf.gather(x, idx), tf.gather(y, idx)
        return train.untuned(tf.data.Dataset.from_tensor_slices(index).batch(batch_size)
                             .map(gather).prefetch(4))

    def epoch(self, epoch: int, batch_size: int):
        """One epoch's batches, in each stream's own order (`train.epoch_order`)."""
        n_fit = self.fit.shape[1]
        order = np.stack([idx[train.epoch_order(n_fit, seed, epoch)]
                          for idx, seed in zip(self.fit, self.seeds)], axis=1)
        if self.draws is None:
            return self.batches(order, batch_size)
        import tensorflow as tf

        from regbench.provenance import usable_cores

        x, y, draws = self.x, self.y, self.draws
        first_step = epoch * math.ceil(n_fit / batch_size)  # training steps so far

        def gather(step, idx):
            images = tf.gather(x, idx)
            return {"images": images, **draws(step, images)}, tf.gather(y, idx)
        # Per-member draws (augmentation above all) dominate a batch: made on every core, in order.
        return train.untuned(tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
                             .enumerate(start=first_step)
                             .map(gather, num_parallel_calls=usable_cores(), deterministic=True)
                             .prefetch(4))


def evaluate_pack(net, members: list, streams: Streams, x_test, y_test) -> list:
    """Per member, what `train.evaluate` gives for a cell alone, in three passes in all."""
    k = len(streams.seeds)
    test = Streams(x_test, y_test, streams.fit, streams.val, streams.seeds, streams.split_labels)
    scores = {}
    for name, source, index in (
            ("train", streams, streams.fit.T), ("val", streams, streams.val.T),
            ("test", test, np.tile(np.arange(len(y_test))[:, None], (1, k)))):
        logs = net.evaluate(source.batches(index, train.EVAL_BATCH), verbose=0,
                            return_dict=True)
        scores[name] = (logs, len(index))
    out = []
    for j, member in enumerate(members):
        evaluation = {}
        for name, split in (("train", "fit"), ("val", "val"), ("test", "test")):
            logs, n = scores[name]
            evaluation[f"{name}_acc"] = float(logs[f"m{j}_acc"])
            evaluation[f"{name}_xent"] = float(logs[f"m{j}_xent"])
            evaluation[f"n_{split}"] = n
        evaluation["kernels"] = member.kernels()
        evaluation["penalty"] = member.penalty()
        out.append(evaluation)
    return out


def fit_pack(net, members: list, cells: list[Cell], streams: Streams,
             on_epoch=None) -> list[dict]:
    """Train the pack epoch by epoch; per member, the same record `train.fit_epochs` returns.

    A member needs `get_weights`, `set_weights`, `stop_training` and `penalty()`.
    """
    t = cells[0].training
    stoppers = [train.early_stopper(cell, member) for cell, member in zip(cells, members)]
    records = [{"history": {}, "epoch_s": [], "diverged_epoch": None, "stopped_epoch": None,
                "snapshot": None} for _ in cells]
    val = streams.batches(streams.val.T, train.EVAL_BATCH)
    for epoch in range(t.epochs):
        active = [r["snapshot"] is None for r in records]
        if not any(active):
            break
        began = time.perf_counter()
        logs = net.fit(streams.epoch(epoch, t.batch_size), validation_data=val,
                       epochs=1, shuffle=False, verbose=0).history
        seconds = time.perf_counter() - began
        logs = {k: float(v[-1]) for k, v in logs.items()}
        for k, (member, stopper, record) in enumerate(zip(members, stoppers, records)):
            if not active[k]:
                continue
            mine = _member_logs(logs, k, member.penalty())
            for name, value in mine.items():
                record["history"].setdefault(name, []).append(value)
            record["epoch_s"].append(seconds)
            if not math.isfinite(mine["loss"]):
                record["diverged_epoch"] = epoch + 1
                record["snapshot"] = member.get_weights()
                continue
            if stopper:
                stopper.on_epoch_end(epoch, mine)
                if member.stop_training:
                    stopper.on_train_end()  # restores the best weights if asked to
                    record["stopped_epoch"] = stopper.stopped_epoch + 1
                    record["snapshot"] = member.get_weights()
        if on_epoch:
            on_epoch(epoch + 1, t.epochs, {"val_acc": float(np.mean(
                [logs[f"val_m{k}_acc"] for k in range(len(cells))]))})
    for member, stopper, record in zip(members, stoppers, records):
        if record["snapshot"] is not None:
            member.set_weights(record.pop("snapshot"))
        else:
            record.pop("snapshot")
            if stopper:
                stopper.on_train_end()
    return records


def _member_logs(logs: dict, k: int, penalty: float) -> dict:
    """Member k's epoch logs under the names a cell trained alone has.

    `loss`/`val_loss` are the data cross-entropy plus the penalty at the end of the epoch
    (alone, `loss` averages the penalty over the epoch's steps instead).
    """
    out = {}
    for prefix in ("", "val_"):
        out[f"{prefix}acc"] = logs[f"{prefix}m{k}_acc"]
        out[f"{prefix}xent"] = logs[f"{prefix}m{k}_xent"]
        out[f"{prefix}loss"] = out[f"{prefix}xent"] + penalty
    return out


def run_pack(cells: list[Cell], data_dir: str | None = None, deterministic: bool = True,
             on_epoch=None) -> list[dict]:
    """Train cells as one pack and return one result row per cell, in order."""
    from regbench import stack

    if len(cells) == 1:
        return [train.run_cell(cells[0], data_dir, deterministic, on_epoch)]
    if not all(map(stack.stackable, cells)):
        return _train(cells, data_dir, deterministic, on_epoch)
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(stack.stack_key(cell), []).append(cell)
    rows = {}
    for group in groups.values():
        for grid in stack.grids(group):
            flat = [cell for row in grid for cell in row]
            rows.update(zip(map(id, flat), _train(flat, data_dir, deterministic, on_epoch, grid)))
    return [rows[id(cell)] for cell in cells]


def _train(cells: list[Cell], data_dir, deterministic: bool, on_epoch, grid=None) -> list[dict]:
    """Rows for `cells`: branches of one model, or (with `grid`, the same cells as seed rows)
    one stacked network."""
    import keras
    import tensorflow as tf

    info = data.DATASETS[cells[0].dataset]
    arrays = data.load(cells[0].dataset, data_dir=data_dir)
    sources = [row[0] for row in grid] if grid else cells  # one data stream per seed row
    indices = [train.member_indices(cell, arrays.y_train) for cell in sources]
    streams = Streams(tf.constant(train.scaled(arrays.x_train)),
                      tf.constant(arrays.y_train.astype(np.int32)),
                      np.stack([fit for fit, _ in indices]), np.stack([val for _, val in indices]),
                      [cell.seed for cell in sources], split_labels=grid is None)

    keras.backend.clear_session()
    keras.utils.set_random_seed(cells[0].seed)
    if grid:
        from regbench import stack_layers

        net = stack_layers.build_stacked(grid, info)
        net(np.zeros((1, len(grid), *info.image_shape), np.float32))  # creates the weights
        members = [stack_layers.StackedMember(net, s, a)
                   for s in range(len(grid)) for a in range(len(grid[0]))]
        streams.draws = net.draws
        loss = stack_layers.MemberCrossentropy()
        metrics = [stack_layers.MemberMetrics(len(grid), len(grid[0]))]
    else:
        net, members = build_packed(cells, info)
        loss = [keras.losses.SparseCategoricalCrossentropy() for _ in cells]
        metrics = [[keras.metrics.SparseCategoricalAccuracy(name="acc"),
                    keras.metrics.SparseCategoricalCrossentropy(name="xent")] for _ in cells]
    net.compile(optimizer=train.make_optimizer(cells[0].training), loss=loss, metrics=metrics,
                steps_per_execution=train.STEPS_PER_EXECUTION, jit_compile="auto")
    if grid and keras.backend.backend() == "tensorflow":
        # XLA fuses the per-member element-wise work (penalties, constraints, masks, the
        # optimizer) into few loops: about 2x faster here. Keras turns it off whenever TF op
        # determinism is on; XLA on CPU is deterministic for these ops (tests/test_pack.py
        # trains a stack twice and compares), so it is forced on. Random draws, which XLA
        # makes differently, come with the batch (`stack_layers.PipelineDraws`).
        net._jit_compile = True
    started = time.perf_counter()
    records = fit_pack(net, members, cells, streams, on_epoch)
    fit_s = time.perf_counter() - started

    evaluations = evaluate_pack(net, members, streams, tf.constant(train.scaled(arrays.x_test)),
                                tf.constant(arrays.y_test.astype(np.int32)))
    rows = []
    for cell, record, evaluation in zip(cells, records, evaluations):
        record.update(fit_s=fit_s, pack_size=len(cells))
        rows.append(train.build_row(cell, evaluation, record, deterministic))
    return rows
