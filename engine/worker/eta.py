"""How long a running job has left, with a stated uncertainty, steady enough to plan with.

Three parts:
- `JobTrace`: what the stage clock knows now, as plain data (step times, the expert of each step, the stage and
  how long it has run), so recorded traces can be replayed in tests.
- `estimate()`: one raw reading. Before the first steps the prediction; then a robust pace — the median of the
  recent steps of the expert running now, leaving out its first step (CUDA's first kernel loads, a compile of a
  new shape) — times the steps left, plus the stages still to come: the decode (predicted, scaled as the steps
  are) with a compile of the decoder at a new shape in speed mode, export and scoring (as the worker's last job took them).
  A stage running past its expected time is expected to run a while longer, never to be over already.
- `EtaSmoother`: consecutive readings count down; a reading may rise by no more than the noise of a second
  (a tenth of the time left, at least half a second) and fall no faster than 40 % a second beyond the countdown,
  so no two readings a second apart differ by 2× even when the machine's load changes. The stated margin
  widens to cover a reading the smoother has not caught up with yet.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from engine.worker.clock import StageClock

# Stages after the loop, as a fraction of the loop, when nothing better is known (measured on
# the tiny model on CPU and the full-size models on an H100: decode+export is 3–10% of the loop).
_AFTER_LOOP_FRACTION = 0.08
# The pace is the median of the recent steps: at least this many, and as many as the last _RECENT_S seconds of
# steps hold (fast steps on a loaded machine come in bursts: a few tenths of a second of them say little). A spike
# shorter than half the window is ignored; a lasting change of pace shows once it fills half of it.
_RECENT_STEPS = 8
_RECENT_S = 10.0
_MIN_STEP_SPREAD = 0.02  # a timer's and a GPU's step-to-step jitter: the least relative uncertainty of a pace
_UNKNOWN_ERROR = 0.3  # relative error of a figure with no stated one (a prediction without expected_error)
_STAGE_ERROR = 0.25  # relative error of a stage's time taken from the last job (decode, export, scoring)
_COMPILE_ERROR = 0.5  # a compile's time varies with the machine's load and its caches
_OVERRUN = 0.5  # a stage past its expected time: expect it to run this fraction of its time so far again
_RISE_PER_S = 0.10  # the most a reading rises in a second beyond the countdown (fraction of the time left) …
_RISE_FLOOR_S = 0.5  # … or this many seconds, whichever is more
_FALL_PER_S = 0.40  # the most a reading falls in a second beyond the countdown (fraction of the time left)
_MAX_RATIO = 1.8  # nor does it move by more than this factor in a second (the countdown aside)
_MIN_MARGIN_S = 0.5
_MARGIN_HALF_LIFE_S = 1.0
_AFTER_DECODE = ("export_video", "quality_scoring")
_BEFORE_PIPELINE = ("model_load", "image_preprocess")  # before the pipeline call: not in the prediction's seconds
# A VAE decoder's first compile at a new shape in speed mode, when this worker has not timed one yet: measured on
# an H200 (SVD 576×1024×14, the first job of a new resolution): 17 s.
DECODER_COMPILE_PRIOR_S = 17.0


@dataclass(frozen=True)
class EtaReading:
    """Seconds left and the ± seconds around them the real time left is expected in; None: no estimate."""

    eta_s: float | None
    margin_s: float | None = None


@dataclass(frozen=True)
class JobTrace:
    """A running job as its stage clock sees it now."""

    total_steps: int
    step_times: list[float] = field(default_factory=list)  # the steps that have ended
    step_experts: list[str] = field(default_factory=list)  # the denoiser of each of them
    stage: str | None = None
    stage_elapsed_s: float = 0.0  # seconds the current stage has run so far
    open_step_s: float = 0.0  # seconds the step under way has run so far
    stages: dict[str, float] = field(default_factory=dict)  # seconds of each stage done
    elapsed_s: float = 0.0  # since the job started
    pipeline_elapsed_s: float | None = None  # since the pipeline call began (None: not in one, or not known)

    @classmethod
    def from_clock(cls, clock: StageClock, elapsed_s: float) -> "JobTrace":
        times = clock.completed_step_times
        stage_elapsed = max(clock.current_elapsed, clock.stages.get(clock.current or "", 0.0))
        return cls(total_steps=clock.total_steps, step_times=list(times), step_experts=list(clock.step_experts[:len(times)]),
                   stage=clock.current, stage_elapsed_s=stage_elapsed, open_step_s=clock.open_step_elapsed,
                   stages=dict(clock.stages), elapsed_s=elapsed_s, pipeline_elapsed_s=clock.pipeline_elapsed)


@dataclass(frozen=True)
class Pace:
    seconds: float  # per step from here on
    spread: float  # relative: the steps' mean distance from their median, over the median
    measured: int  # steps it rests on (0: the prediction's pace)


def step_pace(step_times: list[float], step_experts: list[str], predicted_s_per_step: float | None = None) -> Pace | None:
    """Seconds per step from here on: the median of the recent steps of the expert that ran last, leaving out
    each expert's first step (it pays one-time work: a compile of a new shape, first kernel loads, an offloaded
    expert's first transfer). Just after a mixture of experts handed over, the other expert's steps stand in (the
    two experts of a Wan 2.2 A14B are the same size); before any usable step, the prediction's pace; with only a
    first step, that step."""
    experts = step_experts if len(step_experts) == len(step_times) else [""] * len(step_times)
    first_use = {experts.index(name) for name in set(experts)}
    usable = [(t, e) for i, (t, e) in enumerate(zip(step_times, experts)) if i not in first_use]
    current = experts[-1] if experts else ""
    mine = [t for t, e in usable if e == current] or [t for t, _ in usable]
    recent = _recent(mine)
    if recent:
        median = statistics.median(recent)
        # The mean distance from the median: a spike the median leaves out still widens the margin while recent.
        spread = statistics.fmean(abs(t - median) for t in recent) / median if median > 0 else 0.0
        # Fewer than three steps cannot show their spread: as uncertain as a prediction.
        return Pace(median, max(spread, _MIN_STEP_SPREAD) if len(recent) >= 3 else _UNKNOWN_ERROR, len(recent))
    if predicted_s_per_step is not None:
        return Pace(float(predicted_s_per_step), _UNKNOWN_ERROR, 0)
    if step_times:
        return Pace(step_times[-1], _UNKNOWN_ERROR, 0)
    return None


def _recent(times: list[float]) -> list[float]:
    """The newest steps: at least _RECENT_STEPS, more while they add up to no more than _RECENT_S seconds."""
    count, total = 0, 0.0
    for t in reversed(times):
        if count >= _RECENT_STEPS and total + t > _RECENT_S:
            break
        count, total = count + 1, total + t
    return times[len(times) - count:]


def _stage_left(expected: float, so_far: float) -> float:
    """Seconds a stage expected to take `expected` has left after `so_far`: past its time, a while longer."""
    return max(expected - so_far, _OVERRUN * so_far) if so_far > expected else expected - so_far


def _quadrature(*parts: float) -> float:
    return math.sqrt(sum(p * p for p in parts))


def estimate(trace: JobTrace, predicted: dict, tail_s: dict[str, float] | None = None, *,
             decoder_compile_s: float = 0.0) -> EtaReading:
    """One raw reading of the time left. `predicted`: the job's prediction (engine.foresight: `seconds` from the
    pipeline call to the decode's end, `s_per_step`, `decode_s`, `expected_error`); `tail_s`: the stages of this
    worker's last job (export_video and quality_scoring follow the decode and the prediction does not cover them;
    model_load); `decoder_compile_s`: a compile of the VAE decoder in this job, part of the decode's time (speed
    mode, a new shape): expected while it is to come or under way, as measured once done."""
    tail = tail_s or {}
    error = predicted.get("expected_error")
    error = float(error) if isinstance(error, (int, float)) else _UNKNOWN_ERROR
    after = {s: tail.get(s, 0.0) for s in _AFTER_DECODE if s not in trace.stages}
    if trace.stage in after:  # export or scoring under way
        after[trace.stage] = _stage_left(after[trace.stage], trace.stage_elapsed_s)
    after_s = sum(after.values())
    after_margin = _STAGE_ERROR * after_s
    done = len(trace.step_times)
    total = trace.total_steps
    pace = step_pace(trace.step_times, trace.step_experts, predicted.get("s_per_step"))
    if done == 0 and trace.stage not in ("denoising_loop", "decode_video", *_AFTER_DECODE) or pace is None:
        return _before_the_loop(trace, predicted, tail, error, after_s, after_margin, decoder_compile_s)

    predicted_pace = predicted.get("s_per_step")
    decode_s = predicted.get("decode_s")
    if decode_s is not None:
        decode, decode_error = float(decode_s), error
        if pace is not None and pace.measured and predicted_pace:
            # A loaded machine slows the decode as it slows the steps; a wrong prediction of the pace is often
            # wrong the same way for the decode. Bounded: the decode is another kind of work.
            decode *= min(2.0, max(0.5, pace.seconds / float(predicted_pace)))
    else:
        decode = _AFTER_LOOP_FRACTION * (pace.seconds if pace else 0.0) * total
        decode_error = _UNKNOWN_ERROR
    decode += decoder_compile_s
    decode_margin = _quadrature(decode_error * (decode - decoder_compile_s), _COMPILE_ERROR * decoder_compile_s)

    if trace.stage == "decode_video":
        left = _stage_left(decode, trace.stage_elapsed_s)
        margin = max(decode_margin, left - (decode - trace.stage_elapsed_s))
        return _reading(left + after_s, _quadrature(margin, after_margin))
    if trace.stage in _AFTER_DECODE or "decode_video" in trace.stages:
        return _reading(after_s, after_margin)
    steps_left = max(total - done, 0)
    # The step under way has run part of its time; one running long (the first step's compile or first kernel
    # loads, a spike of load) is expected to run a while longer, not to be over.
    open_s = trace.open_step_s if done else max(trace.open_step_s, trace.stage_elapsed_s)
    current = _stage_left(pace.seconds, open_s) if steps_left else 0.0
    loop = max(0.0, (steps_left - 1) * pace.seconds + current) if steps_left else 0.0
    # The pace's error is systematic (a machine's load, a prediction's bias), so it adds up over the steps.
    loop_margin = loop * pace.spread + (current - (pace.seconds - open_s) if steps_left else 0.0)
    return _reading(loop + decode + after_s, _quadrature(loop_margin, decode_margin, after_margin))


def _before_the_loop(trace: JobTrace, predicted: dict, tail: dict[str, float], error: float, after_s: float,
                     after_margin: float, decoder_compile_s: float) -> EtaReading:
    seconds = predicted.get("seconds")
    if seconds is None:
        return EtaReading(None, None)
    # The prediction runs from the pipeline call (encoders) to the decode's end; loading and preprocessing come
    # before it (a cached pipeline loads in no time, so the last job's load is only a guess while one runs).
    before = sum(trace.stages.get(s, 0.0) for s in _BEFORE_PIPELINE)
    loading = 0.0
    if trace.stage is None:  # starting up (imports, the job's folder): all of the job is still to come
        loading = sum(tail.get(s, 0.0) for s in _BEFORE_PIPELINE)
        in_pipeline = 0.0
    elif trace.stage in _BEFORE_PIPELINE:
        before -= trace.stages.get(trace.stage, 0.0)
        loading = _stage_left(tail.get(trace.stage, 0.0), trace.stage_elapsed_s)
        in_pipeline = 0.0
    elif trace.pipeline_elapsed_s is not None:
        in_pipeline = trace.pipeline_elapsed_s
    else:  # the job's time less its loading (and its start-up, which is not known apart)
        in_pipeline = max(0.0, trace.elapsed_s - before)
    pipeline = _stage_left(float(seconds) + decoder_compile_s, in_pipeline)
    margin = _quadrature(error * float(seconds), _COMPILE_ERROR * decoder_compile_s, _STAGE_ERROR * loading,
                         max(0.0, pipeline - (float(seconds) + decoder_compile_s - in_pipeline)), after_margin)
    return _reading(loading + pipeline + after_s, margin)


def _reading(eta: float, margin: float) -> EtaReading:
    return EtaReading(max(0.0, eta), max(margin, _MIN_MARGIN_S))


def remaining_seconds(clock: StageClock, elapsed_s: float, predicted: dict, tail_s: dict[str, float] | None = None) -> float | None:
    """The raw reading's seconds left (see `estimate`)."""
    return estimate(JobTrace.from_clock(clock, elapsed_s), predicted, tail_s).eta_s


