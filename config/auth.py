"""Who may use i2vmon: the `auth.password_hash` setting's format, session tokens, and the limit on guessing.

Shared by the UI's sign-in (app/views/sign_in.py) and the API (api/auth.py), so one identity works in both:
the password signs in to the UI and, as HTTP Basic, to the API; a sign-in issues a session token that the API
takes as `Authorization: Bearer <token>` until it expires. Standard library only.

A password is stored as `scrypt$<n>$<r>$<p>$<salt>$<hash>` (base64, 16 random bytes of salt), never itself.
A session token is `<user>.<expires unix s>.<HMAC-SHA256>` keyed by the data directory's session key
(data/session_key.py) and the password hash, so changing the password ends every session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

_SCHEME = "scrypt"
_N, _R, _P = 2**14, 8, 1  # 16 MiB and ~50 ms a check: slow enough against offline guessing, fast enough to sign in
_MAXMEM = 64 * 2**20
MIN_PASSWORD_CHARS = 8


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach an address (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PasswordHashError(ValueError):
    """`auth.password_hash` is not a hash this module wrote."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The `auth.password_hash` value for `password`."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password is {len(password)} characters; use at least {MIN_PASSWORD_CHARS}")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)
    return f"{_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_hash_format(stored: str) -> None:
    """Raise PasswordHashError with what to do if `stored` cannot be a hash from hash_password."""
    parts = stored.split("$")
    try:
        ok = len(parts) == 6 and parts[0] == _SCHEME and all(int(x) > 0 for x in parts[1:4]) and _unb64(parts[4]) and _unb64(parts[5])
    except ValueError:
        ok = False
    if not ok:
        raise PasswordHashError(
            "auth.password_hash is not a password hash; set it to what `python -m app hash-password` prints "
            "(it starts with 'scrypt$'), not to the password itself"
        )


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from (constant-time comparison)."""
    check_hash_format(stored)
    _, n, r, p, salt, digest = stored.split("$")
    expected = _unb64(digest)
    actual = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM,
                            dklen=len(expected))
    return hmac.compare_digest(actual, expected)


# -- session tokens --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    """A signed-in user and when the sign-in ends (unix seconds)."""

    username: str
    expires_at: float

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


def _signature(key: bytes, password_hash: str, payload: str) -> str:
    return hmac.new(key + password_hash.encode(), payload.encode(), hashlib.sha256).hexdigest()


def issue_session(username: str, *, key: bytes, password_hash: str, hours: float, now: float | None = None) -> tuple[Session, str]:
    """A session for `username` lasting `hours`, and its token."""
    session = Session(username, int((time.time() if now is None else now) + hours * 3600))
    payload = f"{_b64(username.encode())}.{int(session.expires_at)}"
    return session, f"{payload}.{_signature(key, password_hash, payload)}"


def read_session(token: str, *, key: bytes, password_hash: str, now: float | None = None) -> Session | None:
    """The session a token stands for; None if it is forged, damaged, from another password or expired."""
    user, _, rest = token.strip().partition(".")
    expires, _, signature = rest.partition(".")
    payload = f"{user}.{expires}"
    if not signature or not hmac.compare_digest(signature, _signature(key, password_hash, payload)):
        return None
    try:
        session = Session(_unb64(user).decode(), float(int(expires)))
    except ValueError:
        return None
    return None if session.expired(now) else session


# -- guessing ----------------------------------------------------------------------------------------------------
class GuessLimit:
    """At most `max_failures` wrong passwords from one client within `window_s`; then it waits out the window.

    In memory, per process (the UI server, the API): a restart forgets, which costs a guesser a restart
    they cannot cause. Thread-safe: Streamlit runs each session's script on its own thread."""

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures[client]
        while failures and now - failures[0] > self.window_s:
            failures.popleft()
        return failures

    def wait_s(self, client: str, now: float | None = None) -> float:
        """Seconds before `client` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.max_failures:
                return 0.0
            return max(0.0, failures[0] + self.window_s - now)

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(client, now).append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


WRONG_PASSWORD_DELAY_S = 1.0  # every wrong password costs the guesser this long, on top of the limit
