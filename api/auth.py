"""Authentication: off on a loopback address, required on any other.

Bound to 127.0.0.1 / ::1 / localhost, only this machine can reach the API and nothing is needed.
Bound to anything else (0.0.0.0, a LAN address), the API refuses to start without `api.token` or the UI's
sign-in (`auth.password_hash`), and every /api/* request and /metrics need one of:
- `Authorization: Bearer <api.token>`;
- `Authorization: Basic <username:password>`: the UI's user and password (config/auth.py), at most
  `auth.max_failures` wrong ones from one client per `auth.lockout_s`, each answered after a second;
- `Authorization: Bearer <session token>`: the token a UI sign-in issues (shown in the UI's sidebar), until it expires.
A token or password that is set is always enforced, on loopback too. /openapi.json, /docs and /api/health stay open.

The rules are here, with the middleware that applies them first; the routes' dependency is deps.check_token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import PROBLEM_JSON, problem_body
from config.auth import (
    WRONG_PASSWORD_DELAY_S,
    GuessLimit,
    PasswordHashError,
    check_hash_format,
    is_loopback,
    read_session,
    verify_password,
)

MIN_TOKEN_CHARS = 16


class AuthConfigError(ValueError):
    """The API's host and token settings do not go together."""


def required_token(host: str, token: str | None) -> str | None:
    """The token requests must carry (None: authentication off); AuthConfigError if the settings are unsafe."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise AuthConfigError(
            f"api.token is {len(token)} characters; use at least {MIN_TOKEN_CHARS}, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    if token is None and not is_loopback(host):
        raise AuthConfigError(
            f"the API is bound to {host!r}, which other machines can reach, so it needs a token: set api.token in "
            "i2vmon.toml or I2VMON_API__TOKEN=<random string> (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`), or the UI's sign-in (auth.password_hash, from "
            "`python -m app hash-password`), or bind to 127.0.0.1"
        )
    return token



MISSING = ("this API needs a bearer token: send the header `Authorization: Bearer <token>` (the api.token setting, "
           "or the session token the UI shows after sign-in), or `Authorization: Basic` with the UI's user and password")
WRONG = "the bearer token is not this API's token (the api.token setting) nor a current session token of the UI"
WRONG_PASSWORD = "wrong user name or password (the UI's sign-in: auth.username, auth.password_hash)"
OPEN_PATHS = ("/api/health",)
_VERIFIED_FOR_S = 60.0  # a right Basic password is remembered this long, so a polling client pays scrypt once


@dataclass
class Access:
    """What a request may present: the API's token and the UI's identity (its password, its session tokens).
    Nothing set: every request passes (loopback only, required_access sees to that)."""

    token: str | None = None
    username: str = "admin"
    password_hash: str | None = None
    session_key: bytes | None = None
    limit: GuessLimit = field(default_factory=lambda: GuessLimit(5, 300.0))
    _verified: dict[str, float] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def required(self) -> bool:
        return self.token is not None or self.password_hash is not None

    def refusal(self, authorization: str | None, client: str = "?") -> tuple[int, str] | None:
        """(status, reason) if a request with this Authorization header is refused; None if it may pass.
        Verifies a password (slow by design): call it off the event loop."""
        if not self.required:
            return None
        scheme, _, credentials = (authorization or "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            if self.token is not None and secrets.compare_digest(credentials.encode(), self.token.encode()):
                return None
            if self.password_hash and self.session_key and read_session(
                    credentials, key=self.session_key, password_hash=self.password_hash):
                return None
            return 401, WRONG
        if scheme.lower() == "basic" and credentials and self.password_hash:
            return self._basic_refusal(credentials, client)
        return 401, MISSING

    def _basic_refusal(self, credentials: str, client: str) -> tuple[int, str] | None:
        remembered = hashlib.sha256(credentials.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            if self._verified.get(remembered, 0.0) > now:
                return None
        wait = self.limit.wait_s(client)
        if wait:
            return 429, f"too many wrong passwords from {client}; try again in {wait:.0f} s"
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return 401, WRONG_PASSWORD
        if not (secrets.compare_digest(user.encode(), self.username.encode())
                and verify_password(password, self.password_hash)):  # type: ignore[arg-type]
            self.limit.failed(client)
            return 401, WRONG_PASSWORD
        self.limit.succeeded(client)
        with self._lock:
            if len(self._verified) > 64:
                self._verified.clear()
            self._verified[remembered] = now + _VERIFIED_FOR_S
        return None


def required_access(settings: object, session_key: bytes | None) -> Access:
    """The API's Access for these settings; AuthConfigError if they are unsafe or malformed."""
    api, auth = settings.api, settings.auth  # type: ignore[attr-defined]
    if auth.password_hash is not None:
        try:
            check_hash_format(auth.password_hash)
        except PasswordHashError as exc:
            raise AuthConfigError(str(exc)) from None
    token = api.token if auth.password_hash else required_token(api.host, api.token)
    if token is not None:
        required_token(api.host, token)  # its length
    return Access(token=token, username=auth.username, password_hash=auth.password_hash, session_key=session_key,
                  limit=GuessLimit(auth.max_failures, auth.lockout_s))


def challenge(access: Access) -> bytes:
    return b'Bearer, Basic realm="i2vmon"' if access.password_hash else b"Bearer"


class BearerGate:
    """ASGI middleware: refuses a protected path without a valid credential before its body is read, so an
    unauthenticated client cannot make the API parse an upload."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        protected = (path.startswith("/api/") and path not in OPEN_PATHS) or path == "/metrics"
        if self.access.required and protected:
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            client = (scope.get("client") or ("?", 0))[0]
            refused = await asyncio.to_thread(self.access.refusal, header, client)
            if refused:
                status, reason = refused
                if reason == WRONG_PASSWORD:
                    await asyncio.sleep(WRONG_PASSWORD_DELAY_S)
                body = json.dumps(problem_body(status, reason)).encode()  # RFC 9457, as every other error
                await send({"type": "http.response.start", "status": status, "headers": [
                    (b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge(self.access))]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
