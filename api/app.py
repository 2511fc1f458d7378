"""create_app(settings): the FastAPI application, with its queue, store and settings on app.state."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request

from api import errors
from api.auth import BearerGate, check_token, required_token
from api.upload_limit import UploadLimit
from config import Settings, load_settings
from data.paths import DataPaths, data_paths
from data.store import Store
from engine.queue import JobQueue, QueueUnavailable, open_queue

log = logging.getLogger("api")

DESCRIPTION = """Jobs, GPU metrics and history, run records and foresight of i2vmon.

Every error answer is JSON `{"detail": "<plain message>"}`. Authentication: off when the API is bound to a
loopback address; otherwise every /api/* route and /metrics need `Authorization: Bearer <api.token>`.
"""


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


def context(request: Request) -> ApiContext:
    return request.app.state.ctx


def create_app(settings: Settings | None = None, *, queue: JobQueue | None = None) -> FastAPI:
    """The API for these settings. Raises AuthConfigError on a non-loopback host without a token; a queue that
    cannot be opened is retried on each use (queue routes answer 503 meanwhile)."""
    from api import foresight, jobs, metrics, prometheus, runs

    settings = settings or load_settings()
    token = required_token(settings.api.host, settings.api.token)
    paths = data_paths(settings)
    ctx = ApiContext(settings=settings, paths=paths, queue=queue or _open_queue(settings), store=Store(paths))

    app = FastAPI(title="i2vmon", version="1.0", description=DESCRIPTION)
    app.state.ctx = ctx
    app.state.token = token
    errors.install(app)
    app.add_middleware(UploadLimit, max_bytes=settings.api.max_upload_mb * 2**20)
    app.add_middleware(BearerGate, token=token)  # added last: runs first, before any body is read

    protected = [Depends(check_token)]
    for module in (jobs, metrics, runs, foresight):
        app.include_router(module.router, dependencies=protected, responses=errors.responses(401, 422))
    app.include_router(prometheus.router, dependencies=protected, responses=errors.responses(401))
    prometheus.register(app, ctx)

    @app.get("/api/health", tags=["health"], summary="liveness: answers while the API runs (no token needed)")
    def health() -> dict[str, str]:
        return {"status": "ok", "hostname": settings.hostname}

    log.info("API for %s, data in %s, authentication %s", settings.hostname, paths.root, "on" if token else "off (loopback)")
    return app
