"""The planner: which cells train together, and with which strategy (`engine.plan`)."""

from __future__ import annotations

import dataclasses

import pytest

from regbench.engine import plan, stack
from regbench.recipe import BRANCH, STACK, strategies_for
from regbench.study import parse_study

STUDY = {
    "datasets": ["mnist"],
    "seeds": [1],
    "model": {"hidden": [16]},
    "training": {"batch_size": 50, "epochs": 4, "train_subset": 600, "learning_rate": 0.02},
    "techniques": {"max_norm": {"c": 0.5}, "early_stopping": {"patience": 0}},
    "design": {"kind": "explicit", "arms": [
        "none", "l1", "l2", "l1_l2", "dropout", "batchnorm", "augmentation", "max_norm",
        "early_stopping", "l2+dropout+batchnorm+early_stopping"]},
}


@pytest.fixture
def grouped_convs_lose(monkeypatch):
    """A machine where grouped convolutions are measured slower (this CPU): CNN cells are
    branch-packed, not stacked (`conv_choice.stacks_pay`)."""
    from regbench.engine import conv_choice

    monkeypatch.delenv("REGBENCH_STACKED_CONV", raising=False)
    monkeypatch.setattr(conv_choice, "implementation", lambda shape: conv_choice.SEPARATE)


def test_plan_branch_packs_compatible_cells_in_study_order(grouped_convs_lose):
    study = {**STUDY, "model": {"name": "cnn", "filters": [4], "hidden": [8]},
             "training": {**STUDY["training"], "epochs": 200}}
    cells = parse_study(study, "plan").cells()
    packs = plan.plan_packs(cells, limit=8)
    assert [len(p) for p in packs] == [8, 2]
    assert [c for p in packs for c in p] == cells
    other = parse_study({**study, "model": {**study["model"], "hidden": [32]}}, "o").cells()
    assert [len(p) for p in plan.plan_packs(cells + other, limit=50)] == [10, 10]


def test_plan_stacks_whole_seed_rows_by_stack_key():
    study = {**STUDY, "seeds": 3, "training": {"epochs": 20},
             "design": {"kind": "explicit", "arms": ["none", "l1", "dropout", "augmentation"]}}
    cells = parse_study(study, "plan").cells()
    packs = plan.plan_packs(cells)
    labels = [sorted({c.arm.label for c in p}) for p in packs]
    assert labels == [["dropout", "l1", "none"], ["augmentation"]]  # augmented input: apart
    assert [len(p) for p in packs] == [9, 3]
    assert [len(p) for p in plan.plan_packs(cells, limit=7)] == [6, 3, 3]  # 2 rows, then 1
    assert [len(p) for p in plan.plan_packs(cells, limit=2)] == [2, 1, 2, 2, 1, 2, 1, 1]
    assert [p for p in plan.plan_packs(cells, limit=1)] == [[cell] for cell in cells]


def test_plan_shares_a_large_stack_among_workers():
    """With two workers, the 5 x 8 grid is shared so that both get about the same work: the
    one that also trains the 5 augmentation cells gets two arm columns, the other six."""
    study = {**STUDY, "seeds": 5, "model": {"hidden": [64]}, "training": {"epochs": 20},
             "design": {"kind": "explicit", "arms": [
                 "none", "l1", "l2", "l1_l2", "dropout", "batchnorm", "early_stopping",
                 "max_norm", "augmentation"]}}
    cells = parse_study(study, "plan").cells()
    assert [len(p) for p in plan.plan_packs(cells)] == [40, 5]
    shared = plan.plan_packs(cells, workers=2)
    assert sorted(len(p) for p in shared) == [5, 10, 30]
    assert [len({c.seed for c in p}) for p in shared] == [5, 5, 5]  # whole arm columns
    assert sorted(c.key for p in shared for c in p) == sorted(c.key for c in cells)
    big, small, augmented = sorted(shared, key=len, reverse=True)
    assert {c.arm.label for c in augmented} == {"augmentation"}
    assert plan.pack_cost(big) == pytest.approx(
        plan.pack_cost(small) + plan.pack_cost(augmented), rel=0.1)
    assert sorted(len(p) for p in plan.plan_packs(cells, workers=4)) == [5, 10, 15, 15]


@pytest.mark.parametrize("batch_size, measured", [(32, 2.7), (128, 4.5)])
def test_an_augmented_member_weighs_what_it_costs_in_a_stack(batch_size, measured):
    """The planner's estimate of an augmented tutorial member against a plain one, at the
    ratio of their measured step times in stacks of the tutorial MLP on a 2-core AVX-512 CPU
    (reports/benchmarks/grid.md; 5 members each): 0.62 against 0.23 ms a member at batch 32,
    2.36 against 0.52 ms at batch 128. A constant per-image cost gives one ratio at every
    batch size: within 15% of both needs the per-step term."""
    from regbench.bench.grid import CONFIGS, cells_of

    config = next(c for c in CONFIGS if c.name == "mnist_b128")
    cells = cells_of(dataclasses.replace(config, batch_size=batch_size))
    one = {cell.arm.label: cell for cell in cells}
    ratio = plan._member_work(one["augmentation"]) / plan._member_work(one["none"])
    assert ratio == pytest.approx(measured, rel=0.15)


