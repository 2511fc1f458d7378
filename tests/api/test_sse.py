"""api/sse.py's streams on their own: the event format, and a failing read ending the stream with a problem event."""

from __future__ import annotations

import asyncio
import json

from api import sse


class Connected:
    async def is_disconnected(self) -> bool:
        return False


def collect(stream) -> list[str]:
    async def run() -> list[str]:
        return [chunk async for chunk in stream]

    return asyncio.run(run())


def test_an_event_is_name_id_and_one_line_of_json():
    assert sse.event("progress", {"step": 2}, 7) == 'event: progress\nid: 7\ndata: {"step":2}\n\n'


def test_a_read_that_fails_ends_the_job_stream_with_a_problem_event():
    def read():
        raise OSError("database disk image is malformed")

    (chunk,) = collect(sse.job_events(Connected(), read))
    head, data = chunk.split("data: ")
    assert head.startswith("event: error\nid: 1\n")
    problem = json.loads(data)
    assert problem["status"] == 503 and "malformed" in problem["detail"] and problem["type"].endswith("unavailable")


def test_a_final_job_is_one_end_event():
    chunks = collect(sse.job_events(Connected(), lambda: ({"state": "x"}, (), True)))
    assert chunks == ['event: end\nid: 1\ndata: {"state":"x"}\n\n']
