"""The engine's contract, for every setting of the registry: whatever strategy trains a cell,
its row is the row it gets trained alone.

Scenarios below use every registry entry (a test checks it, so a new entry without a scenario
fails the suite). For each scenario, every cell is trained alone, then by every other strategy
the registry says implements all its settings:
- branch packs must give the alone row bit for bit on TensorFlow: a member's ops are the ops
  it runs alone (within rounding on JAX, which compiles the whole pack into one program);
- stacks within floating-point rounding: a stacked matmul sums in another order, and training
  amplifies it (tolerances below, measured on TensorFlow 2.21 CPU over these short trainings).
"""

from __future__ import annotations

import pytest

from regbench import engine
from regbench.engine import plan
from regbench.provenance import configured_backend
from regbench.recipe import ALONE, BRANCH, REGISTRY, STACK, settings_used, strategies_for
from regbench.study import parse_study

BASE = {"datasets": ["mnist"], "seeds": [1, 2], "model": {"hidden": [16]},
        "training": {"batch_size": 50, "epochs": 4, "train_subset": 600,
                     "learning_rate": 0.02, "validation_fraction": 0.05}}
# Arms also trained at seed 2, so that stacks have two seed rows (with shared and with
# per-member input).
SECOND_SEED = {"techniques": {"none", "l1_l2+dropout", "augmentation", "gaussian_noise"},
               "cnn": {"none", "l2+batchnorm+dropout+max_norm", "augmentation+l1_late"},
               "crop": {"none", "augmentation", "random_crop+gaussian_noise"}}
# name -> (overrides of BASE, techniques, arms). Each arm combines several entries, so that
# every entry is trained by every strategy it claims in few cells.
SCENARIOS = {
    "techniques": ({}, {
        "max_norm": {"c": 0.5},
        # no epoch improves by 0.5: stops after epoch 2, restoring epoch 1's weights
        "early_stopping": {"patience": 0, "min_delta": 0.5, "restore_best_weights": True},
        "dropout": {"rate": 0.3, "input_rate": 0.2},
        "bn_before": {"type": "batchnorm", "position": "before", "momentum": 0.9},
        "kl_sparsity": {"weight": 0.01},
        "l1_late": {"factor": 1e-3},
    }, ["none", "l1+max_norm", "l2+batchnorm", "l1_l2+dropout", "augmentation",
        "weight_decay+early_stopping", "bn_before+kl_sparsity+l1_late", "bn_before+max_norm",
        "gaussian_noise"]),
    "sgd": ({"training": {"optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9,
                          "momentum_start": 0.5, "momentum_epochs": 2, "lr_decay": 0.7,
                          "curve_every": 20}},
            {"early_stopping": {"patience": 1, "min_delta": 0.5}},  # stops after epoch 3
            ["none", "l2+dropout", "early_stopping"]),
    "rmsprop": ({"model": {"hidden": [16, 8], "activation": "tanh"},
                 "training": {"optimizer": "rmsprop", "learning_rate": 0.003, "epochs": 3}},
                {}, ["none", "dropout"]),
    # two conv blocks, so that a stacked convolution reads the one before it
    # Adam at 0.005: at BASE's 0.02 training amplifies a sum's rounding so much that one
    # cell alone differs by 1% between one thread and two
    "cnn": ({"model": {"name": "cnn", "filters": [4, 6], "hidden": [8]},
             "training": {"learning_rate": 0.005}},
            {"max_norm": {"c": 1.0}, "dropout": {"rate": 0.3, "input_rate": 0.2},
             "batchnorm": {"momentum": 0.9},  # moving statistics that settle in 48 steps
             "l1_late": {"factor": 1e-3}},
            ["none", "l2+batchnorm+dropout+max_norm", "augmentation+l1_late"]),
    # with Zhang et al.'s input stage, a centre crop and per-image standardization. At Adam
    # 0.02 and batch norm momentum 0.99 its `batchnorm` cell alone moves 2.3 pp in test
    # accuracy between oneDNN's convolutions and Eigen's (TF_ENABLE_ONEDNN_OPTS=0, AVX-512);
    # here 0.2 pp in train accuracy.
    "alexnet": ({"model": {"name": "alexnet", "filters": [4, 4], "hidden": [8], "crop": 24,
                           "standardize": True},
                 "training": {"epochs": 3, "learning_rate": 0.005}},
                {"batchnorm": {"momentum": 0.9}},
                ["none", "batchnorm", "random_crop", "gaussian_noise+batchnorm"]),
    # a stack whose members run their own input stage: a random crop beside centre crops
    "crop": ({"model": {"crop": 24, "standardize": True}, "training": {"epochs": 3}},
             {}, ["none", "random_crop+gaussian_noise", "augmentation"]),
    # a user's network (tests/user_networks.py): its model replaces BASE's; trained alone only
    "user": ({"model": {"builder": "user_networks:small"}}, {"max_norm": {"c": 1.0}},
             ["none", "l2+batchnorm+dropout+max_norm", "augmentation"]),
}
UNSTACKED_SCENARIOS = ("user",)  # the registry keeps it out of stacks
# How each conv scenario's stacked convolutions run (`engine/conv_choice.py`): both ways
CONV_WAY = {"cnn": "separate", "alexnet": "grouped"}
# What may differ between two trainings of one cell: when, where and how long it ran, and
# which strategy ran it.
VOLATILE = {"finished_at", "fit_s", "first_epoch_s", "epoch_s", "examples_per_s", "git_commit",
            "cost_step_s", "cost_epoch_s",
            "host", "load_average_1min", "strategy", "pack_size"}
