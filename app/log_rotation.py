"""The supervisor's child logs, rotated by size: `<name>.log` → `<name>.log.1` → … → `<name>.log.<backups>`, the
oldest dropped, so each process's log holds at most (backups + 1) × max_bytes (the `logs` settings).

The supervisor reads each child's output through a pipe (`pump`) and writes it here, rather than handing the child
the file: a child writing into a file itself would keep writing into the renamed one after a rotation.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

_READ_BYTES = 64 * 1024


class RotatingLog:
    """An append-only log file that rotates when it reaches `max_bytes`. Thread-safe: an old child's pipe may still
    be draining when its restarted successor starts writing."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        if max_bytes <= 0 or backups < 0:
            raise ValueError(f"max_bytes {max_bytes} must be > 0 and backups {backups} >= 0")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None

    def backup(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _open(self) -> BinaryIO:
        if self._file is not None:
            try:
                if os.fstat(self._file.fileno()).st_nlink == 0:  # deleted under us (by hand, or retention): start anew
                    self._file.close()
                    self._file = None
            except OSError:
                self._file = None
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        return self._file

    def write(self, data: bytes) -> None:
        """Append `data`; rotate at the end of its last whole line once the file has reached max_bytes (a pipe's
        chunk may end mid-line: the rest of that line opens the next file, so no line is split across two)."""
        with self._lock:
            cut = data.rfind(b"\n") + 1
            head, tail = (data[:cut], data[cut:]) if cut else (b"", data)
            out = self._open()
            out.write(head)
            if out.tell() >= self.max_bytes:
                self._rotate()
                out = self._open()
            out.write(tail)
            out.flush()
            if out.tell() >= 2 * self.max_bytes:  # one line longer than the limit: cut it rather than grow
                self._rotate()

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        self.backup(self.backups).unlink(missing_ok=True)
        for n in range(self.backups - 1, 0, -1):
            if self.backup(n).exists():
                os.replace(self.backup(n), self.backup(n + 1))
        os.replace(self.path, self.backup(1))

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def pump(source: BinaryIO, target: RotatingLog, name: str) -> threading.Thread:
    """Copy a child's output pipe into its log until the pipe closes, on a thread of its own."""

    def run() -> None:
        fd = source.fileno()
        try:
            while chunk := os.read(fd, _READ_BYTES):
                target.write(chunk)
        except OSError as exc:
            log.warning("the log of %s stopped: %s", name, exc)
        finally:
            source.close()

    thread = threading.Thread(target=run, name=f"log-{name}", daemon=True)
    thread.start()
    return thread
