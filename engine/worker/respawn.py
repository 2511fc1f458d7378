"""`python -m engine serve`: the worker runs in a child process, started again whenever it asks to be.

A worker asks to be restarted (exits with EXIT_RESTART_ME) when only a new process frees its GPU: the watchdog
ended a job stuck in a CUDA call that never returns (engine.worker.watchdog), or three out-of-memory failures in a
row left the allocator fragmented. This parent holds no GPU and imports no torch; it forwards SIGTERM / SIGINT to
the worker (which stops after its current step) and exits with the worker's code otherwise.
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

log = logging.getLogger(__name__)

# The worker's exit code for "restart me" (`python -m app`'s supervisor knows it too).
EXIT_RESTART_ME = 75
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_QUICK_RESTART_S = 60.0  # a worker that asks again within this long is restarted after a back-off
_MAX_BACKOFF_S = 30.0


# Copied from app.supervisor._die_with_parent (the engine does not import the app).
def _die_with_parent():
    """A `preexec_fn` for Linux: the worker gets SIGTERM (and stops cleanly) when this parent dies, even by SIGKILL."""
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
    while True:
        started = time.monotonic()
        child = subprocess.Popen(worker_argv(gpu_index), preexec_fn=_die_with_parent())
        if stopping:  # asked to stop while it was being started
            child.send_signal(signal.SIGTERM)
        code = child.wait()
        if stopping or code != EXIT_RESTART_ME:
            return code if code >= 0 else 128 - code
        quick_restarts = quick_restarts + 1 if time.monotonic() - started < _QUICK_RESTART_S else 0
        delay = min(_MAX_BACKOFF_S, 2.0 ** max(0, quick_restarts - 1) - 1)  # 0, 1, 3, 7 … s
        log.warning("worker pid %d asked to be restarted (exit %d: its GPU is freed only by a new process); "
                    "starting a new one%s", child.pid, code, f" in {delay:.0f} s" if delay else "")
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping:
            return 0
