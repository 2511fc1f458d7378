"""Server-sent events (text/event-stream): a job's progress until it ends, and the alerts firing.

Both streams poll what the routes read anyway (the queue's row of the job; the collector's live alerts file)
every POLL_S and send an event only when something changed, with a comment line every KEEPALIVE_S so that
proxies keep an idle stream open. Each event has an `id` (1, 2, …). A client that disconnects is noticed at the
next poll and its stream stops.

    event: progress            (a job's stream: the job's JSON, as GET /api/jobs/{id} without `events`)
    event: end                 (the job reached a final state: its final JSON; the stream then closes)
    event: alerts              (the alerts stream: `active`, and the rule keys `fired` and `resolved` since the last)
    event: error               (what the stream reads failed, e.g. the queue's database went away: an RFC 9457
                                problem; the stream then closes and the client may reconnect)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.errors import problem_body

log = logging.getLogger("api")

POLL_S = 0.5
KEEPALIVE_S = 15.0
MEDIA_TYPE = "text/event-stream"


def event(name: str, data: Any, event_id: int) -> str:
    """One event in the text/event-stream format; `data` as one line of JSON."""
    return f"event: {name}\nid: {event_id}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def response(events: AsyncIterator[str]) -> StreamingResponse:
    # no-cache and X-Accel-Buffering: proxies (nginx) must pass each event on at once, not buffer the stream.
    return StreamingResponse(events, media_type=MEDIA_TYPE,
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def job_events(request: Request, read: Callable[[], tuple[dict, tuple, bool]]) -> AsyncIterator[str]:
    """`read()` → (the job's JSON, what identifies its progress, whether it is final), called in a thread."""
    sent, last_key, last_at = 0, None, time.monotonic()
    while True:
        try:
            body, key, final = await run_in_threadpool(read)
        except Exception as exc:  # no traceback to the client: a problem event, then the end of the stream
            log.exception("job event stream stopped")
            yield event("error", problem_body(503, f"the job cannot be read now: {exc}"), sent + 1)
            return
        if final:
            yield event("end", body, sent + 1)
            return
        if key != last_key:
            sent, last_key, last_at = sent + 1, key, time.monotonic()
            yield event("progress", body, sent)
        elif time.monotonic() - last_at > KEEPALIVE_S:
            last_at = time.monotonic()
            yield ": keep-alive\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S)


async def alert_events(request: Request, read: Callable[[], list[dict]]) -> AsyncIterator[str]:
    """`read()` → the alerts firing now (dicts with host, gpu_index, rule), called in a thread. The first event
    is the current state; later ones come when an alert fires or resolves."""
    sent, last, last_at = 0, None, time.monotonic()
    while True:
        try:
            active = await run_in_threadpool(read)
        except Exception as exc:
            log.exception("alert event stream stopped")
            yield event("error", problem_body(503, f"the alerts cannot be read now: {exc}"), sent + 1)
            return
        keys = {f"{a.get('host')}/{a.get('gpu_index')}/{a.get('rule')}": a for a in active}
        if last is None or set(keys) != last:
            before = last or set()
            sent, last_at = sent + 1, time.monotonic()
            yield event("alerts", {"active": active, "fired": sorted(set(keys) - before),
                                   "resolved": sorted(before - set(keys))}, sent)
            last = set(keys)
        elif time.monotonic() - last_at > KEEPALIVE_S:
            last_at = time.monotonic()
            yield ": keep-alive\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S)
