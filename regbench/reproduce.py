"""Published comparisons, reproduced: `regbench reproduce NAME`.

A reproduction is an entry of `REPRODUCTIONS`: the study files it trains (under
`ablations/published/`), the published numbers it is compared with (from the paper, see
`shared/reference/published.md`), the paper's budget, and a function that turns the stored
rows into report blocks. Every study of a reproduction trains into one store,
`reports/published/NAME/results.jsonl`, and the report is written beside it; regenerating a
report (`--report-only`) trains nothing.

Selection never looks at the test set: Table 9's coefficients are chosen by mean validation
accuracy on a tuning seed that is not one of the final seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from regbench import stats, store
from regbench.document import (
    Code,
    Heading,
    Para,
    Table,
    clear_figures,
    draw,
    render_markdown,
    write_document,
)
from regbench.errors import RegbenchError
from regbench.report import load_results
from regbench.study import Cell, load_study

STUDY_DIR = Path("ablations/published")
REPORT_DIR = Path("reports/published")
PROBE_SUBSET = 10_000  # images in a probe cell, which times a study too large for this machine


@dataclass(frozen=True)
class Probe:
    """One short cell of a study that is not trained here, to time it: `epochs` epochs of
    the first arm at seed 0 on `PROBE_SUBSET` images; the last epoch (no tracing) is timed."""
    study: str
    epochs: int = 2


@dataclass(frozen=True)
class Reproduction:
    name: str
    title: str
    paper: str
    studies: tuple[str, ...]                 # trained by `regbench reproduce NAME`
    not_run: tuple[str, ...] = ()            # shipped, trained only with a GPU (or by hand)
    probes: tuple[Probe, ...] = ()
    paper_budget: tuple[tuple[str, str], ...] = ()
    final_seeds: tuple[int, ...] = ()        # Table 9: the chosen grid points at these seeds
    rows: tuple[dict, ...] = ()              # published rows (see each report function)
    stretch: int = 0                         # Table 9: also train `stretch_methods` with the
    stretch_methods: tuple[str, ...] = ()    # schedule stretched this many times (a budget check)
    variant: str = ""
    report: str = ""                         # name of the report function below
    notes: tuple[str, ...] = ()


SRIVASTAVA = ("Srivastava, Hinton, Krizhevsky, Sutskever, Salakhutdinov (2014), *Dropout: A "
              "Simple Way to Prevent Neural Networks from Overfitting*, JMLR 15(56):1929-1958, "
              "[jmlr.org/papers/v15/srivastava14a](https://jmlr.org/papers/v15/srivastava14a.html)")
ZHANG = ("Zhang, Bengio, Hardt, Recht, Vinyals (2017), *Understanding deep learning requires "
         "rethinking generalization*, ICLR 2017, [arXiv:1611.03530]"
         "(https://arxiv.org/abs/1611.03530)")
IOFFE = ("Ioffe & Szegedy (2015), *Batch Normalization: Accelerating Deep Network Training by "
         "Reducing Internal Covariate Shift*, ICML 2015, [arXiv:1502.03167]"
         "(https://arxiv.org/abs/1502.03167)")

# Table 9 rows: published test error (%) and the tuning-grid arms of each row.
TABLE9_ROWS = (
    {"method": "L2", "error": 1.62, "grid": ("l2_1e-5", "l2_1e-4")},
    {"method": "L2 + L1 applied towards the end of training", "error": 1.60,
     "grid": ("l2_1e-5+l1_late_1e-5", "l2_1e-5+l1_late_1e-4")},
    {"method": "L2 + KL-sparsity", "error": 1.55, "grid": ("l2_1e-5+kl_1e-4", "l2_1e-5+kl_1e-3")},
    {"method": "Max-norm", "error": 1.35, "grid": ("max_norm_2", "max_norm_4")},
    {"method": "Dropout + L2", "error": 1.25, "grid": ("dropout+l2_1e-5", "dropout+l2_1e-4")},
    {"method": "Dropout + Max-norm", "error": 1.05,
     "grid": ("dropout+max_norm_2", "dropout+max_norm_4")},
)
TABLE9_BUDGET = (
    ("network", "784-1024-1024-2048-10, ReLU"),
    ("updates", "1,000,000 (batch size not given)"),
    ("validation", "10,000 training images held out"),
    ("optimizer", "SGD, momentum to a final 0.95; learning rate not given"),
    ("runs per row", "not given"),
)
FIG10_BUDGET = (("network", "784-1024-1024-2048-10, ReLU"),
                ("training-set sizes", "100, 500, 1K, 5K, 10K, 50K"),
                ("dropout", "p = 0.5 hidden, 0.8 input (kept)"),
                ("updates", "not given"), ("runs", "not given"))
# Zhang et al. Table 1 rows: (model, random crop, weight decay, train acc %, test acc %).
ZHANG_ROWS = (
    {"study": "zhang2017_table1_mlp3x512", "model": "MLP 3x512", "arm": "weight_decay",
     "crop": False, "wd": True, "train": 100.0, "test": 53.35},
    {"study": "zhang2017_table1_mlp3x512", "model": "MLP 3x512", "arm": "none",
     "crop": False, "wd": False, "train": 100.0, "test": 52.39},
    {"study": "zhang2017_table1_mlp1x512", "model": "MLP 1x512", "arm": "weight_decay",
     "crop": False, "wd": True, "train": 99.80, "test": 50.39},
    {"study": "zhang2017_table1_mlp1x512", "model": "MLP 1x512", "arm": "none",
     "crop": False, "wd": False, "train": 100.0, "test": 50.51},
    {"study": "zhang2017_table1_alexnet", "model": "AlexNet (small)",
     "arm": "random_crop+weight_decay", "crop": True, "wd": True, "train": 99.90, "test": 81.22},
    {"study": "zhang2017_table1_alexnet", "model": "AlexNet (small)", "arm": "random_crop",
     "crop": True, "wd": False, "train": 99.82, "test": 79.66},
    {"study": "zhang2017_table1_alexnet", "model": "AlexNet (small)", "arm": "weight_decay",
     "crop": False, "wd": True, "train": 100.0, "test": 77.36},
    {"study": "zhang2017_table1_alexnet", "model": "AlexNet (small)", "arm": "none",
     "crop": False, "wd": False, "train": 100.0, "test": 76.07},
)

REPRODUCTIONS: dict[str, Reproduction] = {r.name: r for r in (
    Reproduction(
        "srivastava2014_table9", "Srivastava et al. (2014), Table 9: regularizers on MNIST",
        SRIVASTAVA, studies=(), not_run=("srivastava2014_table9_tuning",),
        probes=(Probe("srivastava2014_table9_tuning"),), paper_budget=TABLE9_BUDGET,
        final_seeds=(0, 1, 2), rows=TABLE9_ROWS, report="table9",
        notes=("The full network at the paper's budget is far beyond a 2-core CPU; "
               "`srivastava2014_table9_narrow` is the variant trained here.",)),
    Reproduction(
        "srivastava2014_table9_narrow",
        "Srivastava et al. (2014), Table 9: regularizers on MNIST (narrow CPU variant)",
        SRIVASTAVA, studies=("srivastava2014_table9_narrow_tuning",),
        paper_budget=TABLE9_BUDGET, final_seeds=(0, 1, 2), rows=TABLE9_ROWS,
        stretch=3, stretch_methods=("Max-norm", "Dropout + Max-norm"),
        variant="narrow: 784-256-256-512-10 and 5,400 updates", report="table9"),
    Reproduction(
        "srivastava2014_fig10", "Srivastava et al. (2014), Figure 10: dropout and "
        "training-set size", SRIVASTAVA, studies=(), not_run=("srivastava2014_fig10",),
        probes=(Probe("srivastava2014_fig10"),), paper_budget=FIG10_BUDGET, report="fig10",
        notes=("The full network is not trained on this 2-core CPU; "
               "`srivastava2014_fig10_narrow` is the variant trained here.",)),
    Reproduction(
        "srivastava2014_fig10_narrow",
        "Srivastava et al. (2014), Figure 10: dropout and training-set size (narrow CPU variant)",
        SRIVASTAVA, studies=("srivastava2014_fig10_narrow",),
        paper_budget=FIG10_BUDGET,
        variant="narrow: 784-256-256-512-10, 100 to 3,000 updates per cell", report="fig10"),
    Reproduction(
        "zhang2017_table1", "Zhang et al. (2017), Table 1: MLPs and the small AlexNet on "
        "CIFAR-10", ZHANG, studies=("zhang2017_table1_mlp1x512", "zhang2017_table1_mlp3x512"),
        not_run=("zhang2017_table1_alexnet",), probes=(Probe("zhang2017_table1_alexnet"),),
        paper_budget=(("training set", "all 50,000 images"),
                      ("preprocessing", "centre crop 28x28, per-image standardization"),
                      ("optimizer", "SGD, momentum 0.9, learning rate 0.01 x 0.95 per epoch"),
                      ("epochs, batch size", "not given (trained to ~100% train accuracy)"),
                      ("weight-decay coefficient", "not given"), ("runs", "not given")),
        rows=ZHANG_ROWS, report="zhang"),
    Reproduction(
        "ioffe2015_bn_mnist", "Ioffe & Szegedy (2015), Figure 1: batch normalization on MNIST",
        IOFFE, studies=("ioffe2015_bn_mnist",),
        paper_budget=(("network", "784-100-100-100-10, sigmoid"),
                      ("steps", "50,000 of 60 examples"), ("input", "28x28 binary image"),
                      ("optimizer, learning rate, init scale", "not given"),
                      ("runs", "not given (one curve per arm)")),
        report="ioffe"),
)}


# --- running ---------------------------------------------------------------------------------

def get(name: str) -> Reproduction:
    if name not in REPRODUCTIONS:
        raise RegbenchError(f"reproduce: unknown reproduction `{name}`. "
                            f"Valid names: {', '.join(REPRODUCTIONS)}")
    return REPRODUCTIONS[name]


def study_path(study: str) -> Path:
    return STUDY_DIR / f"{study}.toml"


def store_path(name: str) -> Path:
    return REPORT_DIR / name / "results.jsonl"


def gpu_visible() -> bool:
    """Whether the Keras backend sees a GPU (the studies in `not_run` need one)."""
    import keras

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


def probe_cell(probe: Probe) -> Cell:
    study = load_study(study_path(probe.study))
    cell = study.cells()[0]
    training = replace(cell.training, epochs=probe.epochs, train_subset=PROBE_SUBSET)
    return replace(cell, study=f"{probe.study}_probe", training=training, seed=0)


def chosen_arms(rows: pd.DataFrame, grid_rows) -> dict[str, str]:
    """Method -> the grid arm with the highest mean validation accuracy (ties: first listed).

    Only validation accuracy enters: the test set plays no part in the choice.
    """
    ok = rows[rows["status"] == "ok"]
    out = {}
    for row in grid_rows:
        scores = [ok.loc[ok["arm"] == arm, "val_acc"].mean() for arm in row["grid"]]
        if all(math.isnan(s) for s in scores):
            continue
        out[row["method"]] = row["grid"][int(np.nanargmax(scores))]
    return out


def final_cells(repro: Reproduction, rows: pd.DataFrame) -> list[Cell]:
    """Table 9: each row's chosen grid point at the final seeds."""
    cells = []
    for study_name in repro.studies + repro.not_run:
        study = load_study(study_path(study_name))
        chosen = set(chosen_arms(rows[rows["study"] == study.name], repro.rows).values())
        final = study.name.removesuffix("_tuning")
        for cell in study.cells():
            if cell.arm.label in chosen and cell.seed == study.seeds[0]:
                cells += [replace(cell, study=final, seed=s) for s in repro.final_seeds]
    return cells


