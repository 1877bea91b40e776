"""The `bench-report` output: the report (README.md and report.html, through `document`), the
overhead plot, the fingerprint and a flat CSV, from the rows of `results.derive`.

The report is regenerated from the committed raw JSON, never edited, so everything in it comes
from those files and the grid in `cases`; matplotlib and seaborn are imported only to plot.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from regbench.bench.cases import BASELINE, BATCH_SIZES, PROBLEMS, TECHNIQUES
from regbench.bench.results import derive, load_runs
from regbench.document import (
    Bullets,
    Contents,
    Figure,
    Heading,
    Para,
    Table,
    clear_figures,
    render_markdown,
    write_document,
)
from regbench.errors import RegbenchError


def _ms(seconds: float) -> str:
    return "" if seconds is None or not math.isfinite(seconds) else f"{seconds * 1e3:.3g}"


def _ratio(row, n: bool = False) -> str:
    if not math.isfinite(row["ratio"]):
        return ""
    text = f"{row['ratio']:.2f} [{row['ratio_low']:.2f}, {row['ratio_high']:.2f}]"
    return text + (f" n={row['rounds']}" if n else "")


def _num(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:,.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"


def step_table(df) -> Table:
    """One row per (batch, technique) of one problem, device and backend."""
    header = ["batch", "technique", "median ms", "IQR ms", "rounds", "overhead vs none [95% CI]",
              "examples/s", "GFLOP/s", "of peak", "compile s"]
    order = {t: i for i, t in enumerate(TECHNIQUES)}
    df = df.assign(_t=df["technique"].map(order)).sort_values(["batch", "_t"])
    lines = [[str(int(r["batch"])), r["technique"], _ms(r["median"]), _ms(r["iqr"]),
              str(r["rounds"]), _ratio(r), _num(r["examples_per_s"]), _num(r["gflops"]),
              f"{r['roofline']:.1%}" if math.isfinite(r["roofline"]) else "",
              f"{r['compile_s']:.2f}"] for _, r in df.iterrows()]
    return _table(header, lines)


def headline_table(df) -> Table:
    """Overhead ratio [95% CI] per technique (rows) and problem/batch (columns);
    the `none` row is the null check (`none` against its own paired `none` model)."""
    steps = df[df["kind"] == "step"]
    columns = [(p, b) for p in PROBLEMS for b in BATCH_SIZES
               if not steps[(steps["problem"] == p) & (steps["batch"] == b)].empty]
    header = ["technique"] + [f"{p} b{b}" for p, b in columns]
    lines = []
    for technique in TECHNIQUES:
        line = [f"{technique} (null check)" if technique == BASELINE else technique]
        for p, b in columns:
            hit = steps[(steps["problem"] == p) & (steps["batch"] == b)
                        & (steps["technique"] == technique)]
            line.append(_ratio(hit.iloc[0], n=True) if not hit.empty else "")
        lines.append(line)
    return _table(header, lines)


def augmentation_table(df, device: str) -> Table:
    """What augmentation costs per batch where it runs, per problem and batch.

    `df`: rows of one backend; steps on `device`, the tf.data pipeline always on the host CPU.
    """
    header = ["problem", "batch", "in model: step(augmentation) - paired step(none), ms",
              "tf.data: augmented - plain batch, ms", "fed step, aug. in model, ms",
              "fed step, aug. in tf.data, ms", "tf.data / model [95% CI]"]

    def pick(kind, column, value, problem, batch):
        hit = df[(df["kind"] == kind) & (df["problem"] == problem) & (df["batch"] == batch)
                 & (df[column] == value) & ((df["device"] == device) | (kind == "pipeline"))]
        return hit.iloc[0] if not hit.empty else None

    def difference(a, b) -> str:
        if a is not None and isinstance(a.get("baseline_samples"), list):  # paired `none`
            return _ms(a["median"] - float(np.median(a["baseline_samples"])))
        return _ms(a["median"] - b["median"]) if a is not None and b is not None else ""

    lines = []
    for problem in PROBLEMS:
        for batch in BATCH_SIZES:
            aug, none = (pick("step", "technique", t, problem, batch)
                         for t in ("augmentation", BASELINE))
            piped, plain = (pick("pipeline", "where", w, problem, batch)
                            for w in ("augmented", "plain"))
            in_model, in_data = (pick("fed_step", "where", w, problem, batch)
                                 for w in ("model", "pipeline"))
            if all(r is None for r in (aug, piped, in_model)):
                continue
            lines.append([problem, str(batch), difference(aug, none), difference(piped, plain),
                          _ms(in_model["median"]) if in_model is not None else "",
                          _ms(in_data["median"]) if in_data is not None else "",
                          _ratio(in_data) if in_data is not None else ""])
    return _table(header, lines)


def _table(header, lines) -> Table:
    return Table(tuple(header), tuple(tuple(line) for line in lines))


def plot_overhead(df, ax=None):
    """Overhead ratio to `none` per technique (x), one colour per batch size, with 95% intervals
    (`none` itself: the null check).

    `df`: step rows of one problem, device and backend, as returned by `derive`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    techniques = list(TECHNIQUES)
    colours = dict(zip(BATCH_SIZES, sns.color_palette("colorblind", len(BATCH_SIZES))))
    width = 0.8 / len(BATCH_SIZES)
    for i, batch in enumerate(BATCH_SIZES):
        rows = df[df["batch"] == batch].set_index("technique").reindex(techniques)
        x = np.arange(len(techniques)) + (i - (len(BATCH_SIZES) - 1) / 2) * width
        errors = np.vstack([rows["ratio"] - rows["ratio_low"], rows["ratio_high"] - rows["ratio"]])
        ax.errorbar(x, rows["ratio"], yerr=errors, fmt="o", color=colours[batch], capsize=2,
                    label=f"batch {batch}")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(np.arange(len(techniques)))
    ax.set_xticklabels(techniques, fontsize=7, rotation=35, ha="right",
                       rotation_mode="anchor")  # long names side by side would overlap
    ax.set_ylabel("step time / step time of none")
    ax.legend(fontsize=7)
    return ax


