"""Packed execution: a member trained in a pack ends where it would have alone.

Two engines: branch packs (one Keras branch per member: identical ops, so identical results)
and stacks (stacked weights, batched matmuls: the same maths summed in another order).
"""

from __future__ import annotations

import pytest

from regbench import pack, stack, train
from regbench.data import DATASETS
from regbench.recipe import Model
from regbench.study import parse_study

# Every technique, one arm each, plus a combination; a learning rate high enough that early
# stopping with patience 0 fires within the budget for some seeds.
ARMS = ["none", "l1", "l2", "l1_l2", "dropout", "batchnorm", "augmentation", "max_norm",
        "early_stopping", "l2+dropout+batchnorm+early_stopping"]
STUDY = {
    "datasets": ["mnist"],
    "seeds": [1],
    "model": {"hidden": [16]},
    "training": {"batch_size": 50, "epochs": 4, "train_subset": 600, "learning_rate": 0.02},
    "techniques": {"max_norm": {"c": 0.5}, "early_stopping": {"patience": 0}},
    "design": {"kind": "explicit", "arms": ARMS},
}
# Branch packs, measured identical on TensorFlow CPU: a member's ops are the ops it runs alone.
TOLERANCE = 1e-6
# Stacks, measured on TensorFlow 2.21 CPU over these 48 steps at learning rate 0.02: stopped
# and best epochs equal; accuracies, norms and penalties equal (to 1e-4) for 19 of 20 cells;
# l1_l2 at seed 2 within 4 of 600 examples and 0.3% of its penalty (L1's gradient flips sign
# at zero, which amplifies rounding); cross-entropies within 5e-3. A stacked matmul rounds
# differently and training amplifies it, so a longer training drifts further; the benchmark
# (`regbench bench-grid`) compares whole accuracy distributions instead.
STACK_ABS = {"acc": 1e-2, "xent": 2e-2, "penalty": 1e-3}
STACK_REL = 1e-2
COMPARED = ["train_acc", "train_xent", "val_acc", "val_xent", "test_acc", "test_xent",
            "penalty", "l1_norm", "l2_norm", "sparsity_lt_1e-3", "epochs_run", "best_epoch",
            "stopped_epoch", "n_fit", "n_val", "n_test", "status"]


@pytest.fixture(scope="module")
def alone(data_dir):
    """Every cell of the two-seed study trained alone, by key."""
    train.configure(deterministic=True)
    cells = parse_study({**STUDY, "seeds": [1, 2]}, "pack-test").cells()
    return {cell.key: train.run_cell(cell, str(data_dir)) for cell in cells}


@pytest.fixture(scope="module")
def trained(data_dir, alone):
    """Seed 1's cells as branches of one model."""
    cells = parse_study(STUDY, "pack-test").cells()
    packed = pack._train(cells, str(data_dir), True, None)
    return cells, packed, [alone[cell.key] for cell in cells]


@pytest.fixture(scope="module")
def stacked(data_dir, alone):
    """Both seeds' cells as stacks (one per stack key: with and without random draws, and
    with per-member input), each a grid of 2 seeds x its arms."""
    cells = parse_study({**STUDY, "seeds": [1, 2]}, "pack-test").cells()
    return cells, pack.run_pack(cells, str(data_dir)), [alone[cell.key] for cell in cells]


@pytest.mark.parametrize("index", range(len(ARMS)))
def test_branch_member_equals_cell_trained_alone(trained, index):
    cells, packed, alone = trained
    mine, reference = packed[index], alone[index]
    assert mine["key"] == reference["key"] == cells[index].key
    assert mine["pack_size"] == len(cells) and reference["pack_size"] == 1
    for column in COMPARED:
        a, b = mine[column], reference[column]
        if isinstance(b, float):
            assert a == pytest.approx(b, abs=TOLERANCE), column
        else:
            assert a == b, column
    for name in ("val_xent", "val_acc", "xent", "acc"):
        assert mine["history"][name] == pytest.approx(reference["history"][name],
                                                      abs=TOLERANCE), name


