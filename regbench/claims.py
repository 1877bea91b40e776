"""The Keras regularization tutorial's claims (shared/reference/tutorial.md), tested on the
results of its own configurations (`ablations/mnist_tutorial.toml`).

Each claim is split into parts. A part is either a paired comparison of two arms across seeds
(an exact permutation test, Holm-corrected over every comparison in this report) or a
measurement every seed must pass (e.g. the share of weights exactly zero). Part verdicts come
from the data through the rules below; the claim's verdict is composed from its parts. Nothing
is decided by hand: rerun on other results and the verdicts follow them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from regbench import document, report, report_tuning, stats
from regbench.claims_finding import finding_blocks
from regbench.errors import RegbenchError
from regbench.plots import arms_of
from regbench.report_figures import claims_figures

ALPHA = stats.ALPHA
THRESHOLDS = ("1e-3", "1e-2")  # the small-weight measures L1 and L2 are compared on
SPARSE = 0.01  # an arm is "sparse" at exact zero when >= 1% of its weights are exactly 0 ...
NOT_ZERO = 0.001  # ... and "leaves weights nonzero" when < 0.1% are exactly 0, in every seed

# Part verdicts, strongest first. Paired parts reach "supported"/"contradicted" only when
# significant after Holm; "in direction" means every seed agrees but the test cannot
# resolve it (or does not).
SUPPORTED = "supported"
DIRECTION = "supported in direction"
MIXED = "no consistent effect"
AGAINST = "contradicted in direction"
CONTRADICTED = "contradicted"
UNDERFITTING = "underfitting"  # a smaller gap bought with worse test results
UNDERFITTING_DIRECTION = "underfitting in direction"  # ... in every seed, not significant
UNTESTABLE = "not testable here"
NO_DATA = "no data"
TOO_FEW = "one seed only"  # a paired part needs two or more seeds to show a direction
RANK = {SUPPORTED: 2, DIRECTION: 1, MIXED: 0, AGAINST: -1, CONTRADICTED: -2, UNDERFITTING: -2,
        UNDERFITTING_DIRECTION: -1}

METRIC_NAMES = {
    "test_acc": "test accuracy",
    "gap_acc": "accuracy gap",
    "gap_xent": "cross-entropy gap",
    "test_xent": "test cross-entropy",
    "train_xent": "train cross-entropy",
    "xent_epoch1": "train cross-entropy after epoch 1",
    "epochs_to_target": "epochs to the validation-accuracy target",
    "sparsity_zero": "share of w = 0",
    "sparsity_lt_1e-3": "share of |w| < 1e-3",
    "sparsity_lt_1e-2": "share of |w| < 1e-2",
    "dead_inputs_lt_1e-3": "share of input pixels with all |w| < 1e-3",
    "dead_inputs_lt_1e-2": "share of input pixels with all |w| < 1e-2",
    "l2_norm": "L2 norm of the kernels",
    "fit_s": "training time (s)",
}


@dataclass
class PairedTest:
    """arm vs ref on `metric`, paired by seed: the differences and their p-values."""
    arm: str
    ref: str
    metric: str
    diffs: np.ndarray = field(repr=False)
    p: float = math.nan
    p_holm: float = math.nan  # set once every test of the report is known


@dataclass(frozen=True)
class Comparison:
    """A test read in the direction a claim states: sign(arm − ref) == `sign`."""
    test: PairedTest
    sign: int

    @property
    def level(self) -> str:
        d = self.test.diffs
        if len(d) == 0:
            return NO_DATA
        mean = float(np.mean(d))
        if self.test.p_holm < ALPHA and mean != 0:
            return SUPPORTED if np.sign(mean) == self.sign else CONTRADICTED
        if len(d) >= 2 and np.all(np.sign(d) == self.sign):
            return DIRECTION
        if len(d) >= 2 and np.all(np.sign(d) == -self.sign):
            return AGAINST
        return MIXED if len(d) >= 2 else TOO_FEW

    @property
    def excludes_zero(self) -> bool:
        low, high = stats.interval(self.test.diffs)
        return low > 0 or high < 0

    def describe(self) -> str:
        t = self.test
        name = METRIC_NAMES.get(t.metric, t.metric)
        d = t.diffs
        if len(d) == 0:
            return f"{name}, `{t.arm}` − `{t.ref}`: no seed where both are ok"
        low, high = stats.interval(d)
        ci = "" if math.isnan(low) else f", 95% CI [{low:+.4g}, {high:+.4g}]"
        along = int(np.sum(np.sign(d) == self.sign))
        direction = "higher" if self.sign > 0 else "lower"
        return (f"{name}, `{t.arm}` − `{t.ref}`: {np.mean(d):+.4g}{ci}; "
                f"{direction} in {along}/{len(d)} seeds; p = {report.fmt_p(t.p)}, "
                f"Holm p = {report.fmt_p(t.p_holm)}")


@dataclass
class Part:
    """One testable statement of a claim: a comparison, or a measurement with its level."""
    text: str
    comparison: Comparison | None = None
    fixed: str | None = None
    evidence: str = ""

    @property
    def level(self) -> str:
        return self.comparison.level if self.comparison else (self.fixed or UNTESTABLE)

    def describe(self) -> str:
        return self.comparison.describe() if self.comparison else self.evidence

    @property
    def comparisons(self) -> tuple[Comparison, ...]:
        return (self.comparison,) if self.comparison else ()

    def verdict(self) -> str:
        """The level, and where a test did not resolve what its interval excludes, that."""
        unresolved = [c for c in self.comparisons
                      if c.excludes_zero and c.test.p_holm >= ALPHA]
        if unresolved and self.level not in (SUPPORTED, CONTRADICTED, UNDERFITTING):
            metric = unresolved[0].test.metric
            which = f"of {METRIC_NAMES.get(metric, metric)} " if len(self.comparisons) > 1 else ""
            return (f"{self.level} (the interval {which}excludes 0; the exact test after Holm "
                    "does not)")
        return self.level


@dataclass
class Generalizes(Part):
    """"Prevents overfitting" read as it must be: better test accuracy or test cross-entropy
    than the reference at the same seeds. A gap that shrinks while the test results get
    worse is underfitting, and says so."""
    gap: Comparison | None = None
    acc: Comparison | None = None
    xent: Comparison | None = None
    RULE = ("rule: supported when test accuracy or test cross-entropy is better after Holm "
            "(and neither worse); underfitting when one is worse while the gap shrinks")

    @property
    def level(self) -> str:
        test = [self.acc.level, self.xent.level]
        lacking = [v for v in test if v in (NO_DATA, TOO_FEW)]
        if lacking:
            return lacking[0]
        better = [RANK[v] for v in test]
        shrinks = self.gap.level in (SUPPORTED, DIRECTION)
        if max(better) >= 1 and min(better) <= -1:  # one measure better, the other worse
            return MIXED
        if max(better) == 2:
            return SUPPORTED
        if min(better) == -2:
            return UNDERFITTING if shrinks else CONTRADICTED
        if max(better) == 1 and min(better) >= 0:
            return DIRECTION
        if min(better) == -1 and max(better) <= 0:
            return UNDERFITTING_DIRECTION if shrinks else AGAINST
        return MIXED

    @property
    def comparisons(self) -> tuple[Comparison, ...]:
        return self.acc, self.xent

    def describe(self) -> str:
        return "; ".join(c.describe() for c in (self.acc, self.xent, self.gap)) \
            + f". {self.RULE}"


@dataclass
class Claim:
    number: int
    short: str
    text: str
    parts: list[Part]
    notes: list[str | Comparison] = field(default_factory=list)  # a comparison: its numbers

    @property
    def verdict(self) -> str:
        return compose([p.level for p in self.parts])

    def note_lines(self) -> list[str]:
        return [n.describe() + "." if isinstance(n, Comparison) else n for n in self.notes]

    def tested(self) -> list[Part]:
        return [p for p in self.parts if p.level != UNTESTABLE]

    def summary(self) -> str:
        shown = self.tested()
        if len(shown) > 4:
            counts = pd.Series([p.level for p in shown]).value_counts(sort=False)
            return f"{len(shown)} parts: " + ", ".join(f"{n} {v}" for v, n in counts.items())
        return "; ".join(f"{p.text}: {p.level}" for p in shown) or "nothing measurable here"


def compose(levels: list[str]) -> str:
    """A claim's verdict from its parts' verdicts. Untestable parts do not count; parts
    without data do not count either, but are named in the verdict."""
    ranks = [RANK[v] for v in levels if v in RANK]
    lacking = sum(v in (NO_DATA, TOO_FEW) for v in levels)
    if not ranks:
        if lacking:
            return TOO_FEW if TOO_FEW in levels else NO_DATA
        return UNTESTABLE
    if min(ranks) >= 1:
        verdict = SUPPORTED if min(ranks) == 2 else DIRECTION
    elif max(ranks) <= -1:
        verdict = CONTRADICTED if min(ranks) == -2 else AGAINST
    elif max(ranks) >= 1:
        verdict = "partly supported"
    else:
        verdict = "not supported"
    if lacking:
        verdict += f" ({lacking} of {len(levels)} parts without enough data)"
    return verdict


# --- evaluation ------------------------------------------------------------------------------

class Evidence:
    """The `ok` rows of one problem, per-seed tables by metric, and every comparison made."""

    def __init__(self, rows: pd.DataFrame):
        self.rows = rows
        self.ok = rows[rows["status"] == "ok"].copy()
        if "history" in self.ok:
            self.ok["xent_epoch1"] = [h.get("xent", [math.nan])[0] if isinstance(h, dict)
                                      else math.nan for h in self.ok["history"]]
        self.arms = set(self.ok["arm"])
        self.tuned = "grid_point" in rows and rows["grid_point"].ne(rows["arm"]).any()
        self.tests: dict[tuple, PairedTest] = {}  # (arm, ref, metric) -> test

    def has(self, *arms: str) -> bool:
        return all(a in self.arms for a in arms)

    def values(self, arm: str, column: str) -> pd.Series:
        """Per seed (index), the column's value for `arm`'s ok cells."""
        part = self.ok[self.ok["arm"] == arm]
        if column not in part:
            return pd.Series(dtype=float)
        return part.set_index("seed")[column].astype(float).sort_index()

    def compare(self, arm: str, ref: str, metric: str, sign: int) -> Comparison:
        key = (arm, ref, metric)
        if key not in self.tests:
            pair = pd.concat([self.values(arm, metric), self.values(ref, metric)], axis=1,
                             keys=["a", "b"]).dropna()
            self.tests[key] = PairedTest(
                arm, ref, metric, (pair["a"] - pair["b"]).to_numpy(),
                stats.paired_permutation_test(pair["a"], pair["b"]))
        return Comparison(self.tests[key], sign)

    def part(self, text: str, arm: str, ref: str, metric: str, sign: int) -> Part:
        return Part(text, comparison=self.compare(arm, ref, metric, sign))

    def generalizes(self, text: str, arm: str, ref: str = stats.NONE) -> Generalizes:
        return Generalizes(text, gap=self.compare(arm, ref, "gap_acc", -1),
                           acc=self.compare(arm, ref, "test_acc", +1),
                           xent=self.compare(arm, ref, "test_xent", -1))

    def correct(self) -> int:
        """Holm over every distinct test made; returns their number."""
        tests = list(self.tests.values())
        for t, p in zip(tests, stats.holm([t.p for t in tests])):
            t.p_holm = float(p)
        return len(tests)

    def mean(self, arm: str, column: str) -> float:
        v = self.values(arm, column)
        return float(v.mean()) if len(v) else math.nan

    def kernel_size(self, arm: str) -> int:
        """Number of kernel weights of the arm's model, from the stored layer shapes."""
        layers = self.ok.loc[self.ok["arm"] == arm, "layers"]
        for s in layers:
            if isinstance(s, dict):
                return int(sum(np.prod(v["shape"]) for v in s.values()))
        return 0

    def inputs(self, arm: str) -> int:
        layers = self.ok.loc[self.ok["arm"] == arm, "layers"]
        for s in layers:
            if isinstance(s, dict) and s:
                return int(next(iter(s.values()))["shape"][0])
        return 0

    def setting(self, column: str):
        values = self.rows[column].dropna().unique() if column in self.rows else []
        if len(values) != 1:
            return None
        value = values[0].item() if hasattr(values[0], "item") else values[0]
        return int(value) if isinstance(value, float) and value.is_integer() else value