BIT_EXACT_BRANCHES = configured_backend() == "tensorflow"
STACK_ABS = {"acc": 1e-2, "xent": 2e-2, "penalty": 1e-3, "sparsity_lt_1e-3": 5e-4}
STACK_REL = 1e-2
# A CNN with batch norm and dropout amplifies rounding more: its `batchnorm` cell alone moves
# 1.2% in train cross-entropy between one thread and two (measured at Adam 0.02). Its
# sparsity counts 2,756 weights, a weight is 3.6e-4 of it, and L1 keeps weights hovering
# about 1e-3: 3e-3 is 8 weights.
# AlexNet's sparsity counts 1,732 weights: 3e-3 is 5 of them crossing 1e-3.
LOOSER = {"cnn": 2.0}
SPARSITY_ABS = {"cnn": 3e-3, "alexnet": 3e-3}
COMPARED = ["train_acc", "train_xent", "val_acc", "val_xent", "test_acc", "test_xent",
            "penalty", "l1_norm", "l2_norm", "sparsity_lt_1e-3", "epochs_run", "best_epoch",
            "stopped_epoch", "n_fit", "n_val", "n_test", "status"]


def scenario_cells(name: str) -> list:
    overrides, techniques, arms = SCENARIOS[name]
    study = {**BASE, "techniques": techniques, "design": {"kind": "explicit", "arms": arms}}
    for section in ("model", "training"):
        study[section] = {**BASE[section], **overrides.get(section, {})}
    if "builder" in study["model"]:  # the builder's network is the whole model
        study["model"] = overrides["model"]
    return [cell for cell in parse_study(study, name).cells()
            if cell.seed == 1 or cell.arm.label in SECOND_SEED.get(name, ())]


def test_every_registry_entry_has_a_scenario():
    used = {entry.name for name in SCENARIOS for cell in scenario_cells(name)
            for entry in settings_used(cell.model, cell.training, cell.arm)}
    assert used == set(REGISTRY), f"entries without a scenario: {set(REGISTRY) - used}"