def stretched(training, factor: int):
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
    chosen = chosen_arms(tuning, repro.rows)
    labels = {chosen[m] for m in repro.stretch_methods if m in chosen}
    return [replace(c, study=f"{c.study}_x{repro.stretch}",
                    training=stretched(c.training, repro.stretch))
            for c in finals if c.arm.label in labels]


def plan(repro: Reproduction, gpu: bool) -> list[tuple[str, list[Cell]]]:
    """(what, cells) in training order, before any Table 9 final cells."""
    steps = []
    for name in repro.studies + (repro.not_run if gpu else ()):
        steps.append((name, load_study(study_path(name)).cells()))
    if not gpu:
        steps += [(f"{p.study} (timing probe)", [probe_cell(p)]) for p in repro.probes]
    return steps


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


def write(name: str) -> Path:
    """The report of `name` from its stored rows; trains nothing."""
    repro = get(name)
    rows = stored_rows(store_path(name))
    out = store_path(name).parent
    blocks = REPORTS[repro.report](repro, rows)
    findings = out / "FINDINGS.md"
    if findings.is_file():
        blocks += [Heading("Findings (written by hand from the tables above)", 2),
                   *(Para(part.strip()) for part in findings.read_text().split("\n\n")
                     if part.strip())]
    blocks += reproducibility(repro, rows)
    out.mkdir(parents=True, exist_ok=True)
    clear_figures(out)
    write_document(blocks, out, f"regbench reproduction: {repro.name}")
    write_index()
    return out


