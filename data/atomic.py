"""Write-then-rename, so a reader only ever sees a whole file."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable


class DiskFullError(OSError):
    """The data directory has no space left; nothing partial was left behind."""


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, fsync it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
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


def write_bytes_atomically(path: Path, data: bytes) -> None:
    write_atomically(path, lambda tmp: tmp.write_bytes(data))
