"""Published comparisons, reproduced: `regbench reproduce NAME`.

A reproduction is an entry of `REPRODUCTIONS`, read from the data files of
`ablations/published/reproductions/`: the study files it trains (under
`ablations/published/`), the published numbers it is compared with (from the paper, see
`shared/reference/published.md`), the paper's budget, and the report that turns the stored
rows into blocks. Every study of a reproduction trains into one store,
`reports/published/NAME/results.jsonl`, and the report is written beside it; regenerating a
report (`--report-only`) trains nothing.

Modules: `registry` (the data files), `orchestration` (what to train, in order), `reports`
(writing a report and the index), one per paper (`srivastava`, `zhang`, `ioffe`: its report
blocks and claims) and `common` (the pieces they share).
"""

from regbench.reproduce.orchestration import run
from regbench.reproduce.registry import REPRODUCTIONS, Reproduction, get, index_path, listing
from regbench.reproduce.reports import write

__all__ = ["REPRODUCTIONS", "Reproduction", "get", "index_path", "listing", "run", "write"]