def stored_rows(path: Path) -> pd.DataFrame:
    """The newest row per cell of a store; empty when there is none yet."""
    return load_results(path) if store.read_rows(path) else pd.DataFrame()


def write_index() -> Path:
    """reports/published/README.md: every reproduction, its report and its stored cells."""
    lines = []
    for name, repro in REPRODUCTIONS.items():
        path = store_path(name)
        cells = len(stored_rows(path))
        link = f"[{name}]({name}/README.md)" if (path.parent / "README.md").is_file() else name
        lines.append((link, repro.title, str(cells)))
    blocks = [Heading("Published comparisons, reproduced", 1),
              Para("Each report puts the paper's numbers beside regbench's, with the budgets of "
                   "both; `regbench reproduce NAME` trains what is missing and rewrites it, "
                   "`regbench reproduce --all --report-only` rewrites them all."),
              Table(("reproduction", "what", "stored cells"), tuple(lines))]
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    index = REPORT_DIR / "README.md"
    index.write_text(render_markdown(blocks))
    return index


# --- shared report pieces --------------------------------------------------------------------

def pct_interval(values) -> dict:
    """stats.describe of a fraction, in percent."""
    return stats.describe(np.asarray(values, dtype=float) * 100)


def fmt_ci(d: dict, digits: int = 2) -> str:
    """`mean ± half-width` of a 95% t-interval, with n; `not yet run` without values."""
    if d["n"] == 0:
        return "not yet run"
    if d["n"] == 1:
        return f"{d['mean']:.{digits}f} (n=1)"
    half = (d["ci_high"] - d["ci_low"]) / 2
    return f"{d['mean']:.{digits}f} ± {half:.{digits}f} (n={d['n']})"


def paired(rows: pd.DataFrame, a: str, b: str, metric: str) -> np.ndarray:
    """metric(a) − metric(b) per seed, on seeds where both arms are `ok`."""
    ok = rows[rows["status"] == "ok"]
    wide = ok.pivot_table(index="seed", columns="arm", values=metric, aggfunc="first")
    if a not in wide or b not in wide:
        return np.array([])
    return (wide[a] - wide[b]).dropna().to_numpy(dtype=float)


def direction_verdict(d: dict, expected_sign: int) -> str:
    """Whether a paired difference's 95% CI shows the published direction."""
    if d["n"] < 2:
        return "not yet run" if d["n"] == 0 else "too few seeds"
    if d["ci_low"] > 0 or d["ci_high"] < 0:
        sign = 1 if d["ci_low"] > 0 else -1
        return "reproduced" if sign == expected_sign else "reversed"
    return "not resolved (CI includes 0)"


def kendall(published, reproduced) -> str:
    """Kendall's tau between two orderings of the same rows, as a sentence part."""
    from scipy.stats import kendalltau

    pairs = [(p, r) for p, r in zip(published, reproduced) if not math.isnan(r)]
    if len(pairs) < 2:
        return "Kendall's tau: – (fewer than two rows reproduced)"
    tau, p = kendalltau(*zip(*pairs))
    return f"Kendall's tau = {tau:+.2f} over {len(pairs)} rows (p = {p:.3f})"


def budget_table(repro: Reproduction, here: list[tuple[str, str]]) -> list:
    blocks = [Heading("Budget: the paper's and this reproduction's", 2)]
    blocks.append(Table(("setting", "paper"), repro.paper_budget))
    blocks.append(Table(("setting", "here"), tuple(here)))
    return blocks


def header(repro: Reproduction, rows: pd.DataFrame) -> list:
    ran = len(rows[rows["status"] == "ok"]) if len(rows) else 0
    blocks = [Heading(f"Reproduction: {repro.title}", 1),
              Para(f"Paper: {repro.paper}."),
              Para(f"{ran} trained cells with status `ok` in `{store_path(repro.name)}`. "
                   f"Generated by `regbench reproduce {repro.name} --report-only`; edit "
                   "nothing here by hand.")]
    if repro.variant:
        blocks.append(Para(f"**Reduced variant** ({repro.variant}). The numbers below come "
                           "from this budget, not the paper's; compare orderings and effect "
                           "sizes, not absolute values."))
    blocks += [Para(n) for n in repro.notes]
    return blocks


