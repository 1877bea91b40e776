"""Packed execution: a member trained in a pack ends where it would have alone."""

from __future__ import annotations

import pytest

from regbench import pack, train
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
# Measured identical on TensorFlow/XLA CPU: each member's ops are the ops it runs alone.
TOLERANCE = 1e-6
COMPARED = ["train_acc", "train_xent", "val_acc", "val_xent", "test_acc", "test_xent",
            "penalty", "l1_norm", "l2_norm", "sparsity_lt_1e-3", "epochs_run", "best_epoch",
            "stopped_epoch", "n_fit", "n_val", "n_test", "status"]


@pytest.fixture(scope="module")
def trained(data_dir):
    train.configure(deterministic=True)
    cells = parse_study(STUDY, "pack-test").cells()
    packed = pack.run_pack(cells, str(data_dir))
    alone = [train.run_cell(cell, str(data_dir)) for cell in cells]
    return cells, packed, alone


@pytest.mark.parametrize("index", range(len(ARMS)))
def test_member_equals_cell_trained_alone(trained, index):
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


def test_early_stopping_fired_for_some_member(trained):
    _, packed, _ = trained
    assert any(row["stopped_epoch"] for row in packed)


def test_plan_groups_compatible_cells_in_study_order():
    cells = parse_study(STUDY, "plan").cells()
    packs = pack.plan_packs(cells, limit=8)
    assert [len(p) for p in packs] == [8, 2]
    assert [c for p in packs for c in p] == cells
    other = parse_study({**STUDY, "model": {"hidden": [32]}}, "other").cells()
    assert [len(p) for p in pack.plan_packs(cells + other, limit=50)] == [10, 10]


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
