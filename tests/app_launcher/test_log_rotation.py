"""The supervisor's child logs rotate by size and keep a bounded number of backups (app/log_rotation.py)."""

from __future__ import annotations

import sys

import pytest

from app.log_rotation import RotatingLog
from app.supervisor import Child, Supervisor
from tests.conftest import ROOT


def _lines(first: int, last: int) -> bytes:
    return b"".join(b"line %06d\n" % i for i in range(first, last))


def test_a_log_rotates_at_its_size_and_keeps_only_its_backups(tmp_path):
    log = RotatingLog(tmp_path / "engine.log", max_bytes=1000, backups=2)
    for i in range(100):  # 12 bytes a line, 10 lines a write: 120 bytes
        log.write(_lines(10 * i, 10 * i + 10))
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["engine.log", "engine.log.1", "engine.log.2"]
    assert all(p.stat().st_size < 1000 + 120 for p in tmp_path.iterdir())
    # Nothing lost or reordered within what is kept: .2, .1 and the log are the newest lines in order.
    kept = b"".join((tmp_path / n).read_bytes() for n in ("engine.log.2", "engine.log.1", "engine.log"))
    assert _lines(0, 1000).endswith(kept) and kept.endswith(b"line 000999\n")


def test_without_backups_a_full_log_starts_anew(tmp_path):
    log = RotatingLog(tmp_path / "api.log", max_bytes=100, backups=0)
    log.write(b"x" * 149 + b"\n")
    log.write(b"fresh\n")
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["api.log"]
    assert (tmp_path / "api.log").read_bytes() == b"fresh\n"


def test_a_log_deleted_while_in_use_is_created_again(tmp_path):
    log = RotatingLog(tmp_path / "ui.log", max_bytes=10_000, backups=1)
    log.write(b"before\n")
    (tmp_path / "ui.log").unlink()
    log.write(b"after\n")
    log.close()
    assert (tmp_path / "ui.log").read_bytes() == b"after\n"


def test_a_bad_limit_is_refused():
    with pytest.raises(ValueError, match="max_bytes"):
        RotatingLog(ROOT / "x.log", max_bytes=0, backups=1)


def test_a_supervised_childs_output_rotates_into_bounded_backups(tmp_path):
    script = "import sys\nfor i in range(20000):\n    sys.stdout.write('child line %06d\\n' % i)\nsys.stdout.flush()\n"
    child = Child("chatty", [sys.executable, "-c", script])
    supervisor = Supervisor([child], tmp_path / "logs", ROOT, log_max_bytes=50_000, log_backups=3)
    supervisor._start(child)
    assert child.proc.wait(timeout=60) == 0
    supervisor.stop_all()  # drains the pipe into the log
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["chatty.log", "chatty.log.1", "chatty.log.2", "chatty.log.3"]
    assert all(p.stat().st_size < 50_000 + 64 * 1024 for p in logs.iterdir())
    kept = "".join((logs / n).read_text() for n in ("chatty.log.3", "chatty.log.2", "chatty.log.1", "chatty.log"))
    assert kept.endswith("child line 019999\n")  # in chatty.log, or in .1 if the last write filled it
    numbers = [int(line.split()[-1]) for line in kept.splitlines()]
    assert numbers == list(range(numbers[0], 20000))  # contiguous: every line since the oldest backup kept


def test_a_line_split_across_two_writes_stays_in_one_file(tmp_path):
    log = RotatingLog(tmp_path / "w.log", max_bytes=20, backups=1)
    log.write(b"0123456789012345678901\nhal")  # over the limit with a line begun
    log.write(b"f a line\n")
    log.close()
    assert (tmp_path / "w.log.1").read_bytes() == b"0123456789012345678901\n"
    assert (tmp_path / "w.log").read_bytes() == b"half a line\n"
