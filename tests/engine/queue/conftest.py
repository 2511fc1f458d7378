"""The queue contract runs against every backend: SQLite (a file in tmp_path) and PostgreSQL (a real
server started from Debian's binaries for the session; a fresh database per test)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks.pg_server import PostgresServer, postgres_bin_dir
from engine.queue import JobQueue, open_queue


@pytest.fixture(scope="session")
def postgres_server():
    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL binaries not installed (Debian package `postgresql`; `scripts/setup dev` installs it)")
    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def queue_url(request, tmp_path) -> str:
    """A URL of an empty queue; open it in any process with open_queue."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return request.getfixturevalue("postgres_server").create_database()


@pytest.fixture
def queue(queue_url) -> JobQueue:
    return open_queue(SimpleNamespace(queue_url=queue_url))