def test_every_setting_field_has_a_registry_entry():
    """A field without an entry would reach strategies that may not implement it."""
    import dataclasses

    from regbench.recipe import TECHNIQUES, Model, Training

    for scope, cls in (("model", Model), ("training", Training)):
        for field in dataclasses.fields(cls):
            assert f"{scope}.{field.name}" in REGISTRY
    for kind, cls in TECHNIQUES.items():
        assert REGISTRY[kind].settings is cls


@pytest.fixture(scope="module", params=list(SCENARIOS))
def trained(request, data_dir):
    """A scenario's rows: alone, and by every other strategy that implements its cells."""
    engine.configure(deterministic=True)
    if request.param in CONV_WAY:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REGBENCH_STACKED_CONV", CONV_WAY[request.param])
            return _trained(request.param, data_dir)
    return _trained(request.param, data_dir)


def _trained(name: str, data_dir) -> tuple:
    cells = scenario_cells(name)
    alone = {cell.key: engine.fit([cell], str(data_dir))[0] for cell in cells}
    by_strategy = {}
    branch_cells = [c for c in cells
                    if c.seed == 1 and BRANCH in strategies_for(c.model, c.training, c.arm)]
    if len(branch_cells) > 1:
        by_strategy[BRANCH] = engine.fit_program(engine.STRATEGIES[BRANCH], branch_cells, None,
                                                 str(data_dir), True)
    stack_cells = [c for c in cells if STACK in strategies_for(c.model, c.training, c.arm)]
    if stack_cells:  # grids of both seeds' rows, then the rest of seed 1
        rows_of_two = {c.arm.label for c in stack_cells if c.seed == 2}
        twice = [c for c in stack_cells if c.arm.label in rows_of_two]
        once = [c for c in stack_cells if c.arm.label not in rows_of_two]
        by_strategy[STACK] = (engine.fit(twice, str(data_dir)) if twice else []) + (
            engine.fit(once, str(data_dir)) if once else [])
    return name, alone, by_strategy


@pytest.mark.slow
def test_branch_members_equal_their_cells_alone(trained):
    """Bit for bit on TensorFlow, which runs each branch's ops as alone (no XLA under op
    determinism). JAX compiles the whole pack into one XLA program, which may fuse and order
    a branch's sums otherwise: within rounding there, as stacks."""
    name, alone, by_strategy = trained
    rows = by_strategy.get(BRANCH, [])
    if name == "user":  # a user's network trains alone only
        assert not rows
        return
    assert rows, "every other scenario has branch-packable cells"
    if name in ("techniques", "sgd"):  # early stopping fires, so stopping is compared too
        assert any(row["stopped_epoch"] for row in rows)
    for row in rows:
        assert row["strategy"] == BRANCH and row["pack_size"] == len(rows) > 1
        reference = alone[row["key"]]
        assert reference["strategy"] == ALONE and reference["pack_size"] == 1
        if not BIT_EXACT_BRANCHES:
            _agree_within_rounding(row, reference)
            continue
        mine = {k: v for k, v in row.items() if k not in VOLATILE}
        theirs = {k: v for k, v in reference.items() if k not in VOLATILE}
        mine["history"].pop("epoch_s"), theirs["history"].pop("epoch_s")
        assert mine == theirs, (row["arm"], _first_difference(mine, theirs))


def _first_difference(a: dict, b: dict) -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"{key}: {a.get(key)!r} != {b.get(key)!r}"
    return ""


def _stack_tolerance(column: str) -> dict:
    for suffix, tolerance in STACK_ABS.items():
        if column.endswith(suffix):
            return {"abs": tolerance, "rel": STACK_REL}
    return {"abs": 1e-6, "rel": STACK_REL}


@pytest.mark.slow
def test_stacked_members_equal_their_cells_alone_within_rounding(trained):
    name, alone, by_strategy = trained
    rows = by_strategy.get(STACK, [])
    if name in UNSTACKED_SCENARIOS:
        assert not rows
        return
    assert rows and all(row["strategy"] == STACK for row in rows)
    for row in rows:
        _agree_within_rounding(row, alone[row["key"]], LOOSER.get(name, 1.0),
                               SPARSITY_ABS.get(name))


