"""`python -m app` as a real process: every child starts, a crashed child is restarted, SIGTERM stops all."""

from __future__ import annotations

import os
import signal

import psutil

from benchmarks.harness import free_port, http_ok, wait_for
from tests.conftest import launcher_children, start


def test_python_m_app_starts_supervises_and_stops_everything(data_dir, tmp_path):
    ui, api = free_port(), free_port()
    log = tmp_path / "app.log"
    proc = start(["app", "--port", str(ui), "--api-port", str(api)], data_dir, log)
    try:
        children = wait_for(lambda: len(c := launcher_children(proc.pid)) == 4 and c, 60, what="four children")
        wait_for(lambda: http_ok(f"http://127.0.0.1:{ui}/") and http_ok(f"http://127.0.0.1:{api}/api/jobs"), 120, interval=1, what="UI and API")
        first_collector = children["collector"].pid
        os.kill(first_collector, signal.SIGKILL)
        restarted = wait_for(lambda: (c := launcher_children(proc.pid).get("collector")) and c.pid != first_collector and c, 30, what="restart")
        assert restarted.is_running()
        assert "collector stopped (killed by SIGKILL); restarting" in log.read_text()
        pids = [c.pid for c in launcher_children(proc.pid).values()]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert not [pid for pid in pids if _alive(pid)]
    assert (data_dir / "logs" / "engine-cpu.log").exists()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