def _zero_part(ev: Evidence, arm: str, text: str, claim_zero: bool) -> Part:
    """A measurement on every seed: the share of weights exactly 0 in `arm`."""
    frac = ev.values(arm, "sparsity_zero")
    if frac.empty:
        return Part(text, fixed=NO_DATA, evidence=f"no ok cells of `{arm}`")
    size = ev.kernel_size(arm)
    counts = ", ".join(f"{round(f * size)}" for f in frac)
    evidence = (f"`{arm}`: weights exactly 0 per seed: {counts} of {size} "
                f"(max {100 * frac.max():.3g}%); rule: sparse if >= {100 * SPARSE:g}% in every "
                f"seed, nonzero if < {100 * NOT_ZERO:g}% in every seed")
    sparse, nonzero = bool((frac >= SPARSE).all()), bool((frac < NOT_ZERO).all())
    if claim_zero:
        level = SUPPORTED if sparse else CONTRADICTED if nonzero else MIXED
    else:
        level = SUPPORTED if nonzero else CONTRADICTED if sparse else MIXED
    return Part(text, fixed=level, evidence=evidence)


def _penalty_note(ev: Evidence, arm: str, factor_col: str, kind: str) -> str | None:
    """Check on the data that the stored penalty is factor × Σ|w| (l1) or factor × Σw² (l2)."""
    factor = ev.setting(factor_col)
    penalty, l1, l2 = (ev.values(arm, c) for c in ("penalty", "l1_norm", "l2_norm"))
    if factor is None or penalty.empty or ev.setting(f"{kind}.layers") not in (None, "all"):
        return None
    expected = factor * (l1 if kind == "l1" else l2 ** 2)
    ratio = (penalty / expected).dropna()
    if ratio.empty:
        return None
    form = "Σ|w|" if kind == "l1" else "Σw²"
    holds = bool(np.all(np.abs(ratio - 1) < 1e-3))
    return (f"The stored penalty of `{arm}` {'equals' if holds else 'does NOT equal'} "
            f"{factor:g} × {form} over all kernels at the final weights: penalty / "
            f"({factor:g} × {form}) = {ratio.min():.4f}–{ratio.max():.4f} across seeds "
            "(float32 penalty vs float64 norms).")


