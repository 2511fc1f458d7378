"""What `python -m engine submit --wait` shows while the job runs: a tqdm bar on a terminal (stage, step i/N,
elapsed and the engine's own ETA), plain lines elsewhere, so a log file gets no carriage returns."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO

from engine.queue import Job
from engine.queue.models import QUEUED


def clock(seconds: float | None) -> str:
    """0:07, 3:05, 1:02:09; '?' while not known."""
    if seconds is None or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass(frozen=True)
class Reading:
    """One poll of the job, as the display needs it."""

    state: str
    stage: str
    step: int
    total_steps: int
    expert: str | None
    elapsed_s: float
    eta_s: float | None
    eta_margin_s: float | None = None

    @property
    def eta(self) -> str:
        """'0:42 ±0:05': the engine's ETA and the uncertainty it states."""
        margin = f" ±{clock(self.eta_margin_s)}" if self.eta_s is not None and self.eta_margin_s else ""
        return f"{clock(self.eta_s)}{margin}"

    @classmethod
    def of(cls, job: Job, waited_s: float) -> Reading:
        p = job.progress
        stage = p.stage or ("waiting in the queue" if job.state == QUEUED else "starting")
        # the engine's elapsed time counts from the job's start; until it reports one, the time waited here
        elapsed = p.elapsed_s if p.elapsed_s is not None else waited_s
        return cls(job.state, stage, p.step, p.total_steps, p.expert, elapsed, p.eta_s, p.eta_margin_s)

    def line(self) -> str:
        expert = f" ({self.expert})" if self.expert else ""
        steps = f" step {self.step}/{self.total_steps}" if self.total_steps else ""
        return f"{self.state} {self.stage}{steps}{expert}  elapsed {clock(self.elapsed_s)}  ETA {self.eta}"


class WaitProgress:
    """Feed it each poll with `update(job)`; `close()` at the end. `tty` decides the mode (default: whether
    `stream` is a terminal)."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None, plain_every_s: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.plain_every_s = plain_every_s
        self.started = time.monotonic()
        self._bar = None
        self._last: Reading | None = None
        self._last_line_at = 0.0

    def update(self, job: Job) -> None:
        reading = Reading.of(job, time.monotonic() - self.started)
        if self.tty:
            self._draw(reading)
        else:
            self._print(reading)
        self._last = reading

    def _draw(self, r: Reading) -> None:
        from tqdm import tqdm

        expert = f" ({r.expert})" if r.expert else ""
        description = f"{r.state} {r.stage}{expert}"
        # the engine's clock and ETA, not tqdm's: tqdm would time the polls, and the engine's ETA has the decode and
        # the export still to come in it
        times = f"elapsed {clock(r.elapsed_s)}  ETA {r.eta}"
        if self._bar is None:
            self._bar = tqdm(total=r.total_steps or None, initial=r.step, desc=description, postfix=times,
                             file=self.stream, dynamic_ncols=True, leave=True,
                             bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} steps{postfix}")
            return
        bar = self._bar
        if r.total_steps and bar.total != r.total_steps:
            bar.total = r.total_steps
        bar.n = r.step
        bar.set_description_str(description, refresh=False)
        bar.set_postfix_str(times, refresh=False)
        bar.refresh()

    def _print(self, r: Reading) -> None:
        now = time.monotonic()
        changed_stage = self._last is None or (r.state, r.stage, r.expert) != (
            self._last.state, self._last.stage, self._last.expert)
        moved = self._last is not None and r.step != self._last.step
        # a line for every stage and state; steps at most every plain_every_s, so a long job's log stays short
        if changed_stage or (moved and now - self._last_line_at >= self.plain_every_s):
            print(r.line(), file=self.stream, flush=True)
            self._last_line_at = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
