"""Synthetic result rows for the report, plot and claims tests: the fields `train.run_cell`
writes, with effects planted by hand so that the expected verdicts are known."""

from __future__ import annotations

import numpy as np

from regbench import store

KERNELS = {"hidden_0": [784, 64], "output": [64, 10]}
HASHES = {"x_train": "a" * 64, "y_train": "b" * 64, "x_test": "c" * 64, "y_test": "d" * 64}

# arm -> planted means. Differences from `none` hold in every seed (the noise is smaller).
TUTORIAL = {
    "none": dict(test_acc=0.973, train_acc=0.998, train_xent=0.008, sparsity_zero=0.0,
                 lt3=0.004, dead=0.0, l2_norm=58.0, epoch_s=1.0),
    "l1": dict(test_acc=0.857, train_acc=0.854, train_xent=0.57, sparsity_zero=0.0,
               lt3=0.96, dead=0.45, l2_norm=8.4, epoch_s=1.1),
    "l2": dict(test_acc=0.913, train_acc=0.912, train_xent=0.37, sparsity_zero=0.0,
               lt3=0.59, dead=0.22, l2_norm=5.8, epoch_s=1.15),
    "l1_l2": dict(test_acc=0.898, train_acc=0.897, train_xent=0.36, sparsity_zero=0.0,
                  lt3=0.89, dead=0.37, l2_norm=37.0, epoch_s=1.15),
    "dropout": dict(test_acc=0.970, train_acc=0.982, train_xent=0.06, sparsity_zero=0.0,
                    lt3=0.005, dead=0.0, l2_norm=52.0, epoch_s=1.6),
    "batchnorm": dict(test_acc=0.9755, train_acc=0.997, train_xent=0.006, sparsity_zero=0.0,
                      lt3=0.005, dead=0.0, l2_norm=43.0, epoch_s=1.6),
    "augmentation": dict(test_acc=0.926, train_acc=0.925, train_xent=0.24, sparsity_zero=0.0,
                         lt3=0.005, dead=0.0, l2_norm=57.0, epoch_s=2.9),
    "early_stopping": dict(test_acc=0.9755, train_acc=0.993, train_xent=0.02, sparsity_zero=0.0,
                           lt3=0.005, dead=0.0, l2_norm=43.0, epoch_s=1.0, epochs_run=12),
    "l2+dropout+early_stopping": dict(test_acc=0.905, train_acc=0.904, train_xent=0.40,
                                      sparsity_zero=0.0, lt3=0.6, dead=0.2, l2_norm=6.0,
                                      epoch_s=1.6, epochs_run=14),
}
SETTINGS = {
    "l1": {"l1.factor": 0.01, "l1.layers": "all"},
    "l2": {"l2.factor": 0.01, "l2.layers": "all"},
    "l1_l2": {"l1_l2.l1": 0.01, "l1_l2.l2": 0.01, "l1_l2.layers": "hidden"},
    "dropout": {"dropout.rate": 0.5, "dropout.input_rate": 0.0},
    "batchnorm": {"batchnorm.momentum": 0.99, "batchnorm.epsilon": 0.001},
    "augmentation": {"augmentation.rotation": 20.0, "augmentation.shift": 0.2,
                     "augmentation.flip": "auto"},
    "early_stopping": {"early_stopping.patience": 5, "early_stopping.min_delta": 0.0,
                       "early_stopping.restore_best_weights": True},
}
EPOCHS = 20


