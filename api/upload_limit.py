"""The upload size limit (`api.max_upload_mb`): a request body beyond it is answered 413.

A declared Content-Length beyond the limit is refused before any byte is read; a body without one
(chunked) is counted as it streams in and refused when it passes the limit. Nothing is buffered here
(the multipart parser spools files to disk).
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PROBLEM_JSON, problem_body

_BODY_METHODS = {"POST", "PUT", "PATCH"}


def too_large(what: str, max_bytes: int) -> str:
    return (f"{what}; the limit is {max_bytes / 2**20:g} MiB (the api.max_upload_mb setting) — "
            "downscale or recompress the image")


class UploadLimit:
    """ASGI middleware around the whole app."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            body = json.dumps(problem_body(413, too_large(f"the upload is {int(declared) / 2**20:.1f} MiB", self.max_bytes))).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                                    (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the route's body parsing: FastAPI passes an HTTPException through, and the
                    # app's handler answers it as JSON.
                    raise HTTPException(413, too_large("the upload is larger than that", self.max_bytes))
            return message

        await self.app(scope, counted, send)
