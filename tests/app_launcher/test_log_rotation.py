"""The supervisor's child logs rotate by size and keep a bounded number of backups (app/log_rotation.py)."""

from __future__ import annotations

import signal
import sys
import threading

import pytest

from app.log_rotation import rotate_if_large
from app.supervisor import Child, Supervisor
from tests.conftest import ROOT

# A child that logs a numbered line every millisecond for about 3 s.
CHATTY = ("import sys, time\nfor i in range(3000):\n    sys.stdout.write('child line %06d\\n' % i)\n"
          "    sys.stdout.flush()\n    time.sleep(0.001)\n")


def test_a_log_below_its_size_is_left_alone(tmp_path):
    log = tmp_path / "api.log"
    log.write_bytes(b"x" * 99)
    assert not rotate_if_large(log, max_bytes=100, backups=2)
    assert [p.name for p in tmp_path.iterdir()] == ["api.log"]


def test_a_full_log_moves_to_its_first_backup_and_the_oldest_is_dropped(tmp_path):
    log = tmp_path / "api.log"
    for content in (b"first\n", b"second\n", b"third\n", b"fourth\n"):
        log.write_bytes(log.read_bytes() + content if log.exists() else content)
        assert rotate_if_large(log, max_bytes=1, backups=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["api.log", "api.log.1", "api.log.2"]
    assert (log.read_bytes(), (tmp_path / "api.log.1").read_bytes(), (tmp_path / "api.log.2").read_bytes()) == (
        b"", b"fourth\n", b"third\n")


def test_without_backups_a_full_log_is_emptied(tmp_path):
    log = tmp_path / "api.log"
    log.write_bytes(b"x" * 150)
    assert rotate_if_large(log, max_bytes=100, backups=0)
    assert [p.name for p in tmp_path.iterdir()] == ["api.log"] and log.read_bytes() == b""


def test_a_missing_log_or_a_bad_limit(tmp_path):
    assert not rotate_if_large(tmp_path / "none.log", max_bytes=10, backups=1)
    with pytest.raises(ValueError, match="max_bytes"):
        rotate_if_large(tmp_path / "none.log", max_bytes=0, backups=1)


def test_a_running_child_keeps_writing_at_the_start_of_its_rotated_log(tmp_path):
    """The supervisor's loop rotates a child's log while the child writes: the files stay bounded, the child's
    writes land at the start of the emptied file (append mode: no hole of zero bytes), lines stay in order."""
    child = Child("chatty", [sys.executable, "-c", CHATTY])
    supervisor = Supervisor([child], tmp_path / "logs", ROOT, log_max_bytes=4_000, log_backups=3)
    supervisor._start(child)
    rotations = 0
    while child.proc.poll() is None:
        rotations += len(supervisor.rotate_logs())
        threading.Event().wait(0.05)
    assert child.proc.returncode == 0 and rotations >= 5
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["chatty.log", "chatty.log.1", "chatty.log.2", "chatty.log.3"]
    kept = b"".join((logs / n).read_bytes() for n in ("chatty.log.3", "chatty.log.2", "chatty.log.1", "chatty.log"))
    assert b"\0" not in kept
    numbers = [int(line.split()[-1]) for line in kept.decode().splitlines() if line.startswith("child line ")]
    assert numbers == sorted(numbers) and numbers[-1] == 2999


def test_the_supervisor_rotates_its_childrens_logs_as_it_runs(tmp_path, monkeypatch):
    monkeypatch.setattr("app.supervisor._ROTATE_EVERY_S", 0.2)
    child = Child("chatty", [sys.executable, "-c", CHATTY + "time.sleep(60)\n"])
    supervisor = Supervisor([child], tmp_path / "logs", ROOT, log_max_bytes=4_000, log_backups=2)
    stop = threading.Timer(4.0, lambda: setattr(supervisor, "stopping", True))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # run() installs its own
    stop.start()
    try:
        assert supervisor.run() == 0
    finally:
        stop.cancel()
        for number, handler in handlers.items():
            signal.signal(number, handler)
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["chatty.log", "chatty.log.1", "chatty.log.2"]
    assert all(p.stat().st_size < 4_000 + 8_000 for p in logs.iterdir())
