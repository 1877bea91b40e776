"""regbench.metrics: pure functions checked on hand-made arrays with hand-computed answers."""

import numpy as np
import pytest

from regbench.metrics import dead_inputs, norms, pooled_sparsity, sparsity

# |w| = 0, 5e-4, 5e-3, 0.5, 10, 0.02: one exact zero, two below 1e-3, three below 1e-2, and
# four below 1% of the largest |w| (0.1).
W = np.array([[0.0, 0.0005], [0.005, -0.5], [-10.0, 0.02]], dtype=np.float32)


W_SPARSITY = {"zero": 1 / 6, "lt_1e-3": 2 / 6, "lt_1e-2": 3 / 6, "rel_1pct": 4 / 6}


def test_sparsity_by_hand():
    assert sparsity(W) == pytest.approx(W_SPARSITY)


@pytest.mark.parametrize("shape", [(6,), (1, 3, 2, 1), (2, 3)])
def test_sparsity_ignores_shape(shape):
    assert sparsity(W.reshape(shape)) == pytest.approx(W_SPARSITY)


def test_thresholds_are_strict():
    # 1e-2 is exactly 1% of the max: not below it; 1e-3 is.
    assert sparsity(np.array([1e-3, 1e-2, 1.0])) == pytest.approx(
        {"zero": 0.0, "lt_1e-3": 0.0, "lt_1e-2": 1 / 3, "rel_1pct": 1 / 3})


def test_all_zero_weights_are_all_sparse():
    assert sparsity(np.zeros((3, 2))) == {"zero": 1.0, "lt_1e-3": 1.0, "lt_1e-2": 1.0,
                                          "rel_1pct": 1.0}


def test_dense_weights_are_not_sparse():
    assert sparsity(np.full((4, 4), -0.3)) == {"zero": 0.0, "lt_1e-3": 0.0, "lt_1e-2": 0.0,
                                               "rel_1pct": 0.0}


def test_sparsity_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="sparsity of an empty array is undefined"):
        sparsity(np.zeros((0, 3)))


@pytest.mark.parametrize("weights, l1, l2", [
    ([3.0, -4.0], 7.0, 5.0),
    ([[1.0, -2.0], [2.0, 0.0]], 5.0, 3.0),
    (np.zeros((2, 2, 2)), 0.0, 0.0),
])
def test_norms_by_hand(weights, l1, l2):
    assert norms(np.asarray(weights, dtype=np.float32)) == pytest.approx({"l1": l1, "l2": l2})


def test_pooled_sparsity_counts_each_weight_once_with_a_per_layer_relative_threshold():
    kernels = {
        "a": np.array([1.0, 0.5, 0.0005, 0.0]),     # 1% of max: 0.01 -> 2 of 4 small
        "b": np.array([[100.0, 0.5], [0.5, 0.005]]),  # 1% of max: 1.0  -> 3 of 4 small
    }
    # Absolute thresholds over all 8 weights together; the relative one per layer, weighted by
    # size: (2 + 3) / 8, not the 6 / 8 that one threshold of 1% of 100 would give.
    assert pooled_sparsity(kernels) == pytest.approx(
        {"zero": 1 / 8, "lt_1e-3": 2 / 8, "lt_1e-2": 3 / 8, "rel_1pct": 5 / 8})


def test_pooled_sparsity_of_one_layer_is_its_sparsity():
    assert pooled_sparsity({"only": W}) == pytest.approx(W_SPARSITY)


def test_dead_inputs_by_hand():
    # Rows are input features, columns units: a feature is dead if all its weights are small.
    kernel = np.array([
        [0.0, 0.0, 0.0],          # dead at any threshold
        [0.0005, -0.0009, 0.0],   # dead below 1e-3
        [0.005, 0.0, 0.0],        # dead below 1e-2 only
        [1.0, 0.0, 0.0],          # alive
    ])
    assert dead_inputs(kernel) == dead_inputs(kernel, 1e-3) == 0.5
    assert dead_inputs(kernel, 1e-2) == 0.75
    assert dead_inputs(kernel, 0.0) == 0.0