def _stack_tolerance(column: str) -> dict:
    for suffix, tolerance in STACK_ABS.items():
        if column.endswith(suffix):
            return {"abs": tolerance, "rel": STACK_REL}
    return {"abs": 1e-6, "rel": STACK_REL}


@pytest.mark.parametrize("index", range(2 * len(ARMS)))
def test_stacked_member_equals_cell_trained_alone(stacked, index):
    cells, packed, alone = stacked
    mine, reference = packed[index], alone[index]
    assert mine["key"] == reference["key"] == cells[index].key
    assert mine["pack_size"] > 1
    for column in COMPARED:
        a, b = mine[column], reference[column]
        if isinstance(b, float):
            assert a == pytest.approx(b, **_stack_tolerance(column)), column
        else:
            assert a == b, column
    for name in ("val_xent", "val_acc", "xent", "acc"):
        assert mine["history"][name] == pytest.approx(reference["history"][name],
                                                      **_stack_tolerance(name)), name


def test_stack_is_deterministic_under_xla(data_dir):
    """Stacks without random draws run under XLA (forced on despite op determinism)."""
    study = {**STUDY, "seeds": [1, 2], "design": {"kind": "explicit",
                                                    "arms": ["none", "l1", "max_norm"]}}
    cells = parse_study(study, "xla").cells()
    first, second = (pack.run_pack(cells, str(data_dir)) for _ in range(2))
    for a, b in zip(first, second):
        assert {k: a[k] for k in COMPARED} == {k: b[k] for k in COMPARED}
        for name in ("val_xent", "val_acc", "xent", "acc", "loss"):
            assert a["history"][name] == b["history"][name]


@pytest.mark.parametrize("shared_input", [False, True])
def test_member_penalty_has_the_gradient_of_the_members_keras_penalties(shared_input):
    import keras
    import numpy as np
    import tensorflow as tf

    from regbench.stack_layers import MemberPenalty

    rng = np.random.default_rng(0)
    l1 = np.array([[0.0, 0.01, 0.0], [0.02, 0.0, 0.5]], np.float32)
    l2 = np.array([[0.0, 0.0, 0.01], [0.03, 0.0, 0.0]], np.float32)
    kernel = tf.Variable(rng.normal(size=(2, 5, 3, 4) if shared_input else (2, 3, 5, 4))
                         .astype(np.float32))
    kernel[0, 0].assign(tf.zeros_like(kernel[0, 0]))  # sign(0) = 0, as Keras's |w| gradient
    with tf.GradientTape(persistent=True) as tape:
        expected = sum(
            keras.regularizers.L1L2(l1=float(l1[s, a]), l2=float(l2[s, a]))(
                kernel[s, :, a] if shared_input else kernel[s, a])
            for s in range(2) for a in range(3))
        got = MemberPenalty(l1, l2, shared_input)(kernel)
    assert float(got) == 0.0  # the value is added once per epoch instead (`penalty()`)
    np.testing.assert_allclose(tape.gradient(got, kernel), tape.gradient(expected, kernel),
                               rtol=1e-6, atol=1e-7)
    assert MemberPenalty(l1, 0 * l2, shared_input).l2 is None  # no term for absent factors