def probe_blocks(repro: Reproduction, rows: pd.DataFrame) -> list:
    """The CPU time a study that is not run here would take, from its probe cell."""
    out = []
    for probe in repro.probes:
        study = load_study(study_path(probe.study))
        part = rows[(rows["study"] == f"{probe.study}_probe")
                    & (rows["train_subset"] == PROBE_SUBSET)] if len(rows) else rows
        if part.empty or "epoch_s" not in part:
            out.append(Para(f"`{probe.study}`: not yet run; no timing probe stored."))
            continue
        probe_row = part.iloc[-1]
        per_image = float(probe_row["history"]["epoch_s"][-1]) / PROBE_SUBSET
        cells = study.cells()
        total = sum(per_image * (c.training.train_subset or _fit_size(c)) * c.training.epochs
                    for c in cells)
        finals = len(repro.rows) * len(repro.final_seeds)  # Table 9: the chosen points too
        if finals:
            total *= 1 + finals / len(cells)
        what = f"{len(cells)} cells" + (f" and {finals} final cells" if finals else "")
        out.append(Para(
            f"`{probe.study}`: **not yet run here**: `regbench reproduce {repro.name}` trains "
            "it only where the Keras backend sees a GPU. A probe cell "
            f"({probe.epochs} epochs of `{cells[0].arm.label}` on {PROBE_SUBSET} images, seed "
            f"0) took {per_image * 1e3:.2f} ms per training image in its last epoch on this "
            f"machine ({probe_row.get('device', '?')}, {probe_row.get('cpu_count', '?')} "
            f"cores), so its {what} would need about {total / 3600:.1f} h of training here "
            "(an upper estimate at this rate: the probe's epoch includes a pass over the "
            f"validation images, {probe_row.get('n_val', '?')} of them)."))
    return out


def _fit_size(cell: Cell) -> int:
    from regbench import data

    return round(data.DATASETS[cell.dataset].train_size * (1 - cell.training.validation_fraction))


def reproducibility(repro: Reproduction, rows: pd.DataFrame) -> list:
    blocks = [Heading("Reproducibility", 2),
              Para("Train what is missing and rewrite this report (stored cells are skipped):"),
              Code(f"regbench reproduce {repro.name}"),
              Para("Rewrite this report from the stored results only:"),
              Code(f"regbench reproduce {repro.name} --report-only"),
              Para("Study files: " + ", ".join(f"`{study_path(s)}`"
                                              for s in repro.studies + repro.not_run) + ".")]
    if rows.empty:
        return blocks
    compute = []
    for study, part in rows.groupby("study", sort=False):
        fit = part["fit_s"].dropna().astype(float) if "fit_s" in part else pd.Series([])
        compute.append((str(study), str(len(part)), f"{fit.sum():.0f}",
                        f"{fit.sum() / 60:.1f}"))
    blocks += [Heading("Compute", 3),
               Para("Training time per study (sum of `fit_s` over its cells; evaluation and "
                    "start-up not counted), one cell at a time:"),
               Table(("study", "cells", "fit s", "fit min"), tuple(compute))]
    fields = [c for c in ("regbench_version", "git_commit", "keras_version", "backend",
                          "backend_version", "device", "cpu_count") if c in rows]
    blocks.append(Table(("field", "value"), tuple(
        (c, ", ".join(sorted({str(v) for v in rows[c].dropna()}))) for c in fields)))
    return blocks


