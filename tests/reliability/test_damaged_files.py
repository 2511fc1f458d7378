"""A damaged queue database, a video deleted by hand: every surface says what happened and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

from data.paths import DataPaths
from engine.queue import JobParams, QueueUnavailable
from engine.queue.sqlite import SqliteJobQueue
from tests.conftest import ROOT, start
from tests.reliability.crash_checks import engine_cli

PAGES = ROOT / "pages"
PARAMS = JobParams(model="tiny", prompt="a cat", height=64, width=64, frames=2, steps=2)


def _garbage(db: Path) -> None:
    db.write_bytes(b"this is not a database, it was overwritten by hand\n" * 200)


def _malformed(db: Path) -> None:
    """A real queue whose pages after the header are overwritten: SQLite opens it, then fails on reads."""
    queue = SqliteJobQueue(db)
    for i in range(300):
        queue.submit(PARAMS, "in.png", job_id=f"{i:032x}")
    con = queue._con()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    with db.open("r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xde\xad\xbe\xef" * 4096)


DAMAGE = {"garbage": _garbage, "malformed": _malformed}


@pytest.mark.parametrize("damage", DAMAGE)
def test_every_surface_says_the_queue_is_damaged_and_how_to_recover(damage, data_dir, paths, tmp_path, monkeypatch):
    db = DataPaths(data_dir).queue_db
    DAMAGE[damage](db)
    advice = f"mv {db} {db}.damaged"

    # the queue itself
    with pytest.raises(QueueUnavailable, match="move it aside"):
        SqliteJobQueue(db).list()

    # the CLI: one line, no traceback
    out = engine_cli(data_dir, "list")
    assert out.returncode != 0 and advice in out.stderr and "Traceback" not in out.stderr, out.stderr

    # the worker: exits with the message (the supervisor restarts it with a back-off)
    log = tmp_path / "worker.log"
    worker = start(["engine", "serve"], data_dir, log)
    assert worker.wait(timeout=120) != 0
    assert advice in log.read_text() and "Traceback" not in log.read_text(), log.read_text()[-3000:]

    # the API starts all the same: 503 with the message on queue routes; history and health still answer
    from api.app import create_app

    with TestClient(create_app()) as client:
        r = client.get("/api/jobs")
        assert r.status_code == 503 and advice in r.json()["detail"]
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/runs").status_code == 200

    # the UI: the page renders with the message
    at = AppTest.from_file(str(PAGES / "generate.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert "job queue" in errors and advice in errors, errors

    # moved aside as the message says: a new empty queue works
    db.rename(db.with_name("queue.db.damaged"))
    for suffix in ("-wal", "-shm"):
        db.with_name("queue.db" + suffix).unlink(missing_ok=True)
    assert engine_cli(data_dir, "list").returncode == 0


def test_a_video_deleted_by_hand_is_a_404_with_a_message_and_a_note_in_the_ui(data_dir, paths, png_bytes):
    from api.app import create_app

    queue = SqliteJobQueue(paths.queue_db)
    job = queue.submit(PARAMS, "in.png", job_id="ab" * 16)
    queue.claim("w", None, 30)
    video = paths.job_dir(job.id) / "video.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    queue.finish(job.id, "w", "succeeded", result={"video_path": str(video), "smoke_test": True})
    video.unlink()  # by hand

    with TestClient(create_app()) as client:
        r = client.get(f"/api/jobs/{job.id}/video")
        assert r.status_code == 404 and "deleted or moved" in r.json()["detail"]
        assert client.get(f"/api/jobs/{job.id}").status_code == 200

    at = AppTest.from_file(str(PAGES / "generate.py"), default_timeout=60)
    at.session_state["gen_job_id"] = job.id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Video file not found" in w.value for w in at.warning), [w.value for w in at.warning]
