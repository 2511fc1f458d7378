"""Bearer-token authentication: off on a loopback address, required on any other.

Bound to 127.0.0.1 / ::1 / localhost, only this machine can reach the API and no token is needed.
Bound to anything else (0.0.0.0, a LAN address), the API refuses to start without `api.token`, and
every /api/* request and /metrics need `Authorization: Bearer <token>`. A token that is set is
always enforced, on loopback too. /openapi.json, /docs and /api/health stay open.
"""

from __future__ import annotations

import ipaddress
import secrets

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

MIN_TOKEN_CHARS = 16

bearer = HTTPBearer(auto_error=False, description="the api.token setting (I2VMON_API__TOKEN)")


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


def check_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """A dependency of every protected route."""
    expected: str | None = request.app.state.token
    if expected is None:
        return
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "this API needs a bearer token: send the header `Authorization: Bearer <token>` (the api.token setting)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(401, "the bearer token is not this API's token (the api.token setting)", headers={"WWW-Authenticate": "Bearer"})
