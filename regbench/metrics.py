"""Pure functions over weight arrays: sparsity, norms, deselected inputs.

L1 minimized by (stochastic) gradient descent leaves almost no weight exactly at zero, so
sparsity is reported at several thresholds with the exact-zero fraction beside it.
"""

from __future__ import annotations

import numpy as np

# Column suffix -> what counts as a "small" weight. `rel_1pct`: below 1% of the layer's max |w|.
SPARSITY_THRESHOLDS = {"zero": 0.0, "lt_1e-3": 1e-3, "lt_1e-2": 1e-2}


def sparsity(weights: np.ndarray) -> dict[str, float]:
    """Fractions of weights exactly zero, below absolute thresholds, and below 1% of max |w|."""
    magnitude = np.abs(np.asarray(weights, dtype=np.float64)).ravel()
    if magnitude.size == 0:
        raise ValueError("sparsity of an empty array is undefined")
    out = {"zero": float(np.mean(magnitude == 0.0))}
    for name, threshold in SPARSITY_THRESHOLDS.items():
        if threshold > 0:
            out[name] = float(np.mean(magnitude < threshold))
    # An exact zero is small at any scale, even in an all-zero array (where max |w| is 0).
    small = (magnitude < 0.01 * magnitude.max()) | (magnitude == 0.0)
    out["rel_1pct"] = float(np.mean(small))
    return out


def norms(weights: np.ndarray) -> dict[str, float]:
    w = np.asarray(weights, dtype=np.float64).ravel()
    return {"l1": float(np.abs(w).sum()), "l2": float(np.sqrt(np.square(w).sum()))}


def pooled_sparsity(kernels: dict[str, np.ndarray]) -> dict[str, float]:
    """Sparsity over all kernels together (each weight counts once), thresholds as above."""
    flat = np.concatenate([np.ravel(k) for k in kernels.values()])
    pooled = sparsity(flat)
    # The relative threshold is per layer (scales differ), weighted by layer size.
    sizes = np.array([k.size for k in kernels.values()], dtype=np.float64)
    rel = np.array([sparsity(k)["rel_1pct"] for k in kernels.values()])
    pooled["rel_1pct"] = float((rel * sizes).sum() / sizes.sum())
    return pooled


def dead_inputs(first_kernel: np.ndarray, threshold: float = 1e-3) -> float:
    """Fraction of input features whose outgoing weights are all below `threshold` in |w|.

    For a Dense kernel of shape (inputs, units) on flattened images these are the pixels the
    network has deselected.
    """
    k = np.abs(np.asarray(first_kernel))
    return float(np.mean(np.all(k < threshold, axis=1)))
