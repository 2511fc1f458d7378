"""`python -m engine serve`: the worker runs in a child process, started again whenever it asks to be.

A worker asks to be restarted (exits with EXIT_RESTART_ME) when only a new process frees its GPU: the watchdog
ended a job stuck in a CUDA call that never returns (engine.worker.watchdog), or three out-of-memory failures in a
row left the allocator fragmented. The watchdog runs on the worker's heartbeat thread; a hang that freezes the whole
process (a call that never returns and never lets go of the GIL) stops the heartbeat too, and this parent sees
that: the running job's heartbeat unchanged for `engine.frozen_worker_s` — the worker is killed and a new one
started, which reaps the job (`worker died during <stage>`: requeued once, or failed). This parent holds no GPU and
imports no torch; it forwards SIGTERM / SIGINT to the worker (which stops after its current step) and exits with
the worker's code otherwise.
`python -m engine serve --no-respawn` runs the worker in the process itself (for another supervisor to restart).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Callable

log = logging.getLogger(__name__)

# The worker's exit code for "restart me" (`python -m app`'s supervisor knows it too).
EXIT_RESTART_ME = 75
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_QUICK_RESTART_S = 60.0  # a worker that asks again within this long is restarted after a back-off
_MAX_BACKOFF_S = 30.0


def die_with_parent():
    """A `preexec_fn` for Linux: the child gets SIGTERM (and stops cleanly) when its parent dies, even by SIGKILL,
    so a killed parent (`engine serve`, `python -m app`) leaves no orphans holding ports and GPUs."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: only the prctl call runs in the child
    parent = os.getpid()

    def in_child() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


def worker_argv(gpu_index: int | None) -> list[str]:
    """The worker process's command line."""
    gpu = ["--gpu", str(gpu_index)] if gpu_index is not None else []
    return [sys.executable, "-m", "engine", "serve", "--no-respawn", *gpu]


class SilentHeartbeat:
    """Tells when worker `pid`'s running job has had no heartbeat for `silence_s` (by when this parent last saw the
    job's heartbeat time change: no clock is compared with the queue's)."""

    def __init__(self, running_jobs: Callable[[], list], silence_s: float) -> None:
        self.running_jobs, self.silence_s = running_jobs, silence_s
        self._mark: tuple | None = None
        self._since = 0.0

    def check(self, pid: int, now: float) -> str | None:
        """Why the worker counts as frozen, or None."""
        try:
            jobs = [j for j in self.running_jobs() if j.worker_id and j.worker_id.split(":")[1:2] == [str(pid)]]
        except Exception as exc:  # a busy or unreadable queue says nothing about the worker
            log.debug("queue unreadable while watching worker %d: %s", pid, exc)
            return None
        if not jobs:
            self._mark = None
            return None
        job = jobs[0]
        mark = (job.id, job.heartbeat_at)
        if mark != self._mark:
            self._mark, self._since = mark, now
            return None
        if now - self._since < self.silence_s:
            return None
        return (f"job {job.id} has had no heartbeat for {now - self._since:.0f} s (engine.frozen_worker_s = "
                f"{self.silence_s:g}): the worker process is frozen")


def _silent_heartbeat() -> SilentHeartbeat | None:
    """The check of the worker's heartbeats, over the queue the worker uses; None where the queue cannot open."""
    try:
        from config import load_settings
        from engine.queue import open_queue
        from engine.queue.models import RUNNING

        settings = load_settings()
        queue = open_queue(settings)
    except Exception as exc:  # the worker says what is wrong with the settings or the queue, at its start
        log.warning("not watching the worker's heartbeats: %s", exc)
        return None
    silence = max(settings.engine.frozen_worker_s, settings.engine.lease_s)
    return SilentHeartbeat(lambda: queue.list((RUNNING,)), silence)


def serve_respawning(gpu_index: int | None) -> int:
    """Run the worker, start it again each time it exits asking to be; its exit code otherwise."""
    stopping = False
    child: subprocess.Popen | None = None

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    quick_restarts = 0
    silent = _silent_heartbeat()
    while True:
        started = time.monotonic()
        child = subprocess.Popen(worker_argv(gpu_index), preexec_fn=die_with_parent())
        if stopping:  # asked to stop while it was being started
            child.send_signal(signal.SIGTERM)
        code, frozen = _wait(child, silent, lambda: stopping)
        if frozen:
            log.error("worker pid %d: %s; killed, a new worker takes over", child.pid, frozen)
            code = EXIT_RESTART_ME
        if stopping or code != EXIT_RESTART_ME:
            return code if code >= 0 else 128 - code
        quick_restarts = quick_restarts + 1 if time.monotonic() - started < _QUICK_RESTART_S else 0
        delay = min(_MAX_BACKOFF_S, 2.0 ** max(0, quick_restarts - 1) - 1)  # 0, 1, 3, 7 … s
        tell_restart(gpu_index, frozen or f"exit {code}: asked to be restarted", delay, asked=frozen is None)
        log.warning("worker pid %d asked to be restarted (exit %d: its GPU is freed only by a new process); "
                    "starting a new one%s", child.pid, code, f" in {delay:.0f} s" if delay else "")
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping:
            return 0


def tell_restart(gpu_index: int | None, why: str, delay_s: float, *, asked: bool) -> None:
    """Put the restart in the notification outbox (the collector delivers it), where targets are configured;
    never fatal: the worker is restarted whatever happens here."""
    try:
        from collector.notifications.events import worker_restart_event
        from collector.notifications.notifier import Notifier
        from config import load_settings
        from data.paths import data_paths

        settings = load_settings()
        if not settings.notifications.targets:
            return
        name = f"engine-gpu{gpu_index}" if gpu_index is not None else "engine-cpu"
        Notifier(settings, data_paths(settings)).publish([worker_restart_event(
            settings.hostname, name, why, restart_in_s=delay_s, asked=asked)])
    except Exception as exc:  # noqa: BLE001 — telling someone must never stop the restart
        log.warning("the worker's restart was not notified: %s", exc)


def _wait(child: subprocess.Popen, silent: SilentHeartbeat | None, stopping: Callable[[], bool],
          poll_s: float = 1.0) -> tuple[int, str | None]:
    """Wait for the worker to exit; (its exit code, why it was killed as frozen or None)."""
    while (code := child.poll()) is None:
        time.sleep(poll_s)
        if silent is None or stopping():
            continue
        if (frozen := silent.check(child.pid, time.monotonic())) is not None:
            child.kill()  # SIGKILL reaches a process whatever it is stuck in; its GPU memory goes with it
            return child.wait(), frozen
    return code, None
