"""kill -9 of the Streamlit server (restarted, serves again) and of `python -m app` itself (no orphans)."""

from __future__ import annotations

import os
import signal

import psutil

from benchmarks.harness import free_port, http_ok, wait_for
from tests.conftest import launcher_children, start


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_ui_is_restarted_and_a_killed_launcher_leaves_no_orphans(data_dir, tmp_path):
    ui_port, api_port = free_port(), free_port()
    args = ["app", "--port", str(ui_port), "--api-port", str(api_port)]
    ui_health = f"http://127.0.0.1:{ui_port}/_stcore/health"
    app = start(args, data_dir, tmp_path / "app.log")
    try:
        children = wait_for(lambda: len(c := launcher_children(app.pid)) == 4 and c, 60, what="four children")
        wait_for(lambda: http_ok(ui_health), 120, interval=0.5, what="the UI")

        # 1. kill -9 of the Streamlit server: the supervisor starts it again and the page serves
        os.kill(children["ui"].pid, signal.SIGKILL)
        wait_for(lambda: (c := launcher_children(app.pid).get("ui")) and c.pid != children["ui"].pid, 30, what="a new UI")
        wait_for(lambda: http_ok(ui_health) and http_ok(f"http://127.0.0.1:{ui_port}/"), 120, interval=0.5, what="the UI again")
        assert "ui stopped (killed by SIGKILL); restarting" in (tmp_path / "app.log").read_text()

        # 2. kill -9 of python -m app: every child stops by itself (none keeps a port or a GPU)
        orphans = list(launcher_children(app.pid).values())
        os.kill(app.pid, signal.SIGKILL)
        app.wait(timeout=10)
        wait_for(lambda: not any(_alive(p) for p in orphans), 60, interval=0.5,
                 what=f"the children to stop: {[p.pid for p in orphans if _alive(p)]}")
    finally:
        if app.poll() is None:
            app.send_signal(signal.SIGTERM)
            app.wait(timeout=60)

    # 3. started again, everything comes back on the same ports
    again = start(args, data_dir, tmp_path / "app2.log")
    try:
        wait_for(lambda: len(launcher_children(again.pid)) == 4, 60, what="four children again")
        wait_for(lambda: http_ok(ui_health) and http_ok(f"http://127.0.0.1:{api_port}/api/jobs"), 120, interval=0.5,
                 what="UI and API again")
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=60) == 0
    assert "Traceback" not in (data_dir / "logs" / "engine-cpu.log").read_text()
