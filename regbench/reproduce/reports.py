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
    render_html,
    render_markdown,
    write_document,
)
from regbench.report import load_results
from regbench.reproduce.common import probe_estimate
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
    if not trained(rows):  # listed as not run in the index, not written as an empty report
        remove_report(out)
        write_index()
        return None
    blocks = finding_first(REPORTS[repro.published.report](repro, rows),
                           findings(out / "FINDINGS.md"))
    blocks += reproducibility(repro, rows)
    out.mkdir(parents=True, exist_ok=True)
    clear_figures(out)
    write_document(blocks, out, f"regbench reproduction: {repro.name}")
    write_index()
    return out


def trained(rows: pd.DataFrame) -> bool:
    """Whether a reproduction has rows beyond the timing probes of studies not run here."""
    return bool(len(rows)) and not rows["study"].str.endswith("_probe").all()


def remove_report(out: Path) -> None:
    for name in ("README.md", "report.html"):
        (out / name).unlink(missing_ok=True)
    clear_figures(out)


def not_run(repro: Reproduction, rows: pd.DataFrame) -> str:
    """Why a reproduction has no report, with the training time its probes estimate."""
    hours = [estimate[2] / 3600 for probe in repro.probes
             if (estimate := probe_estimate(repro, probe, rows)) is not None]
    return ("not run: needs a GPU" + (f"; its probe estimates {sum(hours):.0f} h of training "
                                     "on this CPU" if hours else "")
            + f" (`regbench reproduce {repro.name}`)")


def stored_rows(path: Path) -> pd.DataFrame:
    """The newest row per cell of a store; empty when there is none yet."""
    return load_results(path) if store.read_rows(path) else pd.DataFrame()


def findings(path: Path) -> list:
    """The findings written by hand beside the report, one paragraph per blank-line block."""
    if not path.is_file():
        return []
    return [Heading("Findings, written by hand from the tables below", 3),
            *(Para(part.strip()) for part in path.read_text().split("\n\n") if part.strip())]


def finding_first(blocks: list, hand: list) -> list:
    """The paper's blocks with what a reader came for straight after the title block: the
    section "Claims" (each claim's verdict here), renamed "Finding", then the hand-written
    findings; the budgets and tables it rests on follow."""
    claims = blocks.index(Heading("Claims", 2))
    end = next((i for i in range(claims + 1, len(blocks)) if _section(blocks[i])), len(blocks))
    title = next(i for i, block in enumerate(blocks) if _section(block))
    return (blocks[:title] + [Heading("Finding", 2)] + blocks[claims + 1:end] + hand
            + blocks[title:claims] + blocks[end:])


def _section(block) -> bool:
    return isinstance(block, Heading) and block.level == 2


def write_index() -> Path:
    """reports/published/README.md: every reproduction, its report and its stored cells."""
    index = index_path()
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(render_markdown(index_blocks("README.md")))
    index.with_name("index.html").write_text(render_html(index_blocks("report.html"),
                                                         "regbench: published comparisons"))
    return index


def index_blocks(page: str) -> list:
    """Every reproduction with its state, linking the reports' `page`."""
    lines = []
    for name, repro in REPRODUCTIONS.items():
        path = store_path(name)
        rows = stored_rows(path)
        if (path.parent / "README.md").is_file():
            lines.append((f"[{name}]({name}/{page})", repro.title, f"{len(rows)} cells"))
        else:
            lines.append((name, repro.title, not_run(repro, rows) if len(rows) else
                          f"not run yet (`regbench reproduce {name}`)"))
    return [Heading("Published comparisons, reproduced", 1),
            Para("Each report puts the paper's numbers beside regbench's, with the budgets of "
                 "both; `regbench reproduce NAME` trains what is missing and rewrites it, "
                 "`regbench reproduce --all --report-only` rewrites them all."),
            Table(("reproduction", "what", "state"), tuple(lines))]


def training_seconds(rows: pd.DataFrame) -> float:
    """Seconds the rows' packs trained, each pack counted once: its rows carry its `fit_s`
    and `pack_size` (rows stored before packs carry neither size: one cell each)."""
    if "fit_s" not in rows:
        return 0.0
    size = rows["pack_size"].fillna(1) if "pack_size" in rows else 1
    return float((rows["fit_s"].astype(float) / size).sum())


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
        fit = training_seconds(part)
        strategies = ", ".join(sorted(set(part["strategy"].fillna("alone")))) \
            if "strategy" in part else "alone"
        compute.append((str(study), str(len(part)), strategies, f"{fit:.0f}",
                        f"{fit / 60:.1f}"))
    blocks += [Heading("Compute", 3),
               Para("Training time per study (the packs' `fit_s`, each pack once: a packed "
                    "cell's row carries its pack's; evaluation and start-up not counted; "
                    "packs in worker processes run side by side):"),
               Table(("study", "cells", "trained", "fit s", "fit min"), tuple(compute))]
    fields = [c for c in ("regbench_version", "git_commit", "keras_version", "backend",
                          "backend_version", "device", "cpu_count") if c in rows]
    blocks.append(Table(("field", "value"), tuple(
        (c, ", ".join(sorted({str(v) for v in rows[c].dropna()}))) for c in fields)))
    return blocks