def claim_1(ev: Evidence) -> Claim:
    arms = [a for a in arms_of(ev.rows) if a != stats.NONE]
    parts = []
    for arm in arms:
        parts.append(ev.generalizes(f"`{arm}` generalizes better than `none`", arm))
    claim = Claim(1, "regularization prevents overfitting and improves generalization",
                  "Regularization prevents overfitting: it improves generalization by "
                  "penalizing complexity.", parts)
    claim.notes.append("Read per arm against `none` at the same seed: better test accuracy or "
                       "lower test cross-entropy (*improves generalization*). The accuracy gap "
                       "(train − test, train re-evaluated in inference mode) alone decides "
                       "nothing: a smaller gap with worse test results is *underfitting*.")
    return claim


def claim_2(ev: Evidence) -> Claim:
    parts = [
        _zero_part(ev, "l1", "drives some weights to exactly zero (sparse)", claim_zero=True),
        *(ev.part(f"near-zero weights (|w| < {t}) more common than without L1", "l1", "none",
                  f"sparsity_lt_{t}", +1) for t in THRESHOLDS),
        *(ev.part(f"deselects input pixels (all outgoing |w| < {t})", "l1", "none",
                  f"dead_inputs_lt_{t}", +1) for t in THRESHOLDS),
    ]
    claim = Claim(2, "L1 zeroes weights, gives sparse solutions, selects features",
                  "L1 adds a penalty proportional to the sum of absolute weights, drives some "
                  "weights to exactly zero, produces sparse solutions and so performs feature "
                  "selection.", parts)
    note = _penalty_note(ev, "l1", "l1.factor", "l1")
    if note:
        claim.notes.append(note)
    dead = ev.values("l1", "dead_inputs_lt_1e-3")
    inputs = ev.inputs("l1")
    mnist = ev.setting("dataset") == "mnist"
    if len(dead) and inputs:
        def pixels(arm, column):
            return ", ".join(str(round(d * inputs)) for d in ev.values(arm, column)) or "–"
        claim.notes.append(
            f"Input pixels deselected per seed, of {inputs}: `l1` "
            f"{pixels('l1', 'dead_inputs_lt_1e-3')} at |w| < 1e-3 "
            f"({pixels('l1', 'dead_inputs_lt_1e-2')} at < 1e-2); `none` "
            f"{pixels('none', 'dead_inputs_lt_1e-3')}."
            + (" MNIST's border pixels are zero in (almost) every image, so part of this "
               "selection is of inputs that carry no information at all." if mnist else ""))
    if parts[0].level not in (SUPPORTED, NO_DATA):
        claim.notes.append(f"Why not at exactly 0: the optimizer ({ev.setting('optimizer')}) "
                           "applies the L1 subgradient with no proximal or truncation step, "
                           "so weights oscillate around zero instead of landing on it.")
    return claim


