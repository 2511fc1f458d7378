"""`python -m app` as a real process: every child starts, a crashed child is restarted, SIGTERM stops all."""

from __future__ import annotations

import os
import signal
import socket
import urllib.request

import psutil

from tests.conftest import start, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(proc) -> dict[str, psutil.Process]:
    found = {}
    for child in psutil.Process(proc.pid).children():
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:  # a child that just died and is not reaped yet
            continue
        for name, marker in (("collector", "-m collector"), ("engine", "-m engine serve"), ("api", "-m api"), ("ui", "streamlit run")):
            if marker in cmd:
                found[name] = child
    return found


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_python_m_app_starts_supervises_and_stops_everything(data_dir, tmp_path):
    ui, api = _free_port(), _free_port()
    log = tmp_path / "app.log"
    proc = start(["app", "--port", str(ui), "--api-port", str(api)], data_dir, log)
    try:
        children = wait_for(lambda: len(c := _children(proc)) == 4 and c, 60, what="four children")
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{ui}/") and _http_ok(f"http://127.0.0.1:{api}/api/jobs"), 120, interval=1, what="UI and API")
        first_collector = children["collector"].pid
        os.kill(first_collector, signal.SIGKILL)
        restarted = wait_for(lambda: (c := _children(proc).get("collector")) and c.pid != first_collector and c, 30, what="restart")
        assert restarted.is_running()
        assert "collector stopped (killed by SIGKILL); restarting" in log.read_text()
        pids = [c.pid for c in _children(proc).values()]
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
