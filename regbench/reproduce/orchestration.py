"""What `regbench reproduce NAME` trains, in order: the studies (those not run here only with a
GPU, else a timing probe of each), then Table 9's chosen grid points at the final seeds and
the budget check with the schedule stretched; then the report. Every study of a reproduction
trains into one store, `reports/published/NAME/results.jsonl`; stored cells are skipped by the
trainer, so a rerun trains only what is missing."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from regbench import startup
from regbench.recipe import Training
from regbench.reproduce.registry import (
    PROBE_SUBSET,
    Probe,
    Reproduction,
    get,
    store_path,
    study_path,
)
from regbench.reproduce.reports import stored_rows, write
from regbench.reproduce.srivastava import chosen_points
from regbench.study import Cell, load_study


def run(name: str, train, say=print, gpu: bool | None = None) -> Path:
    """Train what `name` needs that is not stored yet, then write its report.

    `train(cells, store)` trains cells into a store (the command line's local executor).
    """
    repro = get(name)
    path = store_path(name)
    gpu = gpu_visible() if gpu is None else gpu
    for study in repro.not_run:
        if not gpu:
            say(f"{name}: {study} needs a GPU (none visible); its rows stay `not yet run` "
                "and a short probe times it on this machine")
    for what, cells in plan(repro, gpu):
        say(f"{name}: {what}: {len(cells)} cells")
        train(cells, path)
    rows = stored_rows(path)
    if repro.final_seeds and len(rows):
        cells = final_cells(repro, rows)
        if cells:
            say(f"{name}: chosen grid points at seeds {list(repro.final_seeds)}: "
                f"{len(cells)} cells")
            train(cells, path)
        longer = stretch_cells(repro, stored_rows(path), cells)
        if longer:
            say(f"{name}: budget check, {', '.join(repro.stretch_methods)} with the schedule "
                f"stretched {repro.stretch}x: {len(longer)} cells")
            train(longer, path)
    return write(name)


def gpu_visible() -> bool:
    """Whether the Keras backend sees a GPU (the studies in `not_run` need one)."""
    keras = startup.import_keras()  # without TensorFlow's start-up notices
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax
        return any(d.platform == "gpu" for d in jax.devices())
    if backend == "torch":
        import torch
        return torch.cuda.is_available()
    return False


def plan(repro: Reproduction, gpu: bool) -> list[tuple[str, list[Cell]]]:
    """(what, cells) in training order, before any Table 9 final cells."""
    steps = []
    for name in repro.studies + (repro.not_run if gpu else ()):
        steps.append((name, load_study(study_path(name)).cells()))
    if not gpu:
        steps += [(f"{p.study} (timing probe)", [probe_cell(p)]) for p in repro.probes]
    return steps


def probe_cell(probe: Probe) -> Cell:
    """The probe's short cell, in a study of its own so its row never counts as a result."""
    study = load_study(study_path(probe.study))
    cell = study.cells()[0]
    training = replace(cell.training, epochs=probe.epochs, train_subset=PROBE_SUBSET)
    return replace(cell, study=f"{probe.study}_probe", training=training, seed=0)


def final_cells(repro: Reproduction, rows: pd.DataFrame) -> list[Cell]:
    """Table 9: each row's chosen grid point at the final seeds."""
    cells = []
    for study_name in repro.studies + repro.not_run:
        study = load_study(study_path(study_name))
        chosen = chosen_points(rows[rows["study"] == study.name], repro.published.rows)
        final = study.name.removesuffix("_tuning")
        for cell in study.cells():
            if cell.seed == study.seeds[0] and any(
                    cell.arm.label == arm and (math.isnan(rate) or math.isclose(
                        cell.training.learning_rate, rate, rel_tol=1e-9))
                    for arm, rate in chosen.values()):
                cells += [replace(cell, study=final, seed=s) for s in repro.final_seeds]
    return cells


def stretched(training: Training, factor: int) -> Training:
    """The same schedule over `factor` times the epochs: the learning rate falls to the
    same final value and the momentum ramp takes `factor` times as long."""
    return replace(training, epochs=training.epochs * factor,
                   lr_decay=training.lr_decay ** ((training.epochs - 1)
                                                  / (training.epochs * factor - 1)),
                   momentum_epochs=training.momentum_epochs * factor)


def stretch_cells(repro: Reproduction, rows: pd.DataFrame, finals: list[Cell]) -> list[Cell]:
    """The final cells of `stretch_methods`, with the stretched schedule."""
    if not repro.stretch:
        return []
    tuning = rows[rows["study"] == f"{finals[0].study}_tuning"] if finals else rows[:0]
    chosen = chosen_points(tuning, repro.published.rows)
    labels = {chosen[m][0] for m in repro.stretch_methods if m in chosen}
    return [replace(c, study=f"{c.study}_x{repro.stretch}",
                    training=stretched(c.training, repro.stretch))
            for c in finals if c.arm.label in labels]
