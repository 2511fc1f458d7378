"""The persistent job queue: an interface (base), its plain data (models), and backends."""

from __future__ import annotations

from pathlib import Path

from engine.queue.base import JobQueue
from engine.queue.models import Job, JobNotFound, JobParams, LeaseLost, Progress, QueueError, QueueUnavailable


def open_queue(settings: object) -> JobQueue:
    """The queue the settings name: `queue_url` empty → SQLite in the data dir; sqlite:///path → that file;
    postgresql://… (or postgres://…) → that PostgreSQL database, shared by many hosts."""
    from data.paths import data_paths

    url: str = getattr(settings, "queue_url", "") or ""
    if url.startswith("sqlite:///"):
        from engine.queue.sqlite import SqliteJobQueue

        return SqliteJobQueue(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        from engine.queue.postgres import PostgresJobQueue

        return PostgresJobQueue(url)
    if url:
        from engine.queue.postgres import redact

        raise QueueUnavailable(
            f"queue_url {redact(url)!r} is neither sqlite:///<path> nor postgresql://user:password@host:port/dbname"
        )
    from engine.queue.sqlite import SqliteJobQueue

    return SqliteJobQueue(data_paths(settings).queue_db)


__all__ = ["Job", "JobNotFound", "JobParams", "JobQueue", "LeaseLost", "Progress", "QueueError", "QueueUnavailable", "open_queue"]
