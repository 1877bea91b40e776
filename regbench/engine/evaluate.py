"""The one evaluation: each member's accuracy and cross-entropy on every split in inference
mode (no dropout, no augmentation, batch-norm moving statistics), its kernels and penalty.

Training-set scores are re-evaluated after training, not taken from the running averages of
the last epoch. A split is evaluated once for the whole program.
"""

from __future__ import annotations

from regbench.engine.program import Program
from regbench.study import Cell

SPLITS = (("fit", "train"), ("val", "val"), ("test", "test"))  # (split, row prefix)


def evaluate(program: Program, cells: list[Cell], records: list[dict]) -> list[dict]:
    """Per member, its scores (`train_acc`, ..., `n_test`), `kernels` and `penalty`."""
    reused = [last_val_scores(cell, record) for cell, record in zip(cells, records)]
    logs = {split: program.net.evaluate(program.streams.batches(split), verbose=0,
                                        return_dict=True)
            for split, _ in SPLITS if split != "val" or not all(reused)}
    sizes = {split: len(program.streams.index(split)) for split, _ in SPLITS}
    out = []
    for k, member in enumerate(program.members):
        prefix, evaluation = program.prefixes[k], {}
        for split, name in SPLITS:
            scores = reused[k] if split == "val" and reused[k] else {
                "acc": logs[split][f"{prefix}acc"], "xent": logs[split][f"{prefix}xent"]}
            evaluation[f"{name}_acc"] = float(scores["acc"])
            evaluation[f"{name}_xent"] = float(scores["xent"])
            evaluation[f"n_{split}"] = sizes[split]
        evaluation["kernels"] = member.kernels()
        evaluation["penalty"] = member.penalty()
        out.append(evaluation)
    return out


def last_val_scores(cell: Cell, record: dict) -> dict | None:
    """The last epoch's validation scores, if they are those of the final weights: the same
    compiled evaluation over the same batches, so equal to evaluating again. Not when early
    stopping may have restored earlier weights, or training diverged."""
    stopping = cell.arm.get("early_stopping")
    history = record["history"]
    if record["diverged_epoch"] or not history.get("val_acc") or (
            stopping is not None and stopping.restore_best_weights):
        return None
    return {"acc": history["val_acc"][-1], "xent": history["val_xent"][-1]}
