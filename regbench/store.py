"""Append-only results store: one JSON line per trained cell, keyed by the cell's content hash.

`pandas.read_json(path, lines=True)` reads it directly. Appends take an exclusive lock and
write each row with a single write, then fsync, so concurrent runners never interleave and a
finished row survives a crash. A process killed in the middle of a write can leave at most one
partial last line; readers skip it and the next append cuts it off before writing. Lines that
are not regbench rows (`is_row`), such as rows written by other tools, are skipped and counted
(`scan`), never used.

Every lock is a byte-range lock on the store file itself (Linux open-file-description locks,
`F_OFD_SETLK`): every path to one file (a symbolic or hard link, `./s.jsonl`, an absolute
path) shares them, and the OS drops a dead runner's locks at once. Byte `MEMBER` is
read-locked by every open store (so an empty store is removed only when nobody has it open),
byte `APPEND` is write-locked by the one appending runner, and each cell's claim locks one byte
from `CELLS` on, at an offset drawn from its key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import struct
from pathlib import Path

import pandas as pd

from regbench.errors import RegbenchError

FINISHED = ("ok", "diverged")  # statuses that count as done; "failed" is retried on request
MAX_STORE_BYTES = 2**30  # a row is about 6 KB: a study's limit of 100,000 cells is ~600 MB
MEMBER, APPEND, CELLS = 0, 1, 2  # lock offsets in the store file (see the module's doc)


class StoreError(RegbenchError):
    """The store cannot be read, written or locked (a full disk, a file size limit, ...)."""


def _lock(fd: int, kind: int, offset: int, wait: bool = False) -> None:
    """Lock one byte at `offset` of `fd`'s open file (F_RDLCK or F_WRLCK). The lock is held
    until this fd is closed; unlike classic POSIX locks, closing another fd of the same file
    in this process does not drop it, and two fds of one file in one process conflict."""
    flock = struct.pack("hhqqi4x", kind, os.SEEK_SET, offset, 1, 0)  # struct flock, l_pid 0
    fcntl.fcntl(fd, fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK, flock)


def _open(path: Path) -> int:
    """An fd of the store at `path` (created if missing) holding the `MEMBER` lock, so the
    file is not removed while it is open here."""
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(f"cannot open {path} ({error.strerror})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(f"{path} is not a regular file; a results store is a "
                                 ".jsonl file")
            _lock(fd, fcntl.F_RDLCK, MEMBER, wait=True)
            if _is_at(fd, path):
                return fd
        except OSError as error:
            os.close(fd)
            raise StoreError(f"cannot lock {path} ({error.strerror}); a store needs a file "
                             "system with fcntl locks") from None
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed (an empty store) while this waited: open the new one


def _is_at(fd: int, path: Path) -> bool:
    """Whether the file open as `fd` is still the one at `path`."""
    mine = os.fstat(fd)
    try:
        there = os.stat(path)
    except OSError:
        return False
    return mine.st_nlink > 0 and (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def remove_if_empty(path: str | Path) -> None:
    """Delete the store at `path` if it is empty and no runner has it open: a run that
    created it and stored nothing leaves nothing behind."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        _lock(fd, fcntl.F_WRLCK, MEMBER)  # refused while any runner has it open
        if os.fstat(fd).st_size == 0 and _is_at(fd, Path(path)):
            os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(fd)


def append(path: str | Path, row: dict) -> None:
    """Add one row. The row is complete on disk when this returns; if it cannot be written
    whole (a full disk, a file size limit), none of it stays and StoreError says why."""
    line = (json.dumps(row, allow_nan=True, separators=(",", ":")) + "\n").encode()
    path = Path(path)
    fd = _open(path)
    try:
        _lock(fd, fcntl.F_WRLCK, APPEND, wait=True)
        size = os.lseek(fd, 0, os.SEEK_END)
        start = _last_line_start(fd, size)
        if start < size:  # the last line has no newline
            if _whole(os.pread(fd, size - start, start)):  # e.g. edited by hand: keep it
                _write_all(fd, b"\n", size)
                size += 1
            else:  # a killed writer's partial line: drop it
                os.ftruncate(fd, start)
                size = start
        _write_all(fd, line, size)
        try:
            os.fsync(fd)
        except OSError:  # not known to be on disk: not stored
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    except OSError as error:
        raise StoreError(f"cannot write {path} ({error.strerror or error})") from None
    finally:
        os.close(fd)


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
    return scan(path)[0]


def scan(path: str | Path) -> tuple[list[dict], int]:
    """The store's rows, and how many of its lines are not regbench rows (`is_row`). A
    killed writer's partial last line is neither: it is skipped and not counted."""
    data = _read(Path(path))
    lines = data.split(b"\n")
    last = lines.pop()  # after the last newline: empty, or a line without its newline
    rows, foreign = [], 0
    for line in lines:
        if line.strip():
            row = _row(line)
            rows += [row] if row is not None else []
            foreign += row is None
    if last.strip():
        row = _row(last)
        rows += [row] if row is not None else []
        foreign += row is None and _whole(last)
    return rows, foreign


