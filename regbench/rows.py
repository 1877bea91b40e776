"""One row schema for every trained cell: identity and settings, metrics, costs, provenance.

A row is flat (one column per setting and metric, plus provenance), so analysis is
`df.groupby(["problem", "arm"])`. What is measured: Keras folds the regularization penalty into
its loss, so the data cross-entropy is tracked on its own (`*_xent`), and the penalty at the
final weights is recorded on its own (`penalty`).
"""

from __future__ import annotations

import datetime
import re

import numpy as np

from regbench import data, metrics, provenance
from regbench.recipe import to_dict
from regbench.study import Cell


def build_row(cell: Cell, evaluation: dict, fitted: dict, deterministic: bool) -> dict:
    """The flat row of a trained cell from its evaluation (`engine.evaluate`) and fit record
    (`engine.loop.train`), plus `fit_s`, `strategy` and `pack_size` (in a pack, times are
    the pack's, shared by its members)."""
    evaluation = dict(evaluation)
    weights = evaluation.pop("kernels")
    fit_s = fitted["fit_s"]
    history = fitted["history"] | {"epoch_s": fitted["epoch_s"]}
    row = _identity(cell, deterministic)
    row.update({
        "status": "diverged" if fitted["diverged_epoch"] else "ok",
        "diverged_epoch": fitted["diverged_epoch"],
    })
    row.update(evaluation)
    row["gap_acc"] = row["train_acc"] - row["test_acc"]
    row["gap_xent"] = row["test_xent"] - row["train_xent"]
    epochs_run = len(history.get("loss", []))
    val_xent = np.asarray(history.get("val_xent", []), dtype=float)
    finite = np.isfinite(val_xent)
    row.update({
        "epochs_run": epochs_run,
        "best_epoch": int(np.argmin(np.where(finite, val_xent, np.inf))) + 1
        if finite.any() else None,
        "stopped_epoch": fitted["stopped_epoch"],
    })
    row.update(_weight_metrics(weights, cell.model.name))
    steady = fitted["epoch_s"][1:] or fitted["epoch_s"]
    row.update({
        "fit_s": fit_s,
        "first_epoch_s": fitted["epoch_s"][0] if fitted["epoch_s"] else None,
        "epoch_s": float(np.median(steady)) if steady else None,
        "examples_per_s": row["n_fit"] * epochs_run / fit_s if fit_s else None,
        "strategy": fitted["strategy"],
        "pack_size": fitted["pack_size"],
        "history": history,
    })
    if fitted.get("curve"):
        row["curve"] = fitted["curve"]
    return row


def _weight_metrics(weights: dict, model_name: str) -> dict:
    out = {f"sparsity_{k}": v for k, v in metrics.pooled_sparsity(weights).items()}
    total = metrics.norms(np.concatenate([w.ravel() for w in weights.values()]))
    out.update({"l1_norm": total["l1"], "l2_norm": total["l2"]})
    if model_name == "mlp":
        first = next(iter(weights.values()))
        out["dead_inputs_lt_1e-3"] = metrics.dead_inputs(first, 1e-3)
        out["dead_inputs_lt_1e-2"] = metrics.dead_inputs(first, 1e-2)
    out["layers"] = {name: {"shape": list(w.shape), **metrics.sparsity(w), **metrics.norms(w)}
                     for name, w in weights.items()}
    return out


def _identity(cell: Cell, deterministic: bool) -> dict:
    """Who the row is: key, labels, flat settings, provenance."""
    row = {
        "key": cell.key,
        "study": cell.study,
        "dataset": cell.dataset,
        "model": cell.model.name,
        "problem": f"{cell.dataset}_{cell.model.name}",
        "arm": cell.arm.label,
        "seed": cell.seed,
        "techniques": sorted(t.kind for t in cell.arm.techniques),
    }
    if cell.role:  # a tuned design's cell: which phase, grid and point
        row.update({"role": cell.role, "grid": cell.grid, "grid_point": cell.point,
                    "select": cell.select})
    model = to_dict(cell.model)  # a user's network: its builder, not regbench's layer settings
    shown = ("builder", "source_sha256") if cell.model.builder else set(model) - {"name"}
    row.update({f"model_{k}": model[k] for k in shown})
    row.update(to_dict(cell.training))
    for technique in cell.arm.techniques:
        row.update({f"{technique.kind}.{k}": v for k, v in to_dict(technique).items()})
    row["spec"] = cell.spec()
    row["deterministic"] = deterministic
    row["dataset_sha256"] = data.dataset_hashes(cell.dataset)
    if source := data.source(cell.dataset):  # a user's dataset: what it is, its split sizes
        row["dataset_source"] = source
    row.update(provenance.fingerprint())
    row["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return row


def failed_row(cell: Cell, error: BaseException, deterministic: bool) -> dict:
    """A cell that raised: stored so the study goes on and reports can show it."""
    row = _identity(cell, deterministic)
    # Keras messages span lines and carry terminal colours: keep one plain line.
    message = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())
    row.update({"status": "failed", "error": f"{type(error).__name__}: {message}"[:500]})
    return row
