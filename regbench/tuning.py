"""The tuned design's choice: each grid's point, from its tuning cells' validation scores.

The rule (`design.select`, stated in every tuned report): the point with the best mean of
the validation score over the tuning seeds (`val_xent`: lowest validation cross-entropy,
`val_acc`: highest validation accuracy); a diverged or failed tuning cell scores worst.
Points whose means are equal at 4 decimals are a tie, and a tie goes to the weaker setting.
Only validation scores enter: the test set plays no part, and the final seeds are apart.
Pure: plain rows in, plain choices out; no Keras.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from regbench.recipe import Arm
from regbench.study import SELECT, Cell, Grid, Study

TIE_DECIMALS = 4
# (technique, parameter) -> +1 where a larger value regularizes more, -1 where a smaller does;
# a parameter not listed is ordered as the grid lists it (first listed: weakest).
STRONGER = {
    ("l1", "factor"): 1, ("l2", "factor"): 1, ("l1_l2", "l1"): 1, ("l1_l2", "l2"): 1,
    ("weight_decay", "factor"): 1, ("l1_late", "factor"): 1, ("kl_sparsity", "weight"): 1,
    ("dropout", "rate"): 1, ("dropout", "input_rate"): 1, ("gaussian_noise", "stddev"): 1,
    ("augmentation", "rotation"): 1, ("augmentation", "shift"): 1,
    ("max_norm", "c"): -1, ("early_stopping", "patience"): -1,
}


@dataclass(frozen=True)
class Score:
    """A grid point's validation score over the tuning seeds (`values`, one per seed that
    finished; a diverged or failed cell is +inf for a lower-is-better rule)."""
    point: str
    values: tuple[float, ...]
    seeds: int  # tuning seeds the point should have

    @property
    def complete(self) -> bool:
        return len(self.values) == self.seeds

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values) if self.values else math.nan


def scores(study: Study, rows: list[dict]) -> dict[str, list[Score]]:
    """Grid label -> a score per point, from the stored rows of the study's tuning cells
    (matched by key, so labels in the store do not matter)."""
    column, sign = SELECT[study.tuning.select]
    by_key = {row["key"]: row for row in rows}
    cells: dict[str, list[Cell]] = {}
    for cell in study.cells():
        cells.setdefault(cell.point, []).append(cell)
    out = {}
    for grid in study.tuning.grids:
        if len(grid.points) == 1:
            continue
        out[grid.label] = [
            Score(point.label, tuple(_value(by_key[c.key], column, sign) for c in
                                     cells[point.label] if c.key in by_key),
                  len(cells[point.label]))
            for point in grid.points]
    return out


def _value(row: dict, column: str, sign: int) -> float:
    value = row.get(column)
    if row.get("status") != "ok" or value is None or not math.isfinite(value):
        return sign * math.inf  # scores worst: lower-is-better rules get +inf
    return float(value)


def choose(study: Study, rows: list[dict]) -> dict[str, Arm]:
    """Grid label -> the chosen point, for each grid whose tuning cells are all stored."""
    sign = SELECT[study.tuning.select][1]
    every = scores(study, rows)
    chosen = {}
    for grid in study.tuning.grids:
        grid_scores = every.get(grid.label)
        if grid_scores is None or not all(s.complete for s in grid_scores):
            continue
        label = best(grid_scores, sign, weakness_order(grid))
        chosen[grid.label] = next(p for p in grid.points if p.label == label)
    return chosen


def best(grid_scores: list[Score], sign: int, weakest_first: list[str]) -> str:
    """The point with the best mean score; ties (equal at TIE_DECIMALS) to the weakest."""
    def rounded(score: Score) -> float:
        mean = sign * score.mean
        return mean if math.isinf(mean) else round(mean, TIE_DECIMALS)
    top = min(rounded(s) for s in grid_scores)
    tied = {s.point for s in grid_scores if rounded(s) == top}
    return next(point for point in weakest_first if point in tied)


def weakness_order(grid: Grid) -> list[str]:
    """The grid's points from the weakest regularization to the strongest: each varying
    parameter ranks its values (STRONGER says which way), and a point's strength is the sum
    of its ranks; equal sums keep the grid's order."""
    varying = {}
    for point in grid.points:
        for technique in point.techniques:
            for name, value in vars(technique).items():
                varying.setdefault((technique.kind, name), []).append(value)
    ranks = {}
    for (kind, name), values in varying.items():
        distinct = list(dict.fromkeys(values))
        if len(distinct) < 2:
            continue
        direction = STRONGER.get((kind, name))
        ordered = sorted(distinct, key=lambda v: direction * v) if direction else distinct
        ranks[(kind, name)] = {repr(v): i for i, v in enumerate(ordered)}

    def strength(point: Arm) -> int:
        return sum(ranks[(t.kind, name)][repr(value)] for t in point.techniques
                   for name, value in vars(t).items() if (t.kind, name) in ranks)
    order = sorted(range(len(grid.points)), key=lambda i: (strength(grid.points[i]), i))
    return [grid.points[i].label for i in order]
