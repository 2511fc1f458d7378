"""Bearer-token authentication: off on a loopback address, required on any other.

Bound to 127.0.0.1 / ::1 / localhost, only this machine can reach the API and no token is needed.
Bound to anything else (0.0.0.0, a LAN address), the API refuses to start without `api.token`, and
every /api/* request and /metrics need `Authorization: Bearer <token>`. A token that is set is
always enforced, on loopback too. /openapi.json, /docs and /api/health stay open.

The rules are here, with the middleware that applies them first; the routes' dependency is deps.check_token.
"""

from __future__ import annotations

import ipaddress
import json
import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

MIN_TOKEN_CHARS = 16


class AuthConfigError(ValueError):
    """The API's host and token settings do not go together."""


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
            "print(secrets.token_urlsafe(32))'`), or bind to 127.0.0.1"
        )
    return token


MISSING = "this API needs a bearer token: send the header `Authorization: Bearer <token>` (the api.token setting)"
WRONG = "the bearer token is not this API's token (the api.token setting)"
OPEN_PATHS = ("/api/health",)


def refusal(expected: str | None, authorization: str | None) -> str | None:
    """Why a request with this Authorization header is refused; None if it may pass."""
    if expected is None:
        return None
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return MISSING
    if not secrets.compare_digest(credentials.strip().encode(), expected.encode()):
        return WRONG
    return None


class BearerGate:
    """ASGI middleware: refuses a protected path without the token before its body is read, so an
    unauthenticated client cannot make the API parse an upload."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        protected = (path.startswith("/api/") and path not in OPEN_PATHS) or path == "/metrics"
        if self.token is not None and protected:
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            reason = refusal(self.token, header)
            if reason:
                body = json.dumps({"detail": reason}).encode()
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
