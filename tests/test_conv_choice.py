"""Stacked convolutions: the grouped and the separate way compute the same numbers, and the
choice between them is measured once per shape and kept."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regbench.engine import conv_choice
from regbench.engine.conv_choice import GROUPED, SEPARATE
from regbench.engine.stack_conv import StackedConv2D

TINY = conv_choice.Shape(batch=4, height=6, width=6, in_channels=2, filters=3, kernel=3,
                         groups=2)


def _layer(way: str, shared: bool, kernels: np.ndarray) -> StackedConv2D:
    def kernel(layer, initial):
        layer.kernel = layer.add_weight(shape=initial.shape, name="kernel",
                                        initializer=lambda shape, dtype=None: initial)
    return StackedConv2D(kernels, "linear", "same", shared, way == GROUPED, kernel)


@pytest.mark.parametrize("shared", [False, True])
def test_grouped_and_separate_give_each_member_its_own_convolution(shared):
    import keras

    rng = np.random.default_rng(0)
    rows, cols, channels, filters = 2, 3, 2, 4
    kernels = rng.normal(size=(rows, cols, 3, 3, channels, filters)).astype(np.float32)
    blocks = rows if shared else rows * cols
    x = rng.normal(size=(5, 7, 7, blocks * channels)).astype(np.float32)
    outputs = {way: keras.ops.convert_to_numpy(_layer(way, shared, kernels)(x))
               for way in (GROUPED, SEPARATE)}
    np.testing.assert_allclose(outputs[GROUPED], outputs[SEPARATE], rtol=1e-5, atol=1e-5)
    # member (s, a) = block s * cols + a: its own input block and kernel, as alone
    s, a = 1, 2
    block = s if shared else s * cols + a
    alone = keras.ops.convert_to_numpy(keras.ops.conv(
        x[..., block * channels:(block + 1) * channels], kernels[s, a], padding="same"))
    k = s * cols + a
    np.testing.assert_allclose(outputs[SEPARATE][..., k * filters:(k + 1) * filters], alone,
                               rtol=1e-5, atol=1e-5)


def test_the_choice_is_measured_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("REGBENCH_STACKED_CONV", raising=False)
    monkeypatch.setenv("REGBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(conv_choice, "_chosen", {})
    seconds = conv_choice.measure(TINY, rounds=1)
    assert set(seconds) == {GROUPED, SEPARATE} and all(0 < t < 60 for t in seconds.values())
    way = conv_choice.implementation(TINY)
    kept = json.loads((tmp_path / "conv_choice.json").read_text())
    assert list(kept.values()) == [way]
    monkeypatch.setattr(conv_choice, "_chosen", {})
    monkeypatch.setattr(conv_choice, "measure", lambda *a, **k: pytest.fail("measured again"))
    assert conv_choice.implementation(TINY) == way


def test_one_group_needs_no_measurement_and_a_forced_way_is_checked(monkeypatch):
    monkeypatch.setattr(conv_choice, "measure", lambda *a, **k: pytest.fail("measured"))
    monkeypatch.delenv("REGBENCH_STACKED_CONV", raising=False)
    one = conv_choice.Shape(4, 6, 6, 2, 3, 3, groups=1)
    assert conv_choice.implementation(one) == GROUPED
    monkeypatch.setenv("REGBENCH_STACKED_CONV", SEPARATE)
    assert conv_choice.implementation(TINY) == SEPARATE
    monkeypatch.setenv("REGBENCH_STACKED_CONV", "fused")
    with pytest.raises(ValueError, match="REGBENCH_STACKED_CONV"):
        conv_choice.implementation(TINY)


@pytest.mark.parametrize("measured, strategy", [(GROUPED, "stack"), (SEPARATE, "branch")])
def test_the_planner_stacks_cnn_cells_only_where_grouped_convolutions_win(
        monkeypatch, measured, strategy):
    from regbench.engine import plan
    from regbench.study import parse_study

    monkeypatch.delenv("REGBENCH_STACKED_CONV", raising=False)
    monkeypatch.setattr(conv_choice, "implementation", lambda shape: measured)
    study = parse_study({"datasets": ["cifar10"], "seeds": 1,
                         "model": {"name": "cnn", "filters": [8, 16], "hidden": [16]},
                         "design": {"kind": "explicit", "arms": ["none", "batchnorm"]}}, "s")
    assert {plan.strategy_of(cell) for cell in study.cells()} == {strategy}
