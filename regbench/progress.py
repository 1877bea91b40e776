"""Progress of a run on stderr: cells done of total, the pack in training, an ETA.

In a terminal a tqdm bar shows the epoch of the pack in training; elsewhere (a log, CI) each
finished pack is one plain line (a cell trained alone is a pack of one). The ETA counts from
the start of the first pack, so imports and data loading do not inflate it. Executors call
`skip`, `start`, `epoch` and `finish` (once per row).
"""

from __future__ import annotations

import os
import sys
import time

from regbench import interrupts


class Progress:
    """Cells done/total, the epoch in progress and an ETA; one line per cell when not a TTY."""

    def __init__(self, total: int, quiet: bool = False, stream=sys.stderr):
        self.total, self.done, self.quiet, self.stream = total, 0, quiet, stream
        self.live = not quiet and stream.isatty() and not os.environ.get("CI")
        self.began = self.pack_began = time.monotonic()
        self.started = False
        self.cells, self.rows = [], []
        self.bar = None

    def say(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def eta(self) -> str:
        if not self.done or not self.started:
            return "?"
        left = (time.monotonic() - self.began) / self.done * (self.total - self.done)
        return f"{int(left // 60)}m{int(left % 60):02d}s"

    def skip(self) -> None:
        self.total -= 1  # trained by another runner

    def begin(self) -> None:
        """The ETA's clock starts with the first pack trained (in a worker or here)."""
        if not self.started:
            self.started, self.began = True, time.monotonic()

    def start(self, cells) -> None:
        self.begin()
        self.cells, self.rows, self.pack_began = cells, [], time.monotonic()

    def epoch(self, epoch: int, epochs: int, logs: dict) -> None:
        interrupts.check()  # a signal Python dropped stops the run at the next epoch
        if not self.live:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, file=self.stream, leave=False, dynamic_ncols=True,
                            bar_format="{desc} {bar:12} epoch {n_fmt}/{total_fmt} {postfix}")
        first = self.cells[0]
        what = (f"{len(self.cells)} cells" if len(self.cells) > 1
                else f"{first.arm.label} seed={first.seed}")
        self.bar.set_description_str(f"[{self.done + 1}/{self.total}] {first.dataset} "
                                     f"{first.model.name} {what}", refresh=False)
        self.bar.set_postfix_str(f"val_acc {logs.get('val_acc', float('nan')):.4f} "
                                 f"ETA {self.eta()}", refresh=False)
        self.bar.total = epochs
        self.bar.n = epoch
        self.bar.refresh()

    def finish(self, row: dict) -> None:
        """One row stored; the pack's line once all its rows are."""
        self.done += 1
        self.rows.append(row)
        if len(self.rows) < len(self.cells):
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        seconds = time.monotonic() - self.pack_began
        self.say(f"[{self.done}/{self.total}] {self._pack_line(self.rows)} ({seconds:.1f} s)"
                 f"  ETA {self.eta()}")
        self.rows = []

    @staticmethod
    def _pack_line(rows: list[dict]) -> str:
        first = rows[0]
        if len(rows) == 1:
            if first["status"] == "failed":
                result = f"FAILED ({first['error']})"
            else:
                result = (f"{first['status']}: test_acc {first['test_acc']:.4f} "
                          f"gap {first['gap_acc']:+.4f} epochs {first['epochs_run']}")
            return (f"{first['dataset']} {first['model']} {first['arm']} "
                    f"seed={first['seed']}: {result}")
        statuses = [r["status"] for r in rows]
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        accuracies = [r["test_acc"] for r in rows if r["status"] != "failed"]
        spread = (f"; test_acc {min(accuracies):.4f} to {max(accuracies):.4f}"
                  if accuracies else "")
        arms = len({r["arm"] for r in rows})
        seeds = len({r["seed"] for r in rows})
        return (f"{first['dataset']} {first['model']}: {len(rows)} cells "
                f"({arms} arms x {seeds} seeds, {first.get('strategy', 'pack')}): "
                f"{counts}{spread}")
