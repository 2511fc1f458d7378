"""The persistent job queue: an interface (base), its plain data (models), and backends."""

from __future__ import annotations

from pathlib import Path

from engine.queue.base import JobQueue
from engine.queue.models import Job, JobNotFound, JobParams, LeaseLost, Progress, QueueError, QueueUnavailable


def open_queue(settings: object) -> JobQueue:
    """The queue the settings name: `queue_url` empty → SQLite in the data dir; sqlite:///path → that file."""
    from data.paths import data_paths

    url: str = getattr(settings, "queue_url", "") or ""
    if url.startswith("sqlite:///"):
        from engine.queue.sqlite import SqliteJobQueue

        return SqliteJobQueue(Path(url.removeprefix("sqlite:///")))
    if url:
        raise QueueUnavailable(f"queue_url {url!r} is not sqlite:///<path>; only the SQLite backend exists so far")
    from engine.queue.sqlite import SqliteJobQueue

    return SqliteJobQueue(data_paths(settings).queue_db)


__all__ = ["Job", "JobNotFound", "JobParams", "JobQueue", "LeaseLost", "Progress", "QueueError", "QueueUnavailable", "open_queue"]
