"""Every error answer is JSON `{"detail": "<plain message>"}`; no traceback ever reaches a client.

Domain errors map to 4xx here, once: bad input 400, unknown job 404, a queue refusing an operation
409, the queue's database unreachable or the data directory read-only 503, the data directory's disk full 507. Anything else is logged whole and answered 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.intake.validation import InputError
from engine.queue import JobNotFound, QueueError, QueueUnavailable
from engine.queue.models import QueueDiskFull

log = logging.getLogger("api")


class ErrorOut(BaseModel):
    detail: str


def responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI entries for the error answers a route can give."""
    text = {
        400: "bad input (the message says which value and what to do)",
        401: "missing or wrong bearer token",
        404: "no such job, or no such file",
        409: "the queue or the GPU refuses it now",
        413: "upload larger than api.max_upload_mb",
        422: "a parameter has the wrong type or is out of range",
        503: "the queue's database cannot be reached, or the data directory is read-only",
        507: "the data directory's disk is full",
    }
    return {code: {"model": ErrorOut, "description": text[code]} for code in codes}


def _where(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header", "body", "cookie"):
        kind, rest = parts[0], parts[1:]
        name = ".".join(rest) or kind
        return f"{kind} parameter {name!r}" if kind != "body" else f"form field {name!r}"
    return ".".join(parts) or "request"


def validation_message(exc: RequestValidationError) -> str:
    messages = []
    for err in exc.errors()[:5]:
        text = f"{_where(tuple(err.get('loc', ())))}: {err.get('msg', 'invalid')}"
        if "input" in err and err.get("type") != "missing" and not isinstance(err["input"], (dict, list)):
            shown = repr(err["input"])
            text += f" (got {shown[:60]}{'…' if len(shown) > 60 else ''})"
        messages.append(text)
    return "; ".join(messages) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc)}, status_code=422)

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(JobNotFound)
    async def not_found(request: Request, exc: JobNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(QueueUnavailable)
    async def queue_down(request: Request, exc: QueueUnavailable) -> JSONResponse:
        log.error("queue unavailable: %s", exc)
        return JSONResponse({"detail": f"the job queue is unavailable: {exc}"}, status_code=503)

    @app.exception_handler(QueueDiskFull)
    async def disk_full(request: Request, exc: QueueDiskFull) -> JSONResponse:
        log.error("disk full: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=507)

    @app.exception_handler(QueueError)
    async def queue_refused(request: Request, exc: QueueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the API's log has the details"}, status_code=500)