def claim_3(ev: Evidence) -> Claim:
    parts = [
        ev.part("keeps weights small (L2 norm below `none`'s)", "l2", "none", "l2_norm", -1),
        _zero_part(ev, "l2", "does not drive weights to exactly zero", claim_zero=False),
        *_versus_l1(ev, "leaves fewer weights near zero than L1 does"),
        Part("helps with correlated features", fixed=UNTESTABLE,
             evidence="no correlated-feature manipulation in this study"),
    ]
    claim = Claim(3, "L2 shrinks weights without zeroing them",
                  "L2 adds a penalty proportional to the sum of squared weights, keeps weights "
                  "small but does not drive them to exactly zero; it helps with correlated "
                  "features.", parts)
    note = _penalty_note(ev, "l2", "l2.factor", "l2")
    if note:
        claim.notes.append(note)
    near = ev.values("l2", "sparsity_lt_1e-3")
    if len(near):
        claim.notes.append(f"Not exactly zero, but `l2` leaves {100 * near.mean():.3g}% of "
                           f"weights below 1e-3 in |w| (`none`: "
                           f"{100 * ev.mean('none', 'sparsity_lt_1e-3'):.3g}%, `l1`: "
                           f"{100 * ev.mean('l1', 'sparsity_lt_1e-3'):.3g}%). Exact zeros "
                           "alone cannot tell L2 from L1 where L1 leaves none either; the parts "
                           "against `l1` compare them on the same measures.")
    return claim


