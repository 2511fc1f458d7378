"""What the routes depend on: the context (settings, data directory, queue, history store) and the bearer token.

create_app (app.py) builds one ApiContext and puts it on app.state; the routers (routers/) reach it only through
the dependencies here, so nothing in api/ imports app.py but the entry point.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from api.auth import challenge
from config import Settings
from data.paths import DataPaths, data_paths
from data.store import Store
from engine.queue import JobQueue, QueueUnavailable, open_queue

log = logging.getLogger("api")

bearer = HTTPBearer(auto_error=False, description="the api.token setting (I2VMON_API__TOKEN), or the session token "
                    "the UI shows after sign-in")
basic = HTTPBasic(auto_error=False, description="the UI's user and password (auth.username, auth.password_hash)")


@dataclass
class ApiContext:
    """What every route reads: the settings, the data directory, the queue and the history store."""

    settings: Settings
    paths: DataPaths
    queue: JobQueue
    store: Store


class _QueueOpenedOnUse:
    """The queue, opened on first use and again after each failure: with its database damaged or unreachable
    at start-up the API still serves history, metrics and health, and answers 503 with the reason on queue
    routes until the database is fixed (no restart needed)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._queue: JobQueue | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> object:
        if self._queue is None:
            with self._lock:
                if self._queue is None:
                    self._queue = open_queue(self._settings)  # raises QueueUnavailable with the reason
        return getattr(self._queue, name)


def _open_queue(settings: Settings) -> JobQueue:
    try:
        return open_queue(settings)
    except QueueUnavailable as exc:
        log.error("%s; the API starts without the queue: its routes answer 503 until it can be opened", exc)
        return _QueueOpenedOnUse(settings)  # type: ignore[return-value]


def build_context(settings: Settings, queue: JobQueue | None = None) -> ApiContext:
    """The context for these settings; a queue that cannot be opened is retried on each use."""
    paths = data_paths(settings)
    return ApiContext(settings=settings, paths=paths, queue=queue or _open_queue(settings), store=Store(paths))


# -- dependencies ---------------------------------------------------------------------------------
def context(request: Request) -> ApiContext:
    return request.app.state.ctx


def settings(request: Request) -> Settings:
    return request.app.state.ctx.settings


def check_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                password: HTTPBasicCredentials | None = Depends(basic)) -> None:
    """A dependency of every protected route (it also puts the schemes in /openapi.json); BearerGate has
    already refused a request without a valid credential, and remembers a verified password, so this is cheap."""
    access = request.app.state.access
    refused = access.refusal(request.headers.get("authorization"), request.client.host if request.client else "?")
    if refused:
        raise HTTPException(refused[0], refused[1], headers={"WWW-Authenticate": challenge(access).decode()})


PROTECTED = [Depends(check_token)]  # the dependencies of every route but /api/health