def _read(path: Path) -> bytes:
    """The store's bytes (none if it is missing), only if it is a regular file: a FIFO would
    block and a device never end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return b""
    except OSError as error:
        raise StoreError(f"cannot read {path} ({error.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(f"{path} is not a regular file; a results store is a .jsonl file")
        if info.st_size > MAX_STORE_BYTES:  # read whole, it would not fit memory
            raise StoreError(f"{path} holds {info.st_size / 2**30:.1f} GiB, more than any "
                             f"store of regbench rows (at most {MAX_STORE_BYTES // 2**30} GiB)")
        with os.fdopen(os.dup(fd), "rb") as file:
            return file.read()
    except OSError as error:
        raise StoreError(f"cannot read {path} ({error.strerror})") from None
    finally:
        os.close(fd)


def _row(line: bytes) -> dict | None:
    """One stored row, or None for a line that is not a regbench row."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, an int of > 4300 digits
        return None
    return row if is_row(row) else None


def _whole(line: bytes) -> bool:
    """Whether a line without its newline is whole (any JSON value), not cut short by a
    killed writer. Rows are ASCII and shallow, so a line that is not, is not a cut row."""
    try:
        json.loads(line.decode("ascii"), parse_int=len)
    except (UnicodeDecodeError, RecursionError):
        return True
    except ValueError:
        return False
    return True


# --- what a regbench row is: what summaries, reports and plots read, with its type --------

REQUIRED = {"key": str, "problem": str, "arm": str, "seed": int, "status": str}
TEXTS = ("study", "dataset", "model", "backend", "optimizer", "finished_at", "error", "host",
         "device", "strategy")
COUNTS = ("epochs", "train_subset", "batch_size", "epochs_run", "best_epoch", "stopped_epoch",
          "diverged_epoch", "pack_size", "workers", "n_fit", "n_val", "n_test", "cpu_count")
NUMBERS = ("test_acc", "train_acc", "val_acc", "test_xent", "train_xent", "val_xent", "gap_acc",
           "gap_xent", "penalty", "learning_rate", "momentum", "lr_decay", "l1_norm", "l2_norm",
           "sparsity_zero", "sparsity_lt_1e-3", "sparsity_lt_1e-2", "sparsity_rel_1pct",
           "dead_inputs_lt_1e-3", "dead_inputs_lt_1e-2", "fit_s", "first_epoch_s", "epoch_s",
           "examples_per_s", "validation_fraction", "cost_step_s", "cost_epoch_s")
SERIES = ("history",)           # {name: [number, ...]}
TABLES = ("layers",)            # {layer: {name: number or list}}
OBJECTS = ("dataset_sha256", "dataset_source", "spec", "curve")
LISTS = ("techniques",)


def is_row(row) -> bool:
    """A row regbench wrote: an object with a non-empty text `key`, its `problem`, `arm`,
    `seed` (an integer >= 0) and `status`, and where present the fields readers compute with,
    of their type."""
    if not isinstance(row, dict):
        return False
    if not all(_is(row.get(name), kind) for name, kind in REQUIRED.items()):
        return False
    if not row["key"] or not 0 <= row["seed"] < 2 ** 63:
        return False
    return (all(_optional(row, name, str) for name in TEXTS)
            and all(_optional(row, name, int) for name in COUNTS)
            and all(_optional(row, name, float) for name in NUMBERS)
            and all(_optional(row, name, dict) for name in (*SERIES, *TABLES, *OBJECTS))
            and all(_optional(row, name, list) for name in LISTS)
            and all(_series(row.get(name)) for name in SERIES)
            and all(_table(row.get(name)) for name in TABLES))


def _is(value, kind) -> bool:
    if isinstance(value, bool):
        return False  # JSON true is no number
    if kind is float and isinstance(value, float):
        return True
    if kind in (int, float):
        return isinstance(value, int) and abs(value) < 2 ** 63  # pandas' int64
    return isinstance(value, kind)


def _optional(row: dict, name: str, kind) -> bool:
    value = row.get(name)
    return value is None or _is(value, kind)


def _series(value) -> bool:
    return value is None or all(
        isinstance(v, list) and all(x is None or _is(x, float) for x in v)
        for v in value.values())


def _table(value) -> bool:
    return value is None or all(
        isinstance(v, dict) and all(x is None or isinstance(x, list) or _is(x, float)
                                    for x in v.values())
        for v in value.values())


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

    Runners on one store (other processes, other machines on a shared file system with fcntl
    locks) claim a cell before training it, so each cell is trained once. The claim is a lock
    on one byte of the store file (see the module's doc), whatever path names the file, and
    the OS drops it when its holder dies: a killed runner's cell is free again at once.
    Claiming creates an empty store if there is none.
    """
    fd = _open(Path(path))
    try:
        yield _try_lock(fd, key, path)
    finally:
        os.close(fd)


def _try_lock(fd: int, key: str, path) -> bool:
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    try:
        _lock(fd, fcntl.F_WRLCK, CELLS + int.from_bytes(digest[:7], "big"))
    except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: another runner has it
        return False
    except OSError as error:
        raise StoreError(f"cannot lock {path} ({error.strerror}); a store needs a file "
                         "system with fcntl locks") from None
    return True