def _versus_l1(ev: Evidence, text: str) -> list[Part]:
    """L1 against L2 on every small-weight measure (read from L1's side: more near-zero
    weights, more deselected pixels), one test each, shared by claims 3 and 4."""
    return [ev.part(f"{text}: {METRIC_NAMES[m]}", "l1", "l2", m, +1)
            for m in (*(f"sparsity_lt_{t}" for t in THRESHOLDS),
                      *(f"dead_inputs_lt_{t}" for t in THRESHOLDS))]


def claim_4(ev: Evidence) -> Claim:
    parts = [
        *_versus_l1(ev, "L1 is sparser than L2"),
        Part("L2 when all features may be relevant", fixed=UNTESTABLE,
             evidence="advice; which features are relevant is not controlled here"),
    ]
    claim = Claim(4, "choose L1 for sparsity, L2 when all features matter",
                  "Choose L1 when feature selection and sparsity matter, L2 when all features "
                  "may be relevant.", parts)
    if ev.has("l1", "l2", "none"):
        l1, l2 = ev.setting("l1.factor"), ev.setting("l2.factor")
        claim.notes += [ev.compare("l1", "none", "test_acc", +1),
                        ev.compare("l2", "none", "test_acc", +1),
                        f"Strengths: `l1` {l1:g}, `l2` {l2:g}, "
                        + ("each chosen on the validation split (tuned), so the two are "
                           "compared where each is at its best." if ev.tuned else
                           "as the tutorial gives them, untuned: the same nominal factor is a "
                           "very different strength for the two penalties, so read the "
                           "sparsity beside each one's accuracy cost.")]
    return claim


def claim_5(ev: Evidence) -> Claim:
    arm = "early_stopping"
    parts = [_stopping_part(ev, arm),
             ev.generalizes("prevents overfitting (generalizes better than `none`)", arm)]
    claim = Claim(5, "early stopping stops when validation loss stalls; prevents overfitting",
                  "Early stopping stops training when validation loss stops improving and so "
                  "prevents overfitting.", parts)
    restore = ev.setting("early_stopping.restore_best_weights")
    patience = ev.setting("early_stopping.patience")
    if restore is not None:
        claim.notes.append(
            f"restore_best_weights = {bool(restore)}: the evaluated weights are those of "
            + ("the best epoch." if restore else f"the stop epoch, {patience} epochs past the "
               "best (Keras's default, as in the tutorial)."))
    if ev.has(arm, "none"):
        claim.notes.append(ev.compare(arm, "none", "fit_s", -1))
    return claim