def plot_overheads(df):
    """One panel per problem (columns) and backend/device (rows); returns the Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    steps = df[df["kind"] == "step"]
    places = sorted(set(zip(steps["backend"], steps["device"])))
    fig, axes = plt.subplots(len(places), len(PROBLEMS), squeeze=False,
                             figsize=(5 * len(PROBLEMS), 4.2 * len(places)), sharey="row")
    for r, (backend_name, device) in enumerate(places):
        for c, problem in enumerate(PROBLEMS):
            ax = axes[r, c]
            rows = steps[(steps["backend"] == backend_name) & (steps["device"] == device)
                         & (steps["problem"] == problem)]
            plot_overhead(rows, ax=ax)
            ax.set_title(f"{problem} ({PROBLEMS[problem].architecture})\n"
                         f"{device.upper()}, {backend_name}", fontsize=9)
    fig.tight_layout()
    return fig


def _machine_table(machines: list[dict]) -> Table:
    keys = []
    for machine in machines:
        keys += [k for k in machine if k not in keys and k != "file"]
    header = ["", *[Path(m["file"]).name for m in machines]]
    return _table(header, [[k, *[str(m.get(k, "")) for m in machines]] for k in keys])


OVERHEAD = "overhead"  # the figure's name: figures/overhead.png
OVERHEAD_CAPTION = ("Overhead ratio to `none` per technique, one colour per batch size, with "
                    "95% intervals; one panel per problem (columns) and backend and device "
                    "(rows).")
TITLE = "regbench: training-step benchmarks"


def report_blocks(df, machines: list[dict], overhead: Figure | None = None) -> list:
    """The report of derived rows `df` (see `results.derive`): what was found first, then how
    it was timed, on what, and every table it rests on. `overhead`: the plot, where drawn."""
    steps = df[df["kind"] == "step"]
    return [*_title(machines), *_finding(steps, overhead), Para("**Contents**"),
            Contents(levels=(2,)),  # its level-3 headings only name a backend and device
            *_timing(machines), *_problem_sections(steps), *_augmentation_section(df),
            *_matmul_section(df)]


def render_report(df, machines: list[dict]) -> str:
    """The Markdown report (README.md), its figure by path."""
    steps = df[df["kind"] == "step"]
    figure = Figure(f"figures/{OVERHEAD}.png", OVERHEAD_CAPTION, b"") if len(steps) else None
    return render_markdown(report_blocks(df, machines, figure))


def _title(machines: list[dict]) -> list:
    gpus = sorted({m.get("gpu", "none available") for m in machines})
    return [
        Heading("Training-step benchmarks", 1),
        Para("Written by `regbench bench-report` from the pytest-benchmark JSON in `raw/` "
             "(`nox -s benchmarks`). Regenerate; do not edit."),
        Para(f"GPU: {', '.join(gpus)}. "
             + ("No GPU was visible, so this report has CPU rows only; the suite adds GPU rows "
                "in the same run whenever the backend sees one." if gpus == ["none available"]
                else "")),
    ]


def _finding(steps, overhead: Figure | None) -> list:
    """What each technique costs per step: the headline table per backend and device, and
    the plot."""
    blocks = [Heading("Finding", 2),
              Para("Overhead ratio to `none`: median step time of the technique / median of "
                   "its paired `none` steps, with its 95% interval and n = pairs of rounds, per "
                   "technique (rows) and problem and batch (columns). The `none` row is the "
                   "null check and should include 1. How steps are timed: [What is timed]"
                   "(#what-is-timed).")]
    for (backend_name, device), group in steps.groupby(["backend", "device"]):
        blocks += [Heading(f"{device.upper()}, {backend_name}", 3), headline_table(group)]
    return blocks + ([overhead] if overhead is not None else [])


def _timing(machines: list[dict]) -> list:
    """What is timed and how to read it, and the machine table."""
    return [
        Heading("What is timed", 2),
        Bullets((
            "One optimizer step (`model.train_on_batch`: forward, loss with penalties, "
            "backward, Adam update, constraints, metrics) on a fixed, seeded, generated batch "
            "already on the device, with the model built and compiled exactly as `regbench "
            "run` does. The first call (build, tracing/compilation and one step) and the "
            "warm-up steps are not timed; `compile s` = first call - median step. Each call "
            "returns only when the device has finished (the logs come back as Python floats).",
            "A round times one step (or, without a baseline, several consecutive steps and "
            "stores their mean); `median`, `IQR` and `rounds` are over rounds. Each round of a "
            "step benchmark is paired with one step of a separate `none` model of the same "
            "problem and batch, run right before or right after it (alternating, ABBA), so "
            "load from other processes that changes over seconds hits both. `overhead` = "
            "median step of the technique / median of its paired `none` steps (for `none` "
            "itself this is a null check and should include 1); the interval is a 95% "
            "percentile bootstrap of that ratio of medians over pairs of rounds (2,000 "
            "resamples). Pipeline and fed-step ratios are unpaired (rounds of each side "
            "resampled independently).",
            "FLOPs: multiply-adds of every Dense and Conv2D layer; forward = 2 x MACs, "
            "backward = 2 x MACs for the weight gradients and 2 x MACs for the input gradients "
            "of every layer but the first (the input's gradient is never computed). "
            "Techniques add no counted FLOPs. `of peak` = achieved GFLOP/s / the best median "
            "GFLOP/s of square float32 matmuls timed with the same backend and device in the "
            "same run (a roofline fraction).",
            "Early stopping has no per-step cost: it is a callback that reads the validation "
            "loss once per epoch, so it is not in the grid (its cost is the validation pass "
            "each epoch, which regbench runs for every arm anyway).",
            "Other processes on the machine still add noise within a step (preemption), which "
            "widens intervals and inflates medians, and differ between runs: compare runs "
            "with `regbench bench-compare`, on the same machine only. `load_average_at_start` "
            "and `load_average` (at the end) in the machine table say how busy it was (1, 5 "
            "and 15-minute averages; above the core count, other processes were competing).",
        )),
        Heading("Machine", 2),
        _machine_table(machines),
    ]


def _problem_sections(steps) -> list:
    """One table per problem, backend and device: every technique at every batch."""
    blocks = []
    for (backend_name, device), group in steps.groupby(["backend", "device"]):
        for problem in PROBLEMS:
            rows = group[group["problem"] == problem]
            if rows.empty:
                continue
            p = PROBLEMS[problem]
            blocks += [Heading(f"{problem}: {p.architecture} on {device.upper()} "
                               f"({backend_name})", 2), step_table(rows)]
    return blocks


def _augmentation_section(df) -> list:
    """Augmentation in the model against in a tf.data pipeline, per backend and device."""
    blocks = [
        Heading("Augmentation: in the model or in a tf.data pipeline", 2),
        Para("regbench's default puts the augmentation layers (RandomRotation, "
             "RandomTranslation, RandomFlip where the labels allow it) inside the model, right "
             "after the input: they run on the training device (on a GPU, not competing for "
             "the host CPU), are inactive at inference by construction, and every arm of a "
             "study shares one input pipeline, so arms differ only in their model and see the "
             "same batches in the same order. The alternative maps the same Keras layers over "
             "a tf.data pipeline on the host CPU (parallel map, prefetch), overlapping "
             "augmentation with the training step."),
        Bullets((
            "`in model`: extra step time of the augmentation model over its paired `none` "
            "steps (fixed batch).",
            "`tf.data`: time per batch of the pipeline with the augmentation layers mapped "
            "over it minus the same pipeline without them (throughput of a parallel map, no "
            "training).",
            "`fed step`: one step fed from a prefetching pipeline, augmentation in the model "
            "(plain pipeline) or in the pipeline (model without augmentation); the ratio is "
            "tf.data / model.",
        )),
    ]
    for (backend_name, device), group in df.groupby(["backend", "device"]):
        if group[group["kind"] == "fed_step"].empty:
            continue
        blocks += [Heading(f"{device.upper()}, {backend_name}", 3),
                   augmentation_table(df[df["backend"] == backend_name], device)]
    return blocks


def _matmul_section(df) -> list:
    matmul = df[df["kind"] == "matmul"].sort_values(["backend", "device", "n"])
    rows = [[r["backend"], r["device"], str(int(r["n"])), _ms(r["median"]), _ms(r["iqr"]),
             str(r["rounds"]), _num(r["gflops"])] for _, r in matmul.iterrows()]
    header = ["backend", "device", "n", "median ms", "IQR ms", "rounds", "GFLOP/s"]
    return [Heading("Matmul peak (float32, n x n @ n x n)", 2), _table(header, rows)]


def _overhead_figure(df) -> Figure:
    """The overhead plot as PNG bytes, for both the Markdown (a file) and the HTML (inline)."""
    import matplotlib.pyplot as plt

    fig = plot_overheads(df)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return Figure(f"figures/{OVERHEAD}.png", OVERHEAD_CAPTION, buffer.getvalue())


def write_report(raw_paths, out_dir: Path) -> list[Path]:
    """README.md, report.html, the overhead plot, fingerprint and flat CSV from benchmark
    JSON files; the paths written."""
    paths = [Path(p) for p in raw_paths]
    if not paths:
        raise RegbenchError("no benchmark JSON files given (run `nox -s benchmarks` first)")
    df, machines = load_runs(paths)
    df = derive(df)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    overhead = _overhead_figure(df) if not df[df["kind"] == "step"].empty else None
    clear_figures(out_dir)
    (out_dir / f"{OVERHEAD}.png").unlink(missing_ok=True)  # where earlier versions put it
    write_document(report_blocks(df, machines, overhead), out_dir, TITLE)
    written = [out_dir / "README.md", out_dir / "report.html"]
    if overhead is not None:
        written.append(out_dir / overhead.path)
    fingerprint = out_dir / "fingerprint.json"
    fingerprint.write_text(json.dumps(machines, indent=2, sort_keys=True) + "\n")
    written.append(fingerprint)
    table = out_dir / "summary.csv"
    df.drop(columns=["samples", "baseline_samples"]).to_csv(table, index=False, float_format="%.6g")
    written.append(table)
    return written