def test_plan_shares_seed_rows_when_arms_are_fewer_than_workers():
    study = {**STUDY, "seeds": 12, "training": {"epochs": 20},
             "design": {"kind": "explicit", "arms": ["none"]}}
    cells = parse_study(study, "plan").cells()
    assert [len(p) for p in plan.plan_packs(cells)] == [12]
    assert [len(p) for p in plan.plan_packs(cells, workers=2)] == [6, 6]
    assert [len(p) for p in plan.plan_packs(cells, workers=8)] == [4, 4, 4]  # MIN_SHARE each
    assert [len(p) for p in plan.plan_packs(cells[:7], workers=2)] == [7]    # too few to share


def test_grid_cut_fewest_then_most_even_then_widest_blocks():
    assert plan._grid_cut(5, 8, 64) == (5, 8)   # one block
    assert plan._grid_cut(5, 8, 20) == (5, 4)   # two of 20, not 16 + 16 + 8
    assert plan._grid_cut(2, 8, 8) == (1, 8)    # whole seed rows when as few and as even
    assert plan._grid_cut(3, 3, 2) == (1, 2)


def test_grids_of_a_half_finished_study():
    study = {**STUDY, "seeds": 3, "design": {"kind": "explicit", "arms": ["none", "l1"]}}
    cells = parse_study(study, "plan").cells()
    left = [c for c in cells if not (c.seed == 1 and c.arm.label == "l1")]
    grids = stack.grids(left)
    assert [[len(row) for row in grid] for grid in grids] == [[2, 2], [1]]


def test_cnns_are_branch_packed_where_grouped_convolutions_lose(grouped_convs_lose):
    study = {**STUDY, "model": {"name": "cnn"}, "design": {"kind": "explicit", "arms": ["none"]}}
    assert plan.strategy_of(parse_study(study, "plan").cells()[0]) == BRANCH
    assert plan.strategy_of(parse_study(STUDY, "plan").cells()[0]) == STACK


@pytest.mark.parametrize("techniques, arm", [
    ({"batchnorm": {"position": "before"}}, "batchnorm"),
    ({"l1_late": {}}, "l1_late"),
    ({"kl_sparsity": {}}, "kl_sparsity"),
    ({"gaussian_noise": {}}, "gaussian_noise"),
    ({"random_crop": {}}, "random_crop"),
])
def test_the_reproductions_settings_are_stacked(techniques, arm):
    study = {**STUDY, "techniques": techniques, "design": {"kind": "explicit", "arms": [arm]}}
    if arm == "random_crop":
        study["model"] = {"hidden": [16], "crop": 24}
    assert plan.strategy_of(parse_study(study, "plan").cells()[0]) == STACK
    cropped = {**STUDY, "model": {"hidden": [16], "crop": 24, "standardize": True}}
    assert plan.strategy_of(parse_study(cropped, "plan").cells()[0]) == STACK


def test_every_study_a_reproduction_trains_here_may_stack_and_small_ones_do():
    """`regbench reproduce` plans as `regbench run`. A stack implements every setting of the
    studies trained on this CPU (Zhang et al.'s input stage, Ioffe's batch norm before,
    Srivastava's max-norm and momentum ramps); the planner stacks the small networks and
    trains large ones (Zhang's 1.2 M multiply-adds an example) alone, where a stack would
    hold too few members to pay."""
    from regbench import reproduce
    from regbench.reproduce.registry import CHECKOUT, STUDY_DIR
    from regbench.study import load_study

    packed = {}
    for repro in reproduce.REPRODUCTIONS.values():
        for name in repro.studies:
            cells = load_study(str(CHECKOUT / STUDY_DIR / f"{name}.toml")).cells()
            routed = {strategy for strategy, members, _ in plan.route(cells)}
            assert routed == {STACK}, name
            packed[name] = {len(p) > 1 for p in plan.plan_packs(cells, None, 2)}
    assert packed["ioffe2015_bn_mnist"] == packed["srivastava2014_table9_narrow_tuning"] == {True}
    assert packed["zhang2017_table1_mlp1x512"] == {False}


def test_every_published_study_may_stack():
    """Every setting of every shipped published study, the GPU-budget ones too (Zhang et
    al.'s AlexNet with random crops), is one a stack implements."""
    from regbench.reproduce.registry import CHECKOUT, STUDY_DIR
    from regbench.study import load_study

    paths = sorted((CHECKOUT / STUDY_DIR).glob("*.toml"))
    assert any(p.stem == "zhang2017_table1_alexnet" for p in paths)
    for path in paths:
        for cell in load_study(str(path)).cells():
            assert STACK in strategies_for(cell.model, cell.training, cell.arm), (
                path.stem, cell.arm.label)


def test_pack_size_small_networks_pack_large_ones_do_not():
    tutorial = parse_study({**STUDY, "training": {"epochs": 20}}, "t").cells()[0]
    assert plan.pack_size(tutorial) == plan.MAX_PACK
    short = parse_study(STUDY, "s").cells()[0]  # 12 steps x 4 epochs: not worth compiling
    assert plan.pack_size(short) == 1
    wide = parse_study({**STUDY, "training": {"epochs": 20},
                        "model": {"hidden": [1024, 1024, 2048]}}, "w").cells()[0]
    assert plan.pack_size(wide) == 1