def _stopping_part(ev: Evidence, arm: str) -> Part:
    text = "stops when the validation loss stops improving"
    rows = ev.ok[ev.ok["arm"] == arm]
    patience = Evidence(rows).setting("early_stopping.patience")  # the arm's own: combinations
    epochs = ev.setting("epochs")                                  # may tune theirs apart
    if rows.empty or patience is None or epochs is None:
        return Part(text, fixed=NO_DATA, evidence=f"no ok cells of `{arm}`")
    ran, best = rows["epochs_run"].astype(int), rows["best_epoch"].astype(int)
    stopped = (rows["stopped_epoch"].notna() if "stopped_epoch" in rows
               else ran < epochs).to_numpy()
    # Keras stops `patience` epochs after the best one; a run that never stalled runs out.
    consistent = np.where(stopped, ran - best == patience, ran - best < patience)
    evidence = (f"epochs run per seed: {', '.join(map(str, ran))} of {epochs}; best epoch "
                f"(lowest validation cross-entropy): {', '.join(map(str, best))}; patience "
                f"{patience}; {int(stopped.sum())}/{len(rows)} seeds stopped early, each "
                f"{patience} epochs after its best" if stopped.any() else
                f"epochs run per seed: {', '.join(map(str, ran))}; no seed stopped early")
    return Part(text, fixed=SUPPORTED if consistent.all() else CONTRADICTED,
                evidence=evidence + " (monitor: validation cross-entropy, the tutorial's "
                "val_loss without the penalty)")


def claim_6(ev: Evidence) -> Claim:
    parts = [ev.generalizes("prevents overfitting (generalizes better than `none`)",
                            "dropout"),
             Part("reduces co-adaptation of units", fixed=UNTESTABLE,
                  evidence="co-adaptation is not measured")]
    claim = Claim(6, "dropout prevents overfitting",
                  "Dropout randomly zeroes units during training, reduces co-adaptation and "
                  "prevents overfitting.", parts)
    if ev.has("dropout", "none"):
        claim.notes.append(ev.compare("dropout", "none", "gap_xent", -1))
    return claim


def claim_7(ev: Evidence) -> Claim:
    arm = "augmentation"
    parts = [ev.generalizes("improves generalization (better test results than `none`)", arm),
             Part("increases the size and diversity of the training data", fixed=UNTESTABLE,
                  evidence="each epoch sees the same number of (transformed) images; "
                           "diversity is not measured")]
    claim = Claim(7, "data augmentation improves generalization",
                  "Data augmentation increases the size and diversity of the training data "
                  "and improves generalization, especially for images.", parts)
    if ev.has(arm, "none"):
        flip = ev.setting("augmentation.flip")
        claim.notes.append(
            f"Augmentation settings: rotation {ev.setting('augmentation.rotation')}°, shift "
            f"{ev.setting('augmentation.shift')}, flip = {flip!r} (\"auto\" leaves the "
            "horizontal flip out for digits, which a mirror image can turn into another or "
            "no digit; the tutorial flipped). The test set is not augmented.")
    return claim


def claim_8(ev: Evidence) -> Claim:
    rates = ev.rows["learning_rate"].dropna().unique() if "learning_rate" in ev.rows else []
    parts = [
        Part("allows higher learning rates", fixed=UNTESTABLE,
             evidence=f"one learning rate in this study ({', '.join(map(str, rates))})"),
        _faster_part(ev, "batchnorm"),
        ev.part("trains faster: lower train cross-entropy after the first epoch",
                "batchnorm", "none", "xent_epoch1", -1),
        ev.part("better training: lower final train cross-entropy", "batchnorm", "none",
                "train_xent", -1),
        ev.generalizes("regularizing effect (generalizes better than `none`)", "batchnorm"),
    ]
    claim = Claim(8, "batch normalization trains better and regularizes",
                  "Batch normalization allows higher learning rates and better training, and "
                  "has a regularizing effect.", parts)
    return claim


def _faster_part(ev: Evidence, arm: str) -> Part:
    """Epochs until the validation accuracy first reaches a target both arms reach: the
    lower of the two arms' median best validation accuracy."""
    text = "trains faster: fewer epochs to a validation-accuracy target"
    curves = {a: ev.ok.loc[ev.ok["arm"] == a, "history"] for a in (arm, stats.NONE)}
    if "history" not in ev.ok or any(c.empty for c in curves.values()):
        return Part(text, fixed=NO_DATA, evidence=f"no ok cells of `{arm}` and `none`")
    best = {a: float(np.median([max(h["val_acc"]) for h in c])) for a, c in curves.items()}
    target = min(best.values())

    def epochs_to(h: dict) -> float:
        reached = [i for i, v in enumerate(h["val_acc"], 1) if v >= target]
        return reached[0] if reached else len(h["val_acc"]) + 1  # never: past the last
    ev.ok["epochs_to_target"] = [epochs_to(h) if isinstance(h, dict) and h.get("val_acc")
                                 else math.nan for h in ev.ok["history"]]
    part = ev.part(f"{text} ({100 * target:.2f}%)", arm, stats.NONE, "epochs_to_target", -1)
    return part


