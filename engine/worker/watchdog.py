"""The hung-job watchdog: when is a running job's current step (or stage) no longer just slow, but stuck?

A CUDA call that never returns leaves the worker's heartbeat thread running, renewing the lease forever, and the
stage clock's cancel check runs only between steps. The heartbeat therefore asks this watchdog, every beat, about
where the job is (stage and step) and for how long it has been there:

- a denoising step may run `watchdog_factor` × its expected time: the job's own median step once it has finished
  one, before that the predicted s/step (plus the first step's predicted warm-up); a stage the predictor times
  (the encoders, the decode) likewise; never less than `watchdog_min_s`. A compile of a new shape (minutes,
  unpredicted) has no step limit;
- a whole job may run `job_timeout_s`, whatever it is doing (the ceiling);
- a job asked to stop (cancel, a critical alert) that has not reached its next step boundary within
  `cancel_grace_s` (or two expected steps, if longer) is stuck too.

An `Overrun` is the verdict; the worker records it (error_kind `timeout`, or the cancel) and restarts its process,
the one sure way to free the GPU of a call that does not return. Pure logic: no torch, no clock of its own.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from data.schemas import CANCELLED

if TYPE_CHECKING:
    from config.settings import EngineSettings

LOOP_STAGE = "denoising_loop"
# Stages the predictor times (Prediction's fields), by the stage-timing keys.
_PREDICTED_STAGES = {"image_encoding": "encode_s", "text_encoding": "encode_s", "decode_video": "decode_s"}


@dataclass(frozen=True)
class Overrun:
    """Why the watchdog ends a job."""

    kind: Literal["timeout", "cancel_stuck"]
    stage: str | None
    step: int | None  # the step under way (1-based) when in the denoising loop, else None
    total_steps: int
    ran_s: float  # how long the job has been at this step (or stage; the whole job for the ceiling)
    limit_s: float
    basis: str  # what the limit is, in words

    @property
    def error_kind(self) -> str:
        return "timeout" if self.kind == "timeout" else CANCELLED  # as a cancel the job reached in time is

    def where(self) -> str:
        if self.step is not None:
            return f"step {self.step}/{self.total_steps} of {self.stage}"
        return self.stage or "start-up"

    def message(self, cancel_reason: str | None = None) -> str:
        if self.kind == "cancel_stuck":
            return (f"{cancel_reason or 'stop requested'} (during {self.stage or 'start-up'}: stuck in {self.where()} for "
                    f"{self.ran_s:.0f} s, past {self.basis}; the worker restarted to free the GPU)")
        return (f"timed out: {self.where()} ran {self.ran_s:.1f} s, over its limit of {self.limit_s:.1f} s "
                f"({self.basis}); the worker restarted to free the GPU")


class Watchdog:
    """Watches one job. `check` is called every heartbeat with where the job is; it remembers since when."""

    def __init__(self, engine: "EngineSettings", predicted: dict, total_steps: int, started: float) -> None:
        self.factor, self.min_s = engine.watchdog_factor, engine.watchdog_min_s
        self.ceiling_s, self.cancel_grace_s = engine.job_timeout_s, engine.cancel_grace_s
        self.predicted = predicted or {}
        self.total_steps = total_steps
        self.started = started
        self._position: tuple[str | None, int] | None = None
        self._since = started
        self._cancel_seen_at: float | None = None

    def expected_s(self, stage: str | None, completed_steps: list[float]) -> tuple[float, str] | None:
        """How long the job's current step (or stage) is expected to take, and from what; None: no expectation."""
        if stage == LOOP_STAGE:
            if completed_steps:
                return statistics.median(completed_steps), "this job's median step"
            per_step = self.predicted.get("s_per_step")
            if per_step is None:
                return None
            return float(per_step) + float(self.predicted.get("warmup_s") or 0.0), "the predicted first step"
        key = _PREDICTED_STAGES.get(stage or "")
        value = self.predicted.get(key) if key else None
        return (float(value), f"the predicted {stage}") if value is not None else None

    def check(self, *, stage: str | None, step: int, completed_steps: list[float], compiling: bool,
              cancel_reason: str | None, now: float) -> Overrun | None:
        """The verdict for the job at `stage`, `step` steps recorded, at monotonic time `now`; None: carry on."""
        position = (stage, step)
        if position != self._position:
            self._position, self._since = position, now
        ran = now - self._since
        under_way = step + 1 if stage == LOOP_STAGE and step < self.total_steps else None
        expected = None if compiling else self.expected_s(stage, completed_steps)

        if now - self.started > self.ceiling_s:
            return Overrun("timeout", stage, under_way, self.total_steps, now - self.started, self.ceiling_s,
                           f"the job ceiling, engine.job_timeout_s = {self.ceiling_s:.0f} s")
        if expected is not None:
            seconds, source = expected
            limit = max(self.min_s, self.factor * seconds)
            if ran > limit:
                return Overrun("timeout", stage, under_way, self.total_steps, ran, limit,
                               f"{self.factor:g} × {source} {seconds:.2f} s, at least {self.min_s:g} s")
        if cancel_reason is None:
            self._cancel_seen_at = None
            return None
        if self._cancel_seen_at is None:
            self._cancel_seen_at = now
        grace = max(self.cancel_grace_s, 2 * expected[0]) if expected is not None else self.cancel_grace_s
        if now - self._cancel_seen_at > grace:
            return Overrun("cancel_stuck", stage, under_way, self.total_steps, ran, grace,
                           f"the cancel grace of {grace:.0f} s")
        return None
