"""The supervisor's child logs, rotated by size: `<name>.log` → `<name>.log.1` → … → `<name>.log.<backups>`, the
oldest dropped, so each process's log stays near (backups + 1) × max_bytes (the `logs` settings).

Each child writes its own log file (opened for appending), as before: it keeps logging whatever happens to the
supervisor, which a pipe through the supervisor would not survive. The supervisor rotates by copy-and-truncate
(logrotate's `copytruncate`): the content goes to `.1` and the file is emptied in place; the child's next write,
in append mode, lands at its new start. What a child writes between the copy and the truncation (microseconds;
the copy is re-checked for growth just before) is the price of not having to signal every process to reopen.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def backup(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def rotate_if_large(path: Path, *, max_bytes: int, backups: int) -> bool:
    """Rotate `path` if it has reached `max_bytes`; returns whether it did."""
    if max_bytes <= 0 or backups < 0:
        raise ValueError(f"max_bytes {max_bytes} must be > 0 and backups {backups} >= 0")
    try:
        if path.stat().st_size < max_bytes:
            return False
    except FileNotFoundError:
        return False
    if backups == 0:
        os.truncate(path, 0)
        return True
    backup(path, backups).unlink(missing_ok=True)
    for n in range(backups - 1, 0, -1):
        if backup(path, n).exists():
            os.replace(backup(path, n), backup(path, n + 1))
    with path.open("rb") as source, backup(path, 1).open("wb") as target:
        shutil.copyfileobj(source, target, 1024 * 1024)
        while chunk := source.read(1024 * 1024):  # what was written during the copy
            target.write(chunk)
        os.truncate(path, 0)
    return True