def _agree_within_rounding(row: dict, reference: dict, looser: float = 1.0,
                           sparsity_abs: float | None = None) -> None:
    def tolerance(column):
        if sparsity_abs and column.startswith("sparsity"):
            return {"abs": sparsity_abs, "rel": STACK_REL}
        return {k: v * looser for k, v in _stack_tolerance(column).items()}

    for column in COMPARED:
        a, b = row[column], reference[column]
        if isinstance(b, float):
            assert a == pytest.approx(b, **tolerance(column)), (row["arm"], column)
        else:
            assert a == b, (row["arm"], column)
    for metric in ("val_xent", "val_acc", "xent", "acc", "loss"):
        assert row["history"][metric] == pytest.approx(
            reference["history"][metric], **tolerance(metric)), (row["arm"], metric)
    if reference.get("curve"):
        assert row["curve"]["step"] == reference["curve"]["step"]
        for metric in ("val_acc", "test_acc"):
            assert row["curve"][metric] == pytest.approx(reference["curve"][metric],
                                                         abs=STACK_ABS["acc"] * looser)


def test_the_planner_routes_each_cell_to_a_strategy_that_implements_it():
    for name in SCENARIOS:
        cells = scenario_cells(name)
        for strategy, members, _ in plan.route(cells):
            for cell in members:
                assert strategy in strategies_for(cell.model, cell.training, cell.arm)
    by_arm = {cell.arm.label: plan.strategy_of(cell) for cell in scenario_cells("techniques")}
    assert by_arm["l2+batchnorm"] == by_arm["augmentation"] == STACK
    assert by_arm["weight_decay+early_stopping"] == STACK
    assert by_arm["bn_before+kl_sparsity+l1_late"] == by_arm["bn_before+max_norm"] == STACK
    assert {plan.strategy_of(c) for c in scenario_cells("cnn")} == {STACK}


def test_the_architecture_guide_lists_every_registry_entry():
    from pathlib import Path

    guide = (Path(__file__).parents[1] / "docs/architecture.md").read_text()
    missing = [name for name in REGISTRY if f"`{name}`" not in guide]
    assert not missing, f"docs/architecture.md does not list {missing}"


@pytest.mark.slow
def test_a_decaying_learning_rate_gives_the_same_accuracy_planned_and_alone(data_dir, tmp_path):
    """A study whose learning rate decays, packed as `regbench run --pack-size 4` plans it (a
    stack) and one cell at a time: test accuracy agrees to 0.005. Branch packs once skipped
    the decay and gave 0.9025 against 0.8651 alone (16 epochs)."""
    from regbench import executors, store
    from regbench.progress import Progress

    study = {"datasets": ["mnist"], "seeds": 2, "model": {"hidden": [32]},
             "training": {"optimizer": "sgd", "learning_rate": 0.1, "lr_decay": 0.01,
                          "batch_size": 16, "epochs": 4, "train_subset": 2000},
             "design": {"kind": "explicit", "arms": ["none", "dropout"]}}
    cells = parse_study(study, "decay").cells()
    accuracy = {}
    for name, pack_size in (("planned", 4), ("alone", 1)):
        path = tmp_path / f"{name}.jsonl"
        executors.run_local(cells, path, executors.RunOptions(
            data_dir=str(data_dir), pack_size=pack_size, workers=1), Progress(0, quiet=True))
        accuracy[name] = {r["key"]: (r["strategy"], r["test_acc"]) for r in store.read_rows(path)}
    assert {s for s, _ in accuracy["planned"].values()} == {STACK}
    for key, (_, acc) in accuracy["alone"].items():
        assert accuracy["planned"][key][1] == pytest.approx(acc, abs=0.005)