def claim_9(ev: Evidence) -> Claim:
    combos = [a for a in arms_of(ev.rows) if len(stats.technique_set(a)) >= 2]
    parts, notes = [], []
    for combo in combos:
        members = sorted(stats.technique_set(combo))
        for member in members:
            if member in set(ev.rows["arm"]):
                parts.append(ev.part(f"`{combo}` beats `{member}` on test accuracy", combo,
                                     member, "test_acc", +1))
        if ev.has(combo, "none"):
            notes += [ev.compare(combo, "none", "test_acc", +1),
                      ev.compare(combo, "none", "gap_acc", -1)]
        if not ev.has(combo):
            notes.append(f"`{combo}` has no ok cells: the combination is untested.")
    if not combos:
        parts.append(Part("a combination beats its parts", fixed=NO_DATA,
                          evidence="no arm combines techniques"))
    claim = Claim(9, "combining techniques generalizes better",
                  "Combining techniques (e.g. L2 + dropout + early stopping) gives better "
                  "generalization.", parts, notes)
    claim.notes.insert(0, "Read as: the combination reaches a higher test accuracy than each "
                          "of its techniques alone, at the same seed.")
    return claim


CLAIMS = (claim_1, claim_2, claim_3, claim_4, claim_5, claim_6, claim_7, claim_8, claim_9)


def evaluate(rows: pd.DataFrame) -> tuple[list[Claim], Evidence]:
    """Every claim with its parts' verdicts, Holm-corrected over all comparisons made."""
    ev = Evidence(rows)
    claims = [make(ev) for make in CLAIMS]
    ev.correct()
    return claims, ev


# --- the report ------------------------------------------------------------------------------

def strengths(rows: pd.DataFrame) -> str:
    """What strengths a store's arms are at: chosen on validation, or as the study gives."""
    tuned = "grid_point" in rows and rows["grid_point"].ne(rows["arm"]).any()
    return "validation-tuned strengths" if tuned else "the tutorial's strengths"


def load(results: str | Path) -> pd.DataFrame:
    """A store's rows for the claims: one problem and budget, with `none`; a tuned design's
    final cells only (its tuning cells chose the strengths and are not evidence)."""
    rows = report.load_results(results)
    rows = report_tuning.split(rows)[1]
    parts = report.sections(rows)
    if len(parts) > 1:
        raise RegbenchError(f"{results}: claims take one problem and budget; this store has "
                            f"{len(parts)} ({'; '.join(t for t, _ in parts)})")
    if stats.NONE not in set(rows["arm"]):
        raise RegbenchError(f"{results}: no `none` arm; the claims are tested against the "
                            "unregularized baseline")
    return rows


def claims_blocks(stores: list[tuple[str, pd.DataFrame]], out_dir: str | Path,
                  regenerate: str) -> tuple[list, dict[str, list[Claim]]]:
    """The report over one or more stores (results path, rows), each tested on its own: the
    finding (verdicts and effects, a column pair per store), then each store's claims in full."""
    evaluated = {}
    for results, rows in stores:
        claims, ev = evaluate(rows)
        evaluated[results] = (strengths(rows), rows, claims, ev)
    blocks = [
        document.Heading("The tutorial's claims, tested", 1),
        document.Para("Each claim of the Keras regularization tutorial "
                      "(`shared/reference/tutorial.md`), tested on "
                      + "; ".join(f"`{', '.join(sorted(rows['study'].dropna().unique()))}` at "
                                  f"{label} ({len(rows)} cells)"
                                  for label, rows, _, _ in evaluated.values())
                      + f". Generated by `{regenerate}`; the verdicts are computed from the "
                      "results by the rules below, not written by hand."),
        *finding_blocks([(label, claims) for label, _, claims, _ in evaluated.values()],
                        METRIC_NAMES),
        document.Para("**Contents**"),
        document.Contents(),
        document.Heading("How verdicts are reached", 2),
        document.Bullets(RULES),
    ]
    multiple = len(evaluated) > 1
    for results, (label, rows, claims, ev) in evaluated.items():
        level = 3 if multiple else 2
        if multiple:
            blocks.append(document.Heading(f"At {label}", 2))
        blocks += _store_blocks(rows, results, claims, ev, level)
    for label, rows, _, _ in evaluated.values():
        prefix = "tuned_" if label.startswith("validation") and multiple else ""
        blocks += [document.Heading(f"Figures at {label}" if multiple else "Figures", 2),
                   *claims_figures(rows, prefix)]
    every = pd.concat([rows for _, rows in stores], ignore_index=True)
    blocks += report.reproducibility_blocks(every, stores[0][0], out_dir, regenerate)
    return blocks, {label: claims for label, _, claims, _ in evaluated.values()}