def row(arm: str, seed: int, study: str = "synthetic", status: str = "ok", epochs=EPOCHS,
        noise: float = 1.0, **values) -> dict:
    """One stored row of `arm` at `seed`; `values` set metrics (else neutral defaults);
    `noise` scales the per-seed jitter (0: exact values)."""
    techniques = [] if arm == "none" else sorted(arm.split("+"))
    out = {
        "key": f"{study}-{arm}-{seed}-{epochs}", "study": study, "dataset": "mnist",
        "model": "mlp", "problem": "mnist_mlp", "arm": arm, "seed": seed,
        "techniques": techniques, "model_hidden": [64], "model_activation": "relu",
        "optimizer": "adam", "learning_rate": 0.001, "batch_size": 32, "epochs": epochs,
        "validation_fraction": 0.1, "train_subset": 0, "deterministic": True,
        "dataset_sha256": HASHES, "regbench_version": "0.1.0", "git_commit": "abc123",
        "keras_version": "3.15.1", "backend": "tensorflow", "backend_version": "2.21.0",
        "device": "CPU: test", "cpu_count": 2, "python_version": "3.11.7", "host": "test",
        "finished_at": f"2026-01-01T00:{seed:02d}:00+00:00", "status": status,
    }
    for t in techniques:
        out.update(SETTINGS.get(t, {}))
    if status == "failed":
        out["error"] = "ValueError: synthetic failure"
        return out
    rng = np.random.default_rng([seed, len(arm)])
    v = dict(test_acc=0.9, train_acc=0.95, train_xent=0.1, sparsity_zero=0.0, lt3=0.01,
             dead=0.0, l2_norm=50.0, epoch_s=1.0) | values

    def noisy(x, scale):
        return float(x + noise * scale * rng.uniform(-1, 1))

    test_acc, train_acc = noisy(v["test_acc"], 0.001), noisy(v["train_acc"], 0.0005)
    train_xent = noisy(v["train_xent"], 0.001)
    test_xent = train_xent + max(0.0, train_acc - test_acc) * 4 + 0.01
    ran = v.get("epochs_run", epochs)
    best = v.get("best_epoch", max(1, ran - 5) if "early_stopping" in techniques else ran // 2)
    lt3 = min(1.0, noisy(v["lt3"], 0.001) if v["lt3"] > 0.002 else v["lt3"])
    lt2 = min(1.0, lt3 + 0.04)
    layers = {name: {"shape": shape, "zero": v["sparsity_zero"], "lt_1e-3": lt3,
                     "lt_1e-2": lt2, "rel_1pct": lt3 / 2, "l1": 100.0, "l2": 10.0}
              for name, shape in KERNELS.items()}
    epochs_axis = np.arange(1, ran + 1)
    out.update({
        "diverged_epoch": v.get("diverged_epoch"), "n_fit": 54000, "n_val": 6000,
        "n_test": 10000, "train_acc": train_acc, "train_xent": train_xent,
        "val_acc": test_acc, "val_xent": test_xent, "test_acc": test_acc,
        "test_xent": test_xent, "penalty": 0.0, "gap_acc": train_acc - test_acc,
        "gap_xent": test_xent - train_xent, "epochs_run": ran, "best_epoch": best,
        "stopped_epoch": ran if ran < epochs else None,
        "sparsity_zero": v["sparsity_zero"], "sparsity_lt_1e-3": lt3, "sparsity_lt_1e-2": lt2,
        "sparsity_rel_1pct": lt3 / 2, "l1_norm": v["l2_norm"] * 20,
        "l2_norm": noisy(v["l2_norm"], 0.1), "dead_inputs_lt_1e-3": v["dead"],
        "dead_inputs_lt_1e-2": min(1.0, v["dead"] * 1.2), "layers": layers,
        "fit_s": v["epoch_s"] * ran + 1.0, "first_epoch_s": v["epoch_s"] + 1.0,
        "epoch_s": noisy(v["epoch_s"], 0.01),
        "history": {"xent": list(train_xent + 0.5 / epochs_axis),
                    "val_xent": list(test_xent + 0.3 / epochs_axis + 0.001 * epochs_axis),
                    "acc": list(np.full(ran, train_acc)),
                    "val_acc": list(np.full(ran, test_acc)),
                    "epoch_s": list(np.full(ran, v["epoch_s"]))},
    })
    if status == "diverged":
        out["diverged_epoch"] = 3
    return out


def tutorial_rows(seeds=range(5), study: str = "mnist_tutorial",
                  overrides: dict | None = None) -> list[dict]:
    """The tutorial's 9 arms with the planted effects above; `overrides[arm]` changes an
    arm's means."""
    rows = []
    for seed in seeds:
        for arm, means in TUTORIAL.items():
            values = means | (overrides or {}).get(arm, {})
            rows.append(row(arm, seed, study=study, **values))
    return rows


def factorial_rows(effects: dict, interaction: float, seeds=range(3)) -> list[dict]:
    """none, a, b, a+b with test accuracy 0.9 + sum of `effects` + `interaction` for a+b."""
    rows = []
    for seed in seeds:
        for arm in ("none", "a", "b", "a+b"):
            parts = [] if arm == "none" else arm.split("+")
            acc = 0.9 + sum(effects[p] for p in parts) + (interaction if len(parts) == 2 else 0)
            rows.append(row(arm, seed, study="factorial", noise=0.0, test_acc=acc,
                            train_acc=0.99))
    return rows


def write(path, rows) -> str:
    for r in rows:
        store.append(path, r)
    return str(path)


def tuned_rows(chosen: dict[str, str], tuning_seeds=(100, 101, 102), seeds=range(4)) -> list:
    """A tuned design's store: `none` and an l2 and a dropout grid at the tuning seeds (test
    accuracy planted per point, validation following it), then none and each grid's point
    `chosen[grid]` at the final seeds."""
    grids = {"l2": {"l2@0.01": 0.912, "l2@1e-05": 0.960, "l2@0.0001": 0.975},  # not in order
             "dropout": {"dropout@0.1": 0.972, "dropout@0.5": 0.969}}
    rows = []
    for seed in tuning_seeds:
        rows.append(row("none", seed, test_acc=0.973, train_acc=0.998)
                    | {"role": "tuning", "grid": "none", "grid_point": "none",
                       "select": "val_xent"})
        for grid, points in grids.items():
            for point, acc in points.items():
                kind, value = point.split("@")
                settings = {f"{kind}.factor" if kind == "l2" else f"{kind}.rate": float(value)}
                rows.append(row(grid, seed, test_acc=acc, train_acc=acc + 0.01, lt3=acc - 0.9)
                            | settings | {"arm": point, "key": f"{point}-{seed}",
                                          "role": "tuning", "grid": grid, "grid_point": point,
                                          "select": "val_xent"})
    for seed in seeds:
        rows.append(row("none", seed, test_acc=0.973, train_acc=0.998)
                    | {"role": "final", "grid": "none", "grid_point": "none",
                       "select": "val_xent"})
        for grid, point in chosen.items():
            rows.append(row(grid, seed, test_acc=grids[grid][point], train_acc=0.99)
                        | {"role": "final", "grid": grid, "grid_point": point,
                           "select": "val_xent"})
    return rows