def _figure_errorbars(ax, labels, published, reproduced: list[dict], ylabel: str):
    y = np.arange(len(labels))
    means = [d["mean"] for d in reproduced]
    low = [d["mean"] - d["ci_low"] if d["n"] > 1 else 0 for d in reproduced]
    high = [d["ci_high"] - d["mean"] if d["n"] > 1 else 0 for d in reproduced]
    ax.errorbar(means, y, xerr=[low, high], fmt="o", color="#1f77b4", capsize=4,
                label="reproduced (mean, 95% CI)")
    ax.plot(published, y, "D", color="#d62728", label="published")
    ax.set_yticks(y, labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel(ylabel)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


# --- Srivastava et al. (2014), Table 9 -------------------------------------------------------

def table9_blocks(repro: Reproduction, rows: pd.DataFrame) -> list:
    blocks = header(repro, rows)
    tuning_name = (repro.studies + repro.not_run)[0]
    tuning = load_study(study_path(tuning_name))
    final_name = tuning.name.removesuffix("_tuning")
    have = not rows.empty
    tune_rows = rows[rows["study"] == tuning.name] if have else rows
    final = rows[rows["study"] == final_name] if have else rows
    chosen = chosen_arms(tune_rows, repro.rows) if len(tune_rows) else {}

    table, errors, published = [], [], []
    for row in repro.rows:
        arm = chosen.get(row["method"])
        part = final[(final["arm"] == arm) & (final["status"] == "ok")] if arm else final[:0]
        d = pct_interval(1 - part["test_acc"].astype(float)) if len(part) else \
            {"n": 0, "mean": math.nan}
        errors.append(d)
        published.append(row["error"])
        diff = "–" if d["n"] == 0 else f"{d['mean'] - row['error']:+.2f}"
        table.append((row["method"], f"{row['error']:.2f}", fmt_ci(d), diff,
                      _mean_pct(part, arm, "train_acc", error=True) if arm else "–",
                      _late_val_gain(part), f"`{arm}`" if arm else "not yet run"))
    t = tuning.training
    updates = math.ceil(round(60000 * (1 - t.validation_fraction)) / t.batch_size) * t.epochs
    blocks += budget_table(repro, [
        ("network", "784-" + "-".join(map(str, tuning.model.hidden)) + "-10, "
         + tuning.model.activation),
        ("updates", f"{updates:,} ({t.epochs} epochs of batch {t.batch_size})"),
        ("validation", f"{t.validation_fraction:.0%} of the training set held out per seed"),
        ("optimizer", f"SGD, learning rate {t.learning_rate} x {t.lr_decay} per epoch, "
         f"momentum {t.momentum_start} to {t.momentum} over {t.momentum_epochs} epochs"),
        ("runs per row", f"tuning: seed {', '.join(map(str, tuning.seeds))}; final: seeds "
         f"{', '.join(map(str, repro.final_seeds))}"),
    ])
    blocks += [Heading("Published and reproduced test error (%)", 2),
               Para("Reproduced: mean ± half-width of the 95% Student-t interval over the final "
                    "seeds, each row at the grid point chosen on the validation split. "
                    "Difference = reproduced − published (percentage points). Train error: "
                    "the training set re-evaluated in inference mode after training (mean). "
                    f"Last-epochs gain: validation accuracy at the last epoch minus "
                    f"{LATE_EPOCHS} epochs earlier (mean, pp): a row still gaining when the "
                    "budget ends is not converged."),
               Table(("method", "published", "reproduced", "difference", "train error",
                      "last-epochs gain", "chosen grid point"), tuple(table)),
               Para("Ranking agreement (lower error first): "
                    + kendall(published, [d["mean"] for d in errors]) + "; over the rows "
                    "without dropout: "
                    + kendall(*zip(*[(p, d["mean"]) for p, d, r in
                                     zip(published, errors, repro.rows)
                                     if not r["method"].startswith("Dropout")])) + ".")]
    blocks += table9_claims(repro, final, chosen)
    blocks += stretch_blocks(repro, rows, final_name, chosen) if have else []
    blocks += tuning_blocks(repro, tune_rows, chosen)
    blocks += probe_blocks(repro, rows) if have else []
    if any(d["n"] for d in errors):
        labels = [r["method"] for r in repro.rows]
        blocks += [Heading("Figure", 2), draw(
            "test_error", "Test error per method: published (diamond) and reproduced (mean "
            "and 95% CI over seeds).",
            lambda fig, axes: _figure_errorbars(axes[0, 0], labels, published, errors,
                                                "test error (%)"), size=(10, 3.8))]
    return blocks


LATE_EPOCHS = 3  # the window of `_late_val_gain`


def _late_val_gain(rows: pd.DataFrame) -> str:
    """Validation accuracy gained over the last LATE_EPOCHS epochs, mean over rows, in pp."""
    gains = [h["val_acc"][-1] - h["val_acc"][-1 - LATE_EPOCHS] for h in rows.get("history", [])
             if isinstance(h, dict) and len(h.get("val_acc", [])) > LATE_EPOCHS]
    return f"{100 * float(np.mean(gains)):+.2f}" if gains else "–"


def table9_claims(repro: Reproduction, final: pd.DataFrame, chosen: dict) -> list:
    """Each row against L2, and dropout + max-norm against its neighbours: the paper's
    direction, and whether the paired 95% CI shows it."""
    published = {r["method"]: r["error"] for r in repro.rows}
    pairs = [(m, "L2") for m in published if m != "L2"]
    pairs += [("Dropout + Max-norm", "Dropout + L2"), ("Dropout + Max-norm", "Max-norm")]
    pairs = [(a, b) for a, b in pairs if a in published and b in published]
    lines = []
    for a, b in pairs:
        paper = published[a] - published[b]
        if a in chosen and b in chosen and len(final):
            d = stats.describe(-paired(final, chosen[a], chosen[b], "test_acc") * 100)
        else:
            d = {"n": 0}
        shown = "–" if d["n"] < 2 else (f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, "
                                         f"{d['ci_high']:+.2f}]")
        lines.append((f"{a} has lower error than {b}", f"{paper:+.2f}", shown,
                      direction_verdict(d, -1 if paper < 0 else 1)))
    return [Heading("Claims", 2),
            Para("Error difference (percentage points), first method − second, paired by seed; "
                 "reproduced as mean [95% t-interval]. *Reproduced*: the interval excludes 0 "
                 "on the paper's side; *reversed*: on the other side; *not resolved*: it "
                 "includes 0 (with 3 seeds only large effects resolve)."),
            Table(("claim", "paper", "reproduced", "verdict"), tuple(lines))]


def stretch_blocks(repro: Reproduction, rows: pd.DataFrame, final_name: str,
                   chosen: dict) -> list:
    """The budget check: the stretch methods at the final budget and stretched."""
    if not repro.stretch:
        return []
    longer = rows[rows["study"] == f"{final_name}_x{repro.stretch}"]
    final = rows[rows["study"] == final_name]
    lines, diffs = [], []
    for method in repro.stretch_methods:
        arm = chosen.get(method)
        cells = [method]
        for part in (final, longer):
            part = part[(part["arm"] == arm) & (part["status"] == "ok")]
            cells += [fmt_ci(pct_interval(1 - part["test_acc"])) if len(part) else "not yet run",
                      _mean_pct(part, arm, "train_acc", error=True)]
        lines.append(tuple(cells))
    if len(repro.stretch_methods) == 2:
        a, b = (chosen.get(m) for m in reversed(repro.stretch_methods))
        for label, part in (("1x", final), (f"{repro.stretch}x", longer)):
            d = stats.describe(-paired(part, a, b, "test_acc") * 100) if len(part) else \
                {"n": 0}
            diffs.append(f"{label}: {_interval(d)}")
    epochs = next((int(e) for e in longer.get("epochs", []) if e == e), None)
    return [Heading(f"Budget check: the schedule stretched {repro.stretch}x", 2),
            Para(f"The chosen grid points of {' and '.join(repro.stretch_methods)} trained again "
                 f"at the final seeds over {repro.stretch} times the epochs"
                 + (f" ({epochs})" if epochs else "")
                 + ", the learning rate decaying to the same final value and the momentum "
                 "ramp stretched alike. Test error % (mean ± 95% CI half-width) and train error "
                 "% (mean)."),
            Table(("method", "test error, 1x", "train error, 1x",
                   f"test error, {repro.stretch}x", f"train error, {repro.stretch}x"),
                  tuple(lines))] + ([Para(
                f"Error difference {repro.stretch_methods[1]} − {repro.stretch_methods[0]}, "
                "paired by seed (pp, mean [95% t-interval]): " + "; ".join(diffs) + ".")]
                if diffs else [])


def coefficients(rows: pd.DataFrame, arm: str) -> str:
    """The technique settings of an arm as stored in its rows' specs, e.g. `l2 factor=1e-05`."""
    specs = rows.loc[rows["arm"] == arm, "spec"] if len(rows) and "spec" in rows else []
    for spec in specs:
        return "; ".join(f"{kind} " + " ".join(f"{k}={v:g}" if isinstance(v, float) else
                                               f"{k}={v}" for k, v in params.items()
                                               if k != "layers")
                         for kind, params in spec["techniques"].items())
    return "–"


def tuning_blocks(repro: Reproduction, tune_rows: pd.DataFrame, chosen: dict) -> list:
    lines = []
    ok = tune_rows[tune_rows["status"] == "ok"] if len(tune_rows) else tune_rows
    for row in repro.rows:
        for arm in row["grid"]:
            part = ok[ok["arm"] == arm] if len(ok) else ok
            val = part["val_acc"].astype(float).mean() * 100 if len(part) else math.nan
            lines.append((row["method"], f"`{arm}`", coefficients(tune_rows, arm),
                          "–" if math.isnan(val) else f"{val:.2f}",
                          "chosen" if chosen.get(row["method"]) == arm else ""))
    return [Heading("Tuning grid (validation split only)", 2),
            Para("Each grid point trained once at the tuning seed; the point with the higher "
                 "validation accuracy is each row's choice. Coefficients are in the study "
                 "file's `[techniques]` tables (Keras penalties: `l2` factor x sum w^2, "
                 "`l1_late` factor x sum |w| from half-way, `kl_sparsity` weight x sum_j "
                 "KL(0.1 || mean activation of unit j), `max_norm` c)."),
            Table(("method", "grid point", "settings", "validation accuracy %", ""),
                  tuple(lines))]


# --- Srivastava et al. (2014), Figure 10 -----------------------------------------------------

def fig10_blocks(repro: Reproduction, rows: pd.DataFrame) -> list:
    blocks, everything = header(repro, rows), rows
    study = load_study(study_path((repro.studies + repro.not_run)[0]))
    rows = rows[rows["study"] == study.name] if len(rows) else rows
    sizes = [t.train_subset for t in study.trainings()]
    lines, gains, curves = [], {}, {"none": [], "dropout": []}
    for training in study.trainings():
        n = training.train_subset
        part = rows[rows["train_subset"] == n] if len(rows) else rows
        per_arm = {arm: pct_interval(1 - part.loc[(part["arm"] == arm) & (part["status"] == "ok"),
                                                  "test_acc"].astype(float))
                   if len(part) else {"n": 0, "mean": math.nan}
                   for arm in ("none", "dropout")}
        for arm in per_arm:
            curves[arm].append(per_arm[arm])
        gain = stats.describe(paired(part, "dropout", "none", "test_acc") * 100) if len(part) \
            else {"n": 0}
        gains[n] = gain
        updates = math.ceil(n / training.batch_size) * training.epochs
        train_error = [_mean_pct(part, arm, "train_acc", error=True) for arm in per_arm]
        lines.append((f"{n:,}", f"{updates:,}", fmt_ci(per_arm["none"]),
                      fmt_ci(per_arm["dropout"]), _interval(gain),
                      " / ".join(train_error)))
    blocks += budget_table(repro, [
        ("network", "784-" + "-".join(map(str, study.model.hidden)) + "-10, relu"),
        ("training-set sizes", ", ".join(f"{s:,}" for s in sizes)),
        ("updates", "see the table (batch 100)"),
        ("optimizer", f"SGD, learning rate {study.training.learning_rate}, momentum "
                      f"{study.training.momentum}, the same for both arms"),
        ("runs", f"seeds {', '.join(map(str, study.seeds))} (a different subset per seed)")])
    blocks += [Heading("Test error (%) by training-set size", 2),
               Para("The paper gives Figure 10 as a plot, without a table of values: its "
                    "published content is the shape of the gain, tested below as claims. "
                    "Reproduced: mean ± half-width of the 95% t-interval; gain = error without "
                    "dropout − error with dropout, paired by seed, mean [95% t-interval]."),
               Table(("training images", "updates", "no dropout", "dropout",
                      "gain from dropout", "train error: none / dropout"), tuple(lines)),
               Para("Train error: mean over seeds, the training subset re-evaluated in "
                    "inference mode after training; a dropout net whose train error stays "
                    "near its test error has not fitted its training set in this budget."),
               Para("Ranking agreement: not applicable, the paper publishes no numbers to "
                    "rank.")]
    blocks += fig10_claims(gains)
    blocks += probe_blocks(repro, everything) if len(everything) else []
    if any(d["n"] for d in curves["none"]):
        blocks += [Heading("Figure", 2), draw(
            "error_vs_size", "Test error against training-set size, mean and 95% CI over "
            "seeds (the paper's Figure 10 has the same axes).",
            lambda fig, axes: _plot_fig10(axes[0, 0], sizes, curves), size=(7, 4.5))]
    return blocks


def _mean_pct(rows: pd.DataFrame, arm: str, metric: str, error: bool = False) -> str:
    values = rows.loc[(rows["arm"] == arm) & (rows["status"] == "ok"), metric] if len(rows) \
        else []
    if not len(values):
        return "–"
    mean = float(np.mean(values)) * 100
    return f"{100 - mean if error else mean:.2f}"


def fig10_claims(gains: dict) -> list:
    sizes = sorted(gains)
    small = [s for s in sizes if s <= 500]
    lines = []
    for s in small:
        d = gains[s]
        verdict = ("not yet run" if d["n"] < 2 else
                   "reproduced (CI includes 0 or lies below)" if d["ci_low"] <= 0 else
                   "not reproduced (dropout helps: CI above 0)")
        lines.append((f"no improvement from dropout at {s:,} images",
                      _interval(d), verdict))
    means = {s: gains[s]["mean"] for s in sizes if gains[s]["n"] >= 2}
    if len(means) == len(sizes):
        peak = max(means, key=means.get)
        interior = sizes[0] < peak < sizes[-1] and peak not in small
        verdict = ("reproduced" if interior and means[peak] > means[sizes[-1]] else
                   "not reproduced")
        text = (f"largest mean gain at {peak:,} images ({means[peak]:+.2f} pp); at "
                f"{sizes[-1]:,}: {means[sizes[-1]]:+.2f} pp")
    else:
        verdict, text = "not yet run", "–"
    lines.append(("the gain grows with data up to a sweet spot, then shrinks (shape only)",
                  text, verdict))
    for s in sizes:
        if s not in small:
            lines.append((f"dropout lowers the test error at {s:,} images (the paper's curves)",
                          _interval(gains[s]), direction_verdict(gains[s], 1)))
    return [Heading("Claims", 2),
            Para("Gain = error without dropout − error with dropout (percentage points), "
                 "paired by seed, mean [95% t-interval]."),
            Table(("claim", "reproduced", "verdict"), tuple(lines))]


def _interval(d: dict) -> str:
    if d["n"] < 2:
        return "–"
    return f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] pp"


