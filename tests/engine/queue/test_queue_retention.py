"""Retention's queue operation, on each backend: only ended jobs' rows (and their events) are deleted."""

from __future__ import annotations

import pytest

from engine.queue import JobNotFound
from tests.engine.queue.test_queue_contract import submit


def test_delete_ended_removes_ended_rows_and_their_events_only(queue):
    for job_id in ("a", "b", "c", "d"):
        submit(queue, job_id)
    queue.claim("w", None, 30)  # a runs
    queue.claim("w", None, 30)  # b runs
    queue.finish("b", "w", "succeeded")
    queue.cancel("c")  # c ends before it ran; d stays queued

    assert queue.delete_ended(["a", "b", "c", "d", "unknown"]) == 2
    with pytest.raises(JobNotFound):
        queue.get("b")
    with pytest.raises(JobNotFound):
        queue.get("c")
    assert queue.events("b") == []
    assert (queue.get("a").state, queue.get("d").state) == ("running", "queued")


def test_delete_ended_of_nothing_deletes_nothing(queue):
    submit(queue, "a")
    assert queue.delete_ended([]) == 0
    assert queue.get("a").state == "queued"
