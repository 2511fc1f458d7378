"""create_app(settings): the FastAPI application, assembled from the routers, with its context on app.state."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from api import errors, offline_docs
from api.auth import BearerGate, required_access
from api.deps import PROTECTED, build_context
from api.routers import foresight, health, jobs, metrics, prometheus, runs
from api.upload_limit import UploadLimit
from config import Settings, load_settings
from data.paths import data_paths
from data.session_key import session_key
from engine.queue import JobQueue

log = logging.getLogger("api")

DESCRIPTION = """Jobs, GPU metrics and history, run records and foresight of i2vmon.

Every error answer is an RFC 9457 problem (`application/problem+json`): `type` (a URN such as
`urn:i2vmon:problem:not-found`), `title`, `status` and `detail`, the plain message; a 422 adds `errors`, one per bad
parameter. Live updates without polling: `GET /api/jobs/{job_id}/events` and `GET /api/alerts/events` are
server-sent event streams. Authentication: off when the API is bound to a loopback address; otherwise every /api/*
route and /metrics need `Authorization: Bearer <api.token>`, or the UI's identity: `Authorization: Basic` with its
user and password, or `Bearer` with the session token it shows.
"""


def create_app(settings: Settings | None = None, *, queue: JobQueue | None = None) -> FastAPI:
    """The API for these settings. Raises AuthConfigError on a non-loopback host without a token; a queue that
    cannot be opened is retried on each use (queue routes answer 503 meanwhile)."""
    settings = settings or load_settings()
    access = required_access(settings, session_key(data_paths(settings)) if settings.auth.password_hash else None)
    ctx = build_context(settings, queue)

    app = FastAPI(title="i2vmon", version="1.0", description=DESCRIPTION, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.state.access = access
    errors.install(app)
    offline_docs.install(app)  # /docs and /redoc from files shipped in api/static/docs/, not a CDN
    app.add_middleware(UploadLimit, max_bytes=settings.api.max_upload_mb * 2**20)
    app.add_middleware(BearerGate, access=access)  # added last: runs first, before any body is read

    for module in (jobs, metrics, runs, foresight):
        app.include_router(module.router, dependencies=PROTECTED, responses=errors.responses(401, 422))
    app.include_router(prometheus.router, dependencies=PROTECTED, responses=errors.responses(401))
    prometheus.register(app, ctx)
    app.include_router(health.router)  # open: no token

    log.info("API for %s, data in %s, authentication %s", settings.hostname, ctx.paths.root, "on" if access.required else "off (loopback)")
    return app
