"""Writing a reproduction's report, `reports/published/NAME/`, from its stored rows (the
paper's blocks, the hand-written findings, how to reproduce it), and the index of them all;
trains nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from regbench import store
from regbench.document import (
    Code,
    Heading,
    Para,
    Table,
    clear_figures,
    render_markdown,
    write_document,
)
from regbench.report import load_results
from regbench.reproduce.ioffe import ioffe_blocks
from regbench.reproduce.registry import (
    REPRODUCTIONS,
    Reproduction,
    get,
    index_path,
    store_path,
    study_path,
)
from regbench.reproduce.srivastava import fig10_blocks, table9_blocks
from regbench.reproduce.zhang import zhang_blocks

# Published.report -> the function that turns a reproduction's stored rows into blocks.
REPORTS = {"table9": table9_blocks, "fig10": fig10_blocks, "zhang": zhang_blocks,
           "ioffe": ioffe_blocks}


def write(name: str) -> Path:
    """The report of `name` from its stored rows; trains nothing."""
    repro = get(name)
    rows = stored_rows(store_path(name))
    out = store_path(name).parent
    blocks = REPORTS[repro.published.report](repro, rows)
    blocks += findings(out / "FINDINGS.md")
    blocks += reproducibility(repro, rows)
    out.mkdir(parents=True, exist_ok=True)
    clear_figures(out)
    write_document(blocks, out, f"regbench reproduction: {repro.name}")
    write_index()
    return out


def stored_rows(path: Path) -> pd.DataFrame:
    """The newest row per cell of a store; empty when there is none yet."""
    return load_results(path) if store.read_rows(path) else pd.DataFrame()


def findings(path: Path) -> list:
    """The findings written by hand beside the report, one paragraph per blank-line block."""
    if not path.is_file():
        return []
    return [Heading("Findings (written by hand from the tables above)", 2),
            *(Para(part.strip()) for part in path.read_text().split("\n\n") if part.strip())]


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
    index = index_path()
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(render_markdown(blocks))
    return index


def reproducibility(repro: Reproduction, rows: pd.DataFrame) -> list:
    """The commands that retrain and rewrite the report, its study files, and the compute and
    software its rows were trained with."""
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
