"""Append-only results store: one JSON line per trained cell, keyed by the cell's content hash.

`pandas.read_json(path, lines=True)` reads it directly. Appends take an exclusive lock and
write each row with a single write, then fsync, so concurrent runners never interleave and a
finished row survives a crash. A process killed in the middle of a write can leave at most one
partial last line; readers skip it and the next append cuts it off before writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

import pandas as pd

FINISHED = ("ok", "diverged")  # statuses that count as done; "failed" is retried on request


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def append(path: str | Path, row: dict) -> None:
    """Add one row. The row is complete on disk when this returns."""
    line = (json.dumps(row, allow_nan=True, separators=(",", ":")) + "\n").encode()
    with _locked(Path(path)) as fd:
        size = os.lseek(fd, 0, os.SEEK_END)
        start = _last_line_start(fd, size)
        if start < size:  # the last line has no newline
            tail = os.pread(fd, size - start, start)
            if _row(tail) is not None:  # a whole row that lacks its newline: keep it
                _write_all(fd, b"\n", size)
                size += 1
            else:  # a killed writer's partial line: drop it
                os.ftruncate(fd, start)
                size = start
        _write_all(fd, line, size)
        os.fsync(fd)


def _last_line_start(fd: int, size: int, chunk: int = 1 << 16) -> int:
    """Offset just after the file's last newline (0 if it has none)."""
    end = size
    while end > 0:
        begin = max(0, end - chunk)
        found = os.pread(fd, end - begin, begin).rfind(b"\n")
        if found >= 0:
            return begin + found + 1
        end = begin
    return 0


def _write_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset`; on failure cut the file back so no partial row stays."""
    written = 0
    try:
        while written < len(data):
            written += os.pwrite(fd, data[written:], offset + written)
    except OSError:
        os.ftruncate(fd, offset)
        raise


def read_rows(path: str | Path) -> list[dict]:
    """All complete rows, in the order they were written. A missing store has none."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    # An undecodable line is the partial last line of a killed writer.
    return [row for line in data.split(b"\n") if (row := _row(line)) is not None]


def _row(line: bytes) -> dict | None:
    """One stored row, or None for a blank, partial or foreign line (no `key`)."""
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return row if isinstance(row, dict) and "key" in row else None


def finished_keys(path: str | Path, retry_failed: bool = False) -> set[str]:
    """Keys of cells that need no training. Failed cells count unless `retry_failed`;
    stale rows (`stale`) never do."""
    done = set()
    for row in read_rows(path):
        if not stale(row) and (row.get("status") in FINISHED or not retry_failed):
            done.add(row["key"])
    return done


def stale(row: dict) -> bool:
    """A row that must not be reused: trained in a branch pack (`pack_size` > 1) before the
    engine recorded its `strategy`, when branch packs silently skipped learning-rate decay,
    the SGD momentum ramp, the late L1 switch and accuracy curves. Stacks never took such
    cells, and cells trained alone are unaffected."""
    techniques = row.get("techniques")
    return ("strategy" not in row and _number(row.get("pack_size", 1)) > 1 and (
        _number(row.get("lr_decay", 1.0)) != 1.0 or bool(row.get("momentum_epochs"))
        or bool(row.get("curve_every"))
        or (isinstance(techniques, list) and "l1_late" in techniques)))


def _number(value) -> float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def stale_keys(path: str | Path) -> set[str]:
    """Keys of the stale rows of a store (see `stale`) that no later row replaced."""
    newest = {row["key"]: row for row in read_rows(path)}
    return {key for key, row in newest.items() if stale(row)}


def latest(rows: list[dict]) -> list[dict]:
    """The newest row per key: a retried cell replaces its failed row. Stale rows are
    left out."""
    return [row for row in {row["key"]: row for row in rows}.values() if not stale(row)]


def load(path: str | Path) -> pd.DataFrame:
    """The store as a DataFrame, one row per cell (newest attempt)."""
    return pd.DataFrame(latest(read_rows(path)))


@contextlib.contextmanager
def claim(path: str | Path, key: str):
    """Hold the right to train cell `key` while the block runs; yields False if taken.

    Runners on one store (other processes, other machines on a shared file system with flock)
    claim a cell before training it, so each cell is trained once. The claim is an advisory
    lock that the OS drops when its holder dies: a killed runner's cell is free again at once.
    """
    claims = Path(f"{path}.claims")
    claims.mkdir(parents=True, exist_ok=True)
    fd = os.open(claims / key, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
