"""Progress of a run on stderr: cells done of total, the pack in training, an ETA.

In a terminal a tqdm bar shows the epoch of the pack in training; elsewhere (a log, CI) each
finished cell is one plain line. Executors call `skip`, `start`, `epoch` and `finish`.
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
        self.cells = []
        self.bar = None

    def say(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def eta(self) -> str:
        if not self.done:
            return "?"
        left = (time.monotonic() - self.began) / self.done * (self.total - self.done)
        return f"{int(left // 60)}m{int(left % 60):02d}s"

    def skip(self) -> None:
        self.total -= 1  # trained by another runner

    def start(self, cells) -> None:
        self.cells, self.pack_began = cells, time.monotonic()

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
        seconds = time.monotonic() - self.pack_began
        if row["status"] == "failed":
            result = f"FAILED ({row['error']})"
        else:
            result = (f"{row['status']}: test_acc {row['test_acc']:.4f} "
                      f"gap {row['gap_acc']:+.4f} epochs {row['epochs_run']}")
        packed = f", pack of {row['pack_size']}" if row.get("pack_size", 1) > 1 else ""
        self.done += 1
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.say(f"[{self.done}/{self.total}] {row['dataset']} {row['model']} "
                 f"{row['arm']} seed={row['seed']}: {result} ({seconds:.1f} s{packed})  "
                 f"ETA {self.eta()}")