def _plot_fig10(ax, sizes, curves):
    colors = {"none": "#4d4d4d", "dropout": "#d62728"}
    for arm, ds in curves.items():
        mean = np.array([d["mean"] for d in ds])
        low = np.array([d.get("ci_low", math.nan) for d in ds])
        high = np.array([d.get("ci_high", math.nan) for d in ds])
        ax.plot(sizes, mean, "o-", color=colors[arm], label=arm)
        ax.fill_between(sizes, low, high, color=colors[arm], alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel("training-set size (images)")
    ax.set_ylabel("test error (%)")
    ax.legend()


# --- Zhang et al. (2017), Table 1 ------------------------------------------------------------

def zhang_blocks(repro: Reproduction, rows: pd.DataFrame) -> list:
    blocks = header(repro, rows)
    lines, tests, published, labels, pub_test = [], [], [], [], []
    for row in repro.rows:
        part = rows[(rows["study"] == row["study"]) & (rows["arm"] == row["arm"])
                    & (rows["status"] == "ok")] if len(rows) else rows
        train = pct_interval(part["train_acc"]) if len(part) else {"n": 0, "mean": math.nan}
        test = pct_interval(part["test_acc"]) if len(part) else {"n": 0, "mean": math.nan}
        gap = pct_interval(part["gap_acc"]) if len(part) else {"n": 0}
        lines.append((row["model"], "yes" if row["crop"] else "no", "yes" if row["wd"] else "no",
                      f"{row['train']:.2f}", fmt_ci(train), f"{row['test']:.2f}", fmt_ci(test),
                      "–" if test["n"] == 0 else f"{test['mean'] - row['test']:+.2f}",
                      f"{row['train'] - row['test']:.2f}", fmt_ci(gap)))
        if row["study"] in repro.studies:
            tests.append(test["mean"])
            published.append(row["test"])
            labels.append(f"{row['model']}, wd {'yes' if row['wd'] else 'no'}")
            pub_test.append(test)
    mlp = load_study(study_path(repro.studies[0]))
    t = mlp.training
    blocks += budget_table(repro, [
        ("training set", f"a random {t.train_subset:,}-image subset per seed (MLPs)"),
        ("preprocessing", "centre crop 28x28, per-image standardization (model layers)"),
        ("optimizer", f"SGD, momentum {t.momentum}, learning rate {t.learning_rate} x "
                      f"{t.lr_decay} per epoch"),
        ("epochs, batch size", f"{t.epochs}, {t.batch_size}"),
        ("weight decay", "factor 5e-4: penalty factor x sum w^2 / 2 on every kernel"),
        ("runs", f"seeds {', '.join(map(str, mlp.seeds))}")])
    blocks += [Heading("Published and reproduced accuracy (%)", 2),
               Para("Reproduced: mean ± half-width of the 95% t-interval over seeds. Train "
                    "accuracy is re-evaluated in inference mode after training. Difference = "
                    "reproduced − published test accuracy; the MLPs see a tenth of the "
                    "paper's training set here, so their test accuracy is expected lower."),
               Table(("model", "random crop", "weight decay", "train (paper)", "train",
                      "test (paper)", "test", "test difference", "gap (paper)", "gap"),
                     tuple(lines)),
               Para("Ranking agreement over the MLP rows (higher test accuracy first): "
                    + kendall(published, tests) + ".")]
    blocks += zhang_claims(repro, rows)
    blocks += probe_blocks(repro, rows) if len(rows) else []
    if any(d["n"] for d in pub_test):
        blocks += [Heading("Figure", 2), draw(
            "test_accuracy", "MLP test accuracy: published (diamond, all 50,000 training "
            "images) and reproduced (mean and 95% CI, training subset).",
            lambda fig, axes: _figure_errorbars(axes[0, 0], labels, published, pub_test,
                                                "test accuracy (%)"), size=(10, 3.2))]
    return blocks


def zhang_claims(repro: Reproduction, rows: pd.DataFrame) -> list:
    lines = []
    for study in repro.studies:
        part = rows[(rows["study"] == study) & (rows["status"] == "ok")] if len(rows) else rows
        model = next(r["model"] for r in repro.rows if r["study"] == study)
        lowest = part["train_acc"].min() * 100 if len(part) else math.nan
        lines.append((f"{model} fits its training set (train accuracy ≈ 100%)",
                      "99.80-100.0", "–" if math.isnan(lowest) else f"lowest {lowest:.2f}",
                      "not yet run" if math.isnan(lowest) else
                      "reproduced" if lowest >= 99.0 else "not reproduced (< 99%)"))
        pub = {r["wd"]: r["test"] for r in repro.rows if r["study"] == study}
        effect = pub[True] - pub[False]
        d = stats.describe(paired(part, "weight_decay", "none", "test_acc") * 100) \
            if len(part) else {"n": 0}
        inside = d["n"] >= 2 and d["ci_low"] <= effect <= d["ci_high"]
        lines.append((f"{model}: weight decay's effect on test accuracy is the paper's",
                      f"{effect:+.2f}", _interval(d),
                      "not yet run" if d["n"] < 2 else
                      "consistent (published effect inside the CI)" if inside else
                      "inconsistent (published effect outside the CI)"))
        small = d["n"] >= 2 and -1.0 <= d["ci_low"] and d["ci_high"] <= 1.0
        large = d["n"] >= 2 and (d["ci_low"] > 1.0 or d["ci_high"] < -1.0)
        lines.append((f"{model}: weight decay moves test accuracy by at most 1 point (the "
                      "paper's reading: explicit regularization is not what makes it "
                      "generalize)", "within ±1", _interval(d),
                      "not yet run" if d["n"] < 2 else "reproduced (CI within ±1)" if small
                      else "not reproduced (CI beyond ±1)" if large
                      else "not resolved (CI crosses ±1)"))
    return [Heading("Claims", 2),
            Para("Effects are paired by seed (weight decay − none, percentage points), mean "
                 "[95% t-interval]."),
            Table(("claim", "paper", "reproduced", "verdict"), tuple(lines))]


# --- Ioffe & Szegedy (2015), Figure 1 --------------------------------------------------------

THRESHOLDS = (0.95, 0.97)


def steps_to(curve: dict, threshold: float) -> float:
    """The first recorded step with test accuracy >= threshold; NaN if never reached."""
    for step, acc in zip(curve["step"], curve["test_acc"]):
        if acc >= threshold:
            return float(step)
    return math.nan


def ioffe_blocks(repro: Reproduction, rows: pd.DataFrame) -> list:
    blocks = header(repro, rows)
    study = load_study(study_path(repro.studies[0]))
    t = study.training
    steps_per_epoch = math.ceil(round(60000 * (1 - t.validation_fraction)) / t.batch_size)
    blocks += budget_table(repro, [
        ("network", "784-100-100-100-10, sigmoid; batch norm before each sigmoid"),
        ("steps", f"{steps_per_epoch * t.epochs:,} of {t.batch_size} examples "
                  f"({t.epochs} epochs of {steps_per_epoch})"),
        ("input", "grey levels scaled to [0, 1] (not binarized)"),
        ("optimizer", f"plain SGD, learning rate {t.learning_rate} (chosen, not tuned); "
                      "Glorot-uniform initial weights"),
        ("runs", f"seeds {', '.join(map(str, study.seeds))}"),
        ("curve", f"validation and test accuracy every ~{t.curve_every} steps")])
    ok = rows[rows["status"] == "ok"] if len(rows) else rows
    lines, per_arm = [], {}
    for arm in ("none", "batchnorm"):
        part = ok[ok["arm"] == arm] if len(ok) else ok
        curves = [c for c in part.get("curve", pd.Series([], dtype=object))
                  if isinstance(c, dict)]
        per_arm[arm] = (part, curves)
        cells = [arm, fmt_ci(pct_interval(part["test_acc"])) if len(part) else "not yet run"]
        for threshold in THRESHOLDS:
            reached = [steps_to(c, threshold) for c in curves]
            d = stats.describe(reached)
            missed = sum(math.isnan(s) for s in reached)
            cells.append("–" if not reached else fmt_ci(d, 0)
                         + (f"; {missed} seed(s) never" if missed else ""))
        lines.append(tuple(cells))
    blocks += [Heading("Final accuracy and steps to 95% and 97% test accuracy", 2),
               Para("The paper reports Figure 1 only (no table). Steps are read off the "
                    "recorded curve (first point at or above the threshold), mean ± "
                    "half-width of the 95% t-interval over seeds."),
               Table(("arm", "final test accuracy %", "steps to 95%", "steps to 97%"),
                     tuple(lines)),
               Para("Ranking agreement: not applicable (two arms; the paper's order, batch "
                    "norm above none, is the claim below).")]
    blocks += ioffe_claims(rows, per_arm)
    if any(per_arm[a][1] for a in per_arm):
        blocks += [Heading("Figure", 2), draw(
            "accuracy_vs_steps", "Test accuracy against training steps, mean over seeds and "
            "the min-max band (the paper's Figure 1a).",
            lambda fig, axes: _plot_curves(axes[0, 0], per_arm), size=(7, 4.5))]
    return blocks


def ioffe_claims(rows: pd.DataFrame, per_arm: dict) -> list:
    lines = []
    final = stats.describe(paired(rows, "batchnorm", "none", "test_acc") * 100) \
        if len(rows) else {"n": 0}
    lines.append(("batch norm reaches a higher final test accuracy", _interval(final),
                  direction_verdict(final, 1)))
    for threshold in THRESHOLDS:
        steps = {}
        for arm, (part, _) in per_arm.items():
            steps[arm] = {s: steps_to(c, threshold) for s, c in
                          zip(part["seed"], part.get("curve", []))
                          if isinstance(c, dict)} if len(part) else {}
        common = sorted(set(steps["none"]) & set(steps["batchnorm"]))
        budget = max((c["step"][-1] for _, cs in per_arm.values() for c in cs), default=0)
        # a seed that never reaches the threshold counts as the whole budget: a lower bound
        d = stats.describe([_or(steps["batchnorm"][s], budget) - _or(steps["none"][s], budget)
                            for s in common])
        lines.append((f"batch norm reaches {threshold:.0%} test accuracy in fewer steps",
                      "–" if d["n"] < 2 else
                      f"{d['mean']:+.0f} [{d['ci_low']:+.0f}, {d['ci_high']:+.0f}] steps",
                      direction_verdict(d, -1)))
    return [Heading("Claims", 2),
            Para("Paired by seed, batch norm − none, mean [95% t-interval]; a seed that never "
                 "reaches a threshold counts as the whole run. *Reproduced*: the interval "
                 "excludes 0 on the paper's side."),
            Table(("claim", "reproduced", "verdict"), tuple(lines))]


def _or(value: float, default: float) -> float:
    return default if math.isnan(value) else value


def _plot_curves(ax, per_arm: dict):
    colors = {"none": "#4d4d4d", "batchnorm": "#9467bd"}
    for arm, (_, curves) in per_arm.items():
        if not curves:
            continue
        length = min(len(c["step"]) for c in curves)
        steps = np.asarray(curves[0]["step"][:length])
        acc = np.array([c["test_acc"][:length] for c in curves])
        ax.plot(steps, acc.mean(axis=0), color=colors[arm],
                label=f"{'with' if arm == 'batchnorm' else 'without'} BN (n={len(curves)})")
        ax.fill_between(steps, acc.min(axis=0), acc.max(axis=0), color=colors[arm], alpha=0.2,
                        linewidth=0)
    ax.set_ylim(0.7, 1.0)
    ax.set_xlabel("training steps")
    ax.set_ylabel("test accuracy")
    ax.legend(loc="lower right")


REPORTS = {"table9": table9_blocks, "fig10": fig10_blocks, "zhang": zhang_blocks,
           "ioffe": ioffe_blocks}


def listing() -> list[str]:
    """One line per reproduction: name, title, and whether results are stored."""
    out = []
    for name, repro in REPRODUCTIONS.items():
        stored = "results stored" if store_path(name).is_file() else "not run yet"
        out.append(f"{name:<30} {repro.title} ({stored})")
    return out
