"""`python -m engine serve` runs its worker in a child process: a stop request reaches the worker through it."""

from __future__ import annotations

import signal

import psutil

from benchmarks.harness import wait_for
from engine.worker import respawn, worker
from tests.conftest import start


def test_the_worker_and_engine_serve_agree_on_the_restart_code():
    assert worker.EXIT_RESTART_ME == respawn.EXIT_RESTART_ME == 75


def test_sigterm_to_engine_serve_alone_stops_its_worker_and_both_exit_cleanly(data_dir, tmp_path):
    log = tmp_path / "serve.log"
    serve = start(["engine", "serve"], data_dir, log)
    try:
        child = wait_for(lambda: next(iter(psutil.Process(serve.pid).children()), None), 60, what="the worker process")
        assert "--no-respawn" in child.cmdline()
        wait_for(lambda: "engine worker" in log.read_text(), 120, what="the worker to start serving")
        serve.send_signal(signal.SIGTERM)  # as `python -m app`'s supervisor stops it: the parent only
        assert serve.wait(timeout=60) == 0, log.read_text()[-2000:]
        assert not psutil.pid_exists(child.pid) or child.status() == psutil.STATUS_ZOMBIE
    finally:
        if serve.poll() is None:
            serve.kill()