class EtaSmoother:
    """Turns raw readings into ones a person can watch: they count down, rise at most by a second's noise, fall
    at most 40 % a second beyond the countdown. One per running job."""

    def __init__(self) -> None:
        self._last: tuple[float, float, float] | None = None  # (when, eta_s, margin_s) of the last reading published

    def update(self, now_s: float, raw: EtaReading) -> EtaReading:
        """`now_s`: a monotonic clock's seconds. A raw reading with no estimate passes, and starts afresh."""
        if raw.eta_s is None:
            self._last = None
            return raw
        eta, margin = raw.eta_s, raw.margin_s or 0.0
        if self._last is not None:
            at, last, last_margin = self._last
            dt = max(0.0, now_s - at)
            expected = max(0.0, last - dt)
            # A rise within the noise of a second (or within the margin last stated) is allowed; the countdown
            # itself is never undone, and no reading is more than _MAX_RATIO of the last one beyond it.
            ratio = _MAX_RATIO ** max(dt, 0.5)
            noise = max(_RISE_FLOOR_S, _RISE_PER_S * expected, last_margin) * dt
            highest = max(expected, min(expected + noise, last * ratio))
            lowest = min(expected, max(expected * (1.0 - _FALL_PER_S) ** dt, last / ratio))
            eta = min(max(eta, lowest), highest)
            # The stated margin moves as smoothly: half-way to the raw one each _MARGIN_HALF_LIFE_S.
            margin = last_margin + (margin - last_margin) * (1.0 - 0.5 ** (dt / _MARGIN_HALF_LIFE_S))
        margin = max(margin, abs(raw.eta_s - eta), _MIN_MARGIN_S)
        self._last = (now_s, eta, margin)
        return EtaReading(eta, margin)
