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


def test_a_worker_frozen_whole_is_killed_by_engine_serve_and_its_job_is_run_again_by_a_new_worker(data_dir, png_file, tmp_path):
    import os

    from tests.engine.worker.test_worker_process import _job, _submit, _wait_state

    job_id = _submit(data_dir, png_file, frames=4, steps=4, fps=4)
    log = tmp_path / "serve.log"
    # Each step is held 0.5 s, so the worker is inside its loop when it is frozen, heartbeat thread and all (a call
    # that never returns while holding the GIL looks the same from outside).
    serve = start(["engine", "serve"], data_dir, log, I2VMON_FAILPOINTS="denoising_step=sleep:0.5",
                  I2VMON_ENGINE__LEASE_S="2", I2VMON_ENGINE__HEARTBEAT_S="0.2", I2VMON_ENGINE__FROZEN_WORKER_S="4")
    try:
        wait_for(lambda: _job(data_dir, job_id)["progress"]["stage"] == "denoising_loop", 150, what="denoising")
        frozen = psutil.Process(int(_job(data_dir, job_id)["worker_id"].split(":")[1]))
        os.kill(frozen.pid, signal.SIGSTOP)
        job = _wait_state(data_dir, job_id, ("succeeded", "failed", "cancelled"), timeout=150)
        assert serve.poll() is None
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
    text = log.read_text()
    assert "has had no heartbeat for" in text and "killed, a new worker takes over" in text, text[-3000:]
    assert not psutil.pid_exists(frozen.pid) or frozen.status() == psutil.STATUS_ZOMBIE
    assert (job["state"], job["attempts"]) == ("succeeded", 2), text[-3000:]
    assert job["worker_id"].split(":")[1] != str(frozen.pid)


def test_a_restart_by_engine_serve_reaches_the_notification_outbox(data_dir, monkeypatch):
    import json

    from config import load_settings
    from data.outbox import open_outbox
    from data.paths import data_paths
    from engine.worker.respawn import tell_restart

    monkeypatch.setenv("I2VMON_NOTIFICATIONS__TARGETS", json.dumps(
        [{"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}]))
    tell_restart(0, "exit 75: asked to be restarted", 1.0, asked=True)
    outbox = open_outbox(data_paths(load_settings()))
    assert [s.pending for s in outbox.summary() if s.target == "ops"] == [1]
