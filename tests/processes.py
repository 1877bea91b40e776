"""The processes a command started, from Linux /proc: for tests that must see every one gone."""

from __future__ import annotations

import contextlib
from pathlib import Path


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += map(int, (task / "children").read_text().split())
    return out


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan nobody has reaped yet is gone for our purpose)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
