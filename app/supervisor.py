"""Starts the product's processes, restarts any that dies, stops them all cleanly."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from app.log_rotation import rotate_if_large
from engine.worker.respawn import die_with_parent  # no torch: the restarting parent of `engine serve`

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 30.0
_STOP_GRACE_S = 20.0
_ROTATE_EVERY_S = 5.0  # how often the logs' sizes are checked: a log may pass its limit by 5 s of output


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0

    def describe_exit(self, code: int) -> str:
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        if code == 75:
            return "exit 75 (asked to be restarted: repeated out-of-memory failures, or the watchdog ended a hung job)"
        return f"exit code {code}"


# Told of every child that stopped and will be restarted: (child, its exit code, seconds until the restart).
RestartHook = Callable[["Child", int, float], None]


class Supervisor:
    def __init__(self, children: list[Child], log_dir: Path, cwd: Path, on_restart: RestartHook | None = None, *,
                 log_max_bytes: int = 20 * 2**20, log_backups: int = 5) -> None:
        self.children = children
        self.on_restart = on_restart
        self.log_dir = log_dir
        self.cwd = cwd
        self.log_max_bytes = log_max_bytes
        self.log_backups = log_backups
        self.stopping = False
        self._preexec = die_with_parent()

    def _start(self, child: Child) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = (self.log_dir / f"{child.name}.log").open("ab")  # append mode: rotation empties it in place
        child.proc = subprocess.Popen(
            child.argv, cwd=self.cwd, env={**os.environ, **child.env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops the children in order
            preexec_fn=self._preexec,  # and if the supervisor is killed, they stop too
        )
        out.close()  # the child has its own descriptor
        child.started_at = time.monotonic()
        log.info("started %s (pid %d): %s", child.name, child.proc.pid, " ".join(child.argv[1:]))

    def _last_lines(self, child: Child, n: int = 5) -> str:
        try:
            lines = (self.log_dir / f"{child.name}.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n    ".join(lines[-n:])

    def run(self) -> int:
        def stop(signum: int, _frame: object) -> None:
            log.info("signal %d: stopping every process", signum)
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for child in self.children:
            self._start(child)
        next_rotation = 0.0
        while not self.stopping:
            time.sleep(0.5)
            if time.monotonic() >= next_rotation:
                self.rotate_logs()
                next_rotation = time.monotonic() + _ROTATE_EVERY_S
            for child in self.children:
                if self.stopping:
                    break
                if child.proc is not None and (code := child.proc.poll()) is not None:
                    # A child that ran a while before dying starts again at once; one that keeps
                    # dying at start-up backs off, so a broken set-up does not spin.
                    lived = time.monotonic() - child.started_at
                    child.restarts = 0 if lived > 60 else child.restarts + 1
                    delay = min(_MAX_BACKOFF_S, 2 ** child.restarts - 1)
                    log.error("%s stopped (%s); restarting in %.0fs. Last lines of logs/%s.log:\n    %s",
                              child.name, child.describe_exit(code), delay, child.name, self._last_lines(child))
                    child.proc = None
                    child.next_start = time.monotonic() + delay
                    self._tell_restart(child, code, delay)
                if child.proc is None and time.monotonic() >= child.next_start:
                    self._start(child)
        self.stop_all()
        return 0

    def _tell_restart(self, child: Child, code: int, delay: float) -> None:
        if self.on_restart is None:
            return
        try:
            self.on_restart(child, code, delay)
        except Exception:  # noqa: BLE001 — telling someone must never stop the supervising
            log.exception("restart of %s not notified", child.name)

    def rotate_logs(self) -> list[str]:
        """Rotate each child's log that has reached its size (app/log_rotation.py); the names of those rotated."""
        rotated = []
        for child in self.children:
            try:
                if rotate_if_large(self.log_dir / f"{child.name}.log", max_bytes=self.log_max_bytes,
                                   backups=self.log_backups):
                    rotated.append(child.name)
            except OSError as exc:  # a full disk must not stop the supervision
                log.warning("could not rotate logs/%s.log: %s", child.name, exc)
        return rotated

    def stop_all(self) -> None:
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        for child in running:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                log.info("%s stopped", child.name)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs: killing it", child.name, _STOP_GRACE_S)
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
