"""Every error answer is an RFC 9457 problem: `application/problem+json` with `type`, `title`, `status` and
`detail` (the plain message clients read since the first version); no traceback ever reaches a client.

Domain errors map to 4xx here, once: bad input 400, unknown job 404, a queue refusing an operation
409, the queue's database unreachable or the data directory read-only 503, the data directory's disk full 507. Anything else is logged whole and answered 500.
A validation error (422) adds `errors`: each bad parameter's `where` and `message`. `type` is a URN naming the
kind of problem (`urn:i2vmon:problem:bad-input`), stable for clients to branch on; `title` is its short name.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.intake.validation import InputError
from engine.queue import JobNotFound, QueueError, QueueUnavailable
from engine.queue.models import QueueDiskFull

log = logging.getLogger("api")


PROBLEM_JSON = "application/problem+json"

# HTTP status → (type slug, title): the kinds of problem this API answers.
PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("bad-input", "Bad input"),
    401: ("unauthorized", "Missing or wrong bearer token"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("refused", "Refused by the queue or the GPU"),
    413: ("too-large", "Upload too large"),
    422: ("invalid-request", "Invalid request parameters"),
    500: ("internal-error", "Internal error"),
    503: ("unavailable", "Service unavailable"),
    507: ("disk-full", "Data directory full"),
}


def problem_type(status: int) -> str:
    slug = PROBLEMS.get(status, ("http-error", ""))[0]
    return f"urn:i2vmon:problem:{slug}"


class ErrorOut(BaseModel):
    """An RFC 9457 problem (application/problem+json); members beyond these four are route-specific."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


def problem_body(status: int, detail: str, **extensions: object) -> dict:
    known = PROBLEMS.get(status)
    try:
        title = known[1] if known else HTTPStatus(status).phrase
    except ValueError:  # not a status Python knows
        title = "Error"
    return {"type": problem_type(status), "title": title, "status": status, "detail": detail, **extensions}


def problem(status: int, detail: str, *, headers: dict | None = None, **extensions: object) -> JSONResponse:
    """The answer to an error: a problem+json body, keeping `detail` for clients that read only that."""
    return JSONResponse(problem_body(status, detail, **extensions), status_code=status, headers=headers,
                        media_type=PROBLEM_JSON)


def responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI entries for the error answers a route can give, each with an example problem."""
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
    return {code: {"model": ErrorOut, "description": text[code],
                   "content": {PROBLEM_JSON: {"example": problem_body(code, EXAMPLE_DETAILS[code])}}}
            for code in codes}


EXAMPLE_DETAILS = {
    400: "height 500 is not a multiple of 64 for i2vgen-xl; try 512",
    401: "missing bearer token: send the header Authorization: Bearer <api.token>",
    404: "no job 3f2a9c0e41d84b7f9a6c1e2d3b4a5f60",
    409: "job 3f2a9c0e41d84b7f9a6c1e2d3b4a5f60 is running; only queued jobs can be reordered",
    413: "the upload is 80.0 MiB; the limit is 50 MiB (the api.max_upload_mb setting)",
    422: "query parameter 'limit': Input should be greater than or equal to 1 (got 0)",
    503: "the job queue is unavailable: database is locked",
    507: "the data directory's disk is full",
}


def _where(loc: tuple, body: str = "form field") -> str:
    """Where a bad value is, as a person says it; `body`: what a body member is called (a form field of a
    multipart upload, a JSON body's field)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header", "body", "cookie"):
        kind, rest = parts[0], parts[1:]
        name = ".".join(rest) or kind
        return f"{kind} parameter {name!r}" if kind != "body" else f"{body} {name!r}"
    return ".".join(parts) or "request"


def validation_message(exc: RequestValidationError, body: str = "form field") -> str:
    messages = []
    for err in exc.errors()[:5]:
        text = f"{_where(tuple(err.get('loc', ())), body)}: {err.get('msg', 'invalid')}"
        if "input" in err and err.get("type") != "missing" and not isinstance(err["input"], (dict, list)):
            shown = repr(err["input"])
            text += f" (got {shown[:60]}{'…' if len(shown) > 60 else ''})"
        messages.append(text)
    return "; ".join(messages) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = "JSON field" if "json" in request.headers.get("content-type", "") else "form field"
        errors = [{"where": _where(tuple(e.get("loc", ())), body), "message": e.get("msg", "invalid")} for e in exc.errors()[:20]]
        return problem(422, validation_message(exc, body), errors=errors)

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> JSONResponse:
        return problem(400, str(exc))

    @app.exception_handler(JobNotFound)
    async def not_found(request: Request, exc: JobNotFound) -> JSONResponse:
        return problem(404, str(exc))

    @app.exception_handler(QueueUnavailable)
    async def queue_down(request: Request, exc: QueueUnavailable) -> JSONResponse:
        log.error("queue unavailable: %s", exc)
        return problem(503, f"the job queue is unavailable: {exc}")

    @app.exception_handler(QueueDiskFull)
    async def disk_full(request: Request, exc: QueueDiskFull) -> JSONResponse:
        log.error("disk full: %s", exc)
        return problem(507, str(exc))

    @app.exception_handler(QueueError)
    async def queue_refused(request: Request, exc: QueueError) -> JSONResponse:
        return problem(409, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem(500, "internal error; the API's log has the details")