def test_pipeline_augmentation_equals_the_layers_alone(data_dir):
    """A stack's input pipeline draws, at every training step, exactly the augmented images
    the cell's own Keras layers draw alone (rotation, shift and flip; no tolerance)."""
    import numpy as np
    import tensorflow as tf

    from regbench import data
    from regbench.models import _augmentation_layers
    from regbench.stack_layers import PipelineDraws

    study = {**STUDY, "seeds": [1, 2], "techniques": {"augmentation": {"flip": True}},
             "design": {"kind": "explicit", "arms": ["augmentation"]}}
    cells = parse_study(study, "draws").cells()
    images = train.scaled(data.load("mnist", data_dir=str(data_dir)).x_train[:8])
    alone = [_augmentation_layers(cell.arm, cell.seed, False, "") for cell in cells]
    draws = PipelineDraws([], [[_augmentation_layers(cell.arm, cell.seed, False, "")]
                               for cell in cells])
    assert sorted(draws.per_call.values()) == [1, 1, 1, 1, 2, 2]  # rotate, flip; shift: 2
    batch = tf.constant(np.stack([images, images[::-1]], axis=1))  # (B, seeds, 28, 28, 1)
    for step in range(3):
        piped = draws(tf.constant(step, tf.int64), batch)["augmented"].numpy()
        for s, layers in enumerate(alone):
            h = batch[:, s]
            for layer in layers:
                h = layer(h, training=True)
            assert np.array_equal(piped[:, s, 0], h.numpy().reshape(len(images), -1)), step
        assert not np.array_equal(piped[:, 0, 0], images.reshape(len(images), -1))


def test_early_stopping_fired_for_some_member(trained, stacked):
    for _, packed, _ in (trained, stacked):
        assert any(row["stopped_epoch"] for row in packed)


def test_plan_branch_packs_compatible_cells_in_study_order():
    study = {**STUDY, "model": {"name": "cnn", "filters": [4], "hidden": [8]},
             "training": {**STUDY["training"], "epochs": 200}}
    cells = parse_study(study, "plan").cells()
    packs = pack.plan_packs(cells, limit=8)
    assert [len(p) for p in packs] == [8, 2]
    assert [c for p in packs for c in p] == cells
    other = parse_study({**study, "model": {**study["model"], "hidden": [32]}}, "o").cells()
    assert [len(p) for p in pack.plan_packs(cells + other, limit=50)] == [10, 10]


def test_plan_stacks_whole_seed_rows_by_stack_key():
    study = {**STUDY, "seeds": 3, "training": {"epochs": 20},
             "design": {"kind": "explicit", "arms": ["none", "l1", "dropout", "augmentation"]}}
    cells = parse_study(study, "plan").cells()
    packs = pack.plan_packs(cells)
    labels = [sorted({c.arm.label for c in p}) for p in packs]
    assert labels == [["dropout", "l1", "none"], ["augmentation"]]  # augmented input: apart
    assert [len(p) for p in packs] == [9, 3]
    assert [len(p) for p in pack.plan_packs(cells, limit=7)] == [6, 3, 3]  # 2 rows, then 1
    assert [len(p) for p in pack.plan_packs(cells, limit=2)] == [2, 1, 2, 2, 1, 2, 1, 1]
    assert [p for p in pack.plan_packs(cells, limit=1)] == [[cell] for cell in cells]


def test_plan_shares_a_large_stack_among_workers():
    """With two workers, the 5 x 8 grid is shared so that both get the same work: the one
    that also trains the 5 augmentation cells (each about twice a plain cell's work) gets 3
    arm columns, the other 5."""
    study = {**STUDY, "seeds": 5, "model": {"hidden": [64]}, "training": {"epochs": 20},
             "design": {"kind": "explicit", "arms": [
                 "none", "l1", "l2", "l1_l2", "dropout", "batchnorm", "early_stopping",
                 "max_norm", "augmentation"]}}
    cells = parse_study(study, "plan").cells()
    assert [len(p) for p in pack.plan_packs(cells)] == [40, 5]
    shared = pack.plan_packs(cells, workers=2)
    assert sorted(len(p) for p in shared) == [5, 15, 25]
    assert [len({c.seed for c in p}) for p in shared] == [5, 5, 5]  # whole arm columns
    assert sorted(c.key for p in shared for c in p) == sorted(c.key for c in cells)
    big, small, augmented = sorted(shared, key=len, reverse=True)
    plain = [c for c in cells if c.arm.label == "none"]
    assert pack.pack_cost(augmented) == pytest.approx(2 * pack.pack_cost(plain), rel=0.05)
    assert pack.pack_cost(big) == pytest.approx(
        pack.pack_cost(small) + pack.pack_cost(augmented), rel=0.01)
    assert sorted(len(p) for p in pack.plan_packs(cells, workers=4)) == [5, 5, 10, 10, 15]


