"""create_app(settings): the FastAPI application, with its queue, store and settings on app.state."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request

from api import errors
from api.auth import BearerGate, check_token, required_token
from api.upload_limit import UploadLimit
from config import Settings, load_settings
from data.paths import DataPaths, data_paths
from data.store import Store
from engine.queue import JobQueue, open_queue

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


def context(request: Request) -> ApiContext:
    return request.app.state.ctx


def create_app(settings: Settings | None = None, *, queue: JobQueue | None = None) -> FastAPI:
    """The API for these settings. Raises AuthConfigError on a non-loopback host without a token, and
    QueueUnavailable if the queue cannot be opened."""
    from api import foresight, jobs, metrics, prometheus, runs

    settings = settings or load_settings()
    token = required_token(settings.api.host, settings.api.token)
    paths = data_paths(settings)
    ctx = ApiContext(settings=settings, paths=paths, queue=queue or open_queue(settings), store=Store(paths))

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
