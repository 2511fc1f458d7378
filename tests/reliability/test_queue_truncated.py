"""queue.db truncated to zero bytes while a worker runs a job: every surface says so within a second or two.

Before the fix a CLI command waited 30 s on SQLite's lock and then called the queue damaged, the API answered
500, and the worker went on finishing jobs into a WAL no other process could read, its heartbeats failing.
"""

from __future__ import annotations

import os
import time

import pytest
from fastapi.testclient import TestClient

from data.paths import DataPaths
from engine.queue import QueueUnavailable
from engine.queue.sqlite import SqliteJobQueue
from tests.conftest import start
from tests.reliability.crash_checks import engine_cli, kill9, stop, submit, wait_stage

FAST_LEASE = {"I2VMON_ENGINE__LEASE_S": "2", "I2VMON_ENGINE__HEARTBEAT_S": "0.3"}


def test_a_queue_file_truncated_under_a_running_worker_is_unavailable_at_once_everywhere(data_dir, png_file, tmp_path):
    job_id = submit(data_dir, png_file, frames=4, steps=40, fps=4)
    log = tmp_path / "worker.log"
    worker = start(["engine", "serve"], data_dir, log, I2VMON_FAILPOINTS="denoising_step=sleep:0.5", **FAST_LEASE)
    try:
        wait_stage(data_dir, job_id, "denoising_loop")
        db = DataPaths(data_dir).queue_db
        os.truncate(db, 0)

        # the queue itself: unavailable within a second, saying what happened
        t0 = time.monotonic()
        with pytest.raises(QueueUnavailable, match="truncated"):
            SqliteJobQueue(db).list()
        assert time.monotonic() - t0 < 1.0

        # the CLI: one line, exit 2, no 30 s wait on a lock, not "damaged"
        t0 = time.monotonic()
        out = engine_cli(data_dir, "list")
        took = time.monotonic() - t0
        assert out.returncode == 2 and "truncated" in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert "locked" not in out.stderr and took < 15, (took, out.stderr)

        # the API: 503 with the reason
        from api.app import create_app

        with TestClient(create_app()) as client:
            r = client.get("/api/jobs")
            assert r.status_code == 503 and "truncated" in r.json()["detail"], r.text
            assert client.get("/api/health").status_code == 200

        # the worker: stops at its next step and exits with the reason, instead of running on
        assert worker.wait(timeout=30) != 0, log.read_text()[-3000:]
        text = log.read_text()
        assert "truncated" in text and "Traceback" not in text, text[-3000:]
        assert "succeeded in" not in text, text[-3000:]
    finally:
        if worker.poll() is None:
            stop(worker)
            if worker.poll() is None:
                kill9(worker)


def test_a_queue_file_deleted_under_an_open_queue_is_unavailable_and_a_new_one_in_its_place_is_used(tmp_path):
    from engine.queue import JobParams

    params = JobParams(model="tiny", prompt="a cat", height=64, width=64, frames=2, steps=2)
    db = tmp_path / "queue.db"
    queue = SqliteJobQueue(db)
    queue.submit(params, "in.png", job_id="a" * 32)
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    with pytest.raises(QueueUnavailable, match="is gone"):
        queue.list()
    SqliteJobQueue(db).submit(params, "in.png", job_id="b" * 32)  # restarted: a new empty queue
    assert [j.id for j in queue.list()] == ["b" * 32]