def test_plan_shares_seed_rows_when_arms_are_fewer_than_workers():
    study = {**STUDY, "seeds": 12, "training": {"epochs": 20},
             "design": {"kind": "explicit", "arms": ["none"]}}
    cells = parse_study(study, "plan").cells()
    assert [len(p) for p in pack.plan_packs(cells)] == [12]
    assert [len(p) for p in pack.plan_packs(cells, workers=2)] == [6, 6]
    assert [len(p) for p in pack.plan_packs(cells, workers=8)] == [4, 4, 4]  # MIN_SHARE each
    assert [len(p) for p in pack.plan_packs(cells[:7], workers=2)] == [7]    # too few to share


def test_grid_cut_fewest_then_most_even_then_widest_blocks():
    assert pack._grid_cut(5, 8, 64) == (5, 8)   # one block
    assert pack._grid_cut(5, 8, 20) == (5, 4)   # two of 20, not 16 + 16 + 8
    assert pack._grid_cut(2, 8, 8) == (1, 8)    # whole seed rows when as few and as even
    assert pack._grid_cut(3, 3, 2) == (1, 2)


def test_grids_of_a_half_finished_study():
    study = {**STUDY, "seeds": 3, "design": {"kind": "explicit", "arms": ["none", "l1"]}}
    cells = parse_study(study, "plan").cells()
    left = [c for c in cells if not (c.seed == 1 and c.arm.label == "l1")]
    grids = stack.grids(left)
    assert [[len(row) for row in grid] for grid in grids] == [[2, 2], [1]]


@pytest.mark.parametrize("change", [
    {"model": {"name": "cnn"}},
    {"training": {"lr_decay": 0.95}},
    {"techniques": {"batchnorm": {"position": "before"}}, "arm": "batchnorm"},
    {"techniques": {"l1_late": {}}, "arm": "l1_late"},
])
def test_settings_a_stack_does_not_implement_are_not_stacked(change):
    arm = change.pop("arm", "none")
    study = {**STUDY, **change, "design": {"kind": "explicit", "arms": [arm]}}
    cell = parse_study(study, "plan").cells()[0]
    assert not stack.stackable(cell)
    assert stack.stackable(parse_study(STUDY, "plan").cells()[0])


def test_pack_size_small_networks_pack_large_ones_do_not():
    tutorial = parse_study({**STUDY, "training": {"epochs": 20}}, "t").cells()[0]
    assert pack.pack_size(tutorial) == pack.MAX_PACK
    short = parse_study(STUDY, "s").cells()[0]  # 12 steps x 4 epochs: not worth compiling
    assert pack.pack_size(short) == 1
    wide = parse_study({**STUDY, "training": {"epochs": 20},
                        "model": {"hidden": [1024, 1024, 2048]}}, "w").cells()[0]
    assert pack.pack_size(wide) == 1


def test_macs_per_example_by_hand():
    mnist, cifar = DATASETS["mnist"], DATASETS["cifar10"]
    assert pack.macs_per_example(Model(hidden=(64,)), mnist) == 784 * 64 + 64 * 10
    cnn = Model(name="cnn", filters=(8,), hidden=(16,))
    # conv 32x32 positions x (3x3x3) x 8 filters, pool to 16x16x8, dense 2048->16->10
    assert pack.macs_per_example(cnn, cifar) == 32 * 32 * 27 * 8 + 2048 * 16 + 16 * 10
