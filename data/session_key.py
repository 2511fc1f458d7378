"""The data directory's session key: signs the session tokens a sign-in issues (config/auth.py).

Created on first use with 32 random bytes, readable by its owner only; the UI and the API of one data directory
read the same key, so a token the UI issues works on the API. Deleting the file ends every session.
"""

from __future__ import annotations

import os
import secrets

from data.paths import DataPaths


def session_key(paths: DataPaths) -> bytes:
    """The key, created if missing (two processes creating it at once agree: the first link wins)."""
    path = paths.session_key
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(32))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process made it first; then theirs is the key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()
