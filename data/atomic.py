"""Write-then-rename, so a reader only ever sees a whole file; an SQLite write transaction that takes its lock
up front."""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable


class DiskFullError(OSError):
    """The data directory has no space left; nothing partial was left behind."""


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, fsync it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC or "No space left" in str(exc):
            raise DiskFullError(
                errno.ENOSPC, f"no space left on the device holding {path.parent}; free some space "
                "or point I2VMON_DATA_DIR at a larger disk"
            ) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_temporary(path: Path) -> Path:
    """An empty file beside `path` with a name no one else has, created 0666 less the umask — as `open()` creates
    files (files 0644 under umask 022). `tempfile.mkstemp` would create it 0600 whatever the umask, and the rename
    would carry that onto videos, Parquet and live files that other users (a web server, a backup) must read."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {path}")


def write_bytes_atomically(path: Path, data: bytes) -> None:
    write_atomically(path, lambda tmp: tmp.write_bytes(data))


@contextmanager
def immediate_transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on an error): the write lock is taken up front, so two processes
    writing at once (two workers claiming, two senders taking due deliveries) are ordered, never both reading
    the same rows before either writes. For a connection in autocommit mode (isolation_level None)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