RULES = (
    "A claim is split into parts. A *paired* part compares two arms seed by seed (same "
    "split, data order and initial weights): exact permutation test of the mean difference "
    "(two-sided, all 2^n sign flips), Holm-corrected over all the comparisons made on one "
    "store; the interval is the 95% Student-t interval of the mean difference.",
    f"**{SUPPORTED}** / **{CONTRADICTED}**: significant at alpha = {ALPHA} after Holm in / "
    "against the claimed direction; for a measured part, the measurement passes / fails in "
    "every seed.",
    f"**{DIRECTION}** / **{AGAINST}**: every seed moves in / against the claimed direction, "
    "but the test does not reach significance.",
    "*Prevents overfitting* and *improves generalization* need better test results: higher "
    "test accuracy or lower test cross-entropy than `none`. A smaller gap (train − test) "
    f"with worse test results is **{UNDERFITTING}**, not generalization.",
    f"**{UNDERFITTING_DIRECTION}**: as {UNDERFITTING}, with every seed agreeing but the test "
    "not resolving it.",
    f"**{MIXED}**: the seeds disagree. **{UNTESTABLE}**: nothing in this study measures it. "
    f"**{NO_DATA}** / **{TOO_FEW}**: the arms involved share no / only one seed with ok "
    "cells.",
    "A claim is *supported* (or *supported in direction*) when all its testable parts are, "
    "*contradicted* likewise, *partly supported* when some parts are supported and others "
    "are not, *not supported* otherwise.",
)


def _store_blocks(rows, results, claims: list[Claim], ev: Evidence, level: int) -> list:
    m = len(ev.tests)
    n = max((len(t.diffs) for t in ev.tests.values()), default=0)
    floor = stats.min_p_value(n)
    blocks = [document.Para(f"`{report.display_path(results)}`: {m} paired comparisons, "
                            f"n = {n} seeds, Holm over all {m}.")]
    if n and floor * m >= ALPHA:
        blocks.append(document.Para(
            f"**Resolution limit.** With n = {n} seeds the smallest two-sided p is "
            f"2/2^{n} = {floor:.4f}; after Holm over {m} comparisons at least "
            f"{min(1.0, floor * m):.4f}. No paired part can be significant, so none can be "
            f"*{SUPPORTED}* or *{CONTRADICTED}*: the best the data can say is that every seed "
            f"agrees. Significance here needs at least {stats.seeds_needed(m)} seeds."))
    for c in claims:
        blocks += [document.Heading(f"{c.number}. {c.short}", level),
                   document.Para(f"*Claim:* {c.text}"),
                   document.Para(f"**Verdict: {c.verdict}.**"),
                   document.Table(("part", "verdict", "evidence"),
                                  tuple((p.text, p.verdict(), p.describe()) for p in c.parts))]
        if c.notes:
            blocks.append(document.Bullets(tuple(c.note_lines())))
    return blocks


def write_claims(results: str | Path | list, out_dir: str | Path) -> dict[str, list[Claim]]:
    """Write README.md, report.html, figures/ and claims.json into `out_dir`, from one store
    or several (e.g. the tutorial's strengths and the tuned ones)."""
    sources = [results] if isinstance(results, (str, Path)) else list(results)
    stores = [(source, load(source)) for source in sources]
    out_dir = Path(out_dir)
    regenerate = (f"regbench claims {' '.join(report.display_path(s) for s in sources)} "
                  f"--out {report.display_path(out_dir)}")
    blocks, claims = claims_blocks(stores, out_dir, regenerate)
    out_dir.mkdir(parents=True, exist_ok=True)
    document.clear_figures(out_dir)
    document.write_document(blocks, out_dir, "regbench: the tutorial's claims, tested")
    data = {"sources": [report.display_path(s) for s in sources],
            "strengths": {label: [
                {"number": c.number, "short": c.short, "text": c.text, "verdict": c.verdict,
                 "summary": c.summary(),
                 "parts": [{"text": p.text, "verdict": p.level, "evidence": p.describe()}
                           for p in c.parts]} for c in found]
                for label, found in claims.items()}}
    (out_dir / "claims.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return claims
