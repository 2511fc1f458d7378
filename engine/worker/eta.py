"""How long a running job has left: its own step times once it has some, the prediction before."""

from __future__ import annotations

import statistics

from engine.worker.clock import StageClock

# Stages after the loop, as a fraction of the loop, when nothing better is known (measured on
# the tiny model on CPU and the full-size models on an H100: decode+export is 3–10% of the loop).
_AFTER_LOOP_FRACTION = 0.08


def remaining_seconds(clock: StageClock, elapsed_s: float, predicted: dict, tail_s: dict[str, float] | None = None) -> float | None:
    """`tail_s`: how long export_video and quality_scoring took on this worker's last job — they
    follow the loop and the decode, and the predictor does not cover them."""
    total = clock.total_steps
    # Only ended steps count: a step whose second denoiser call is still to come has half its time so far.
    done = len(clock.completed_step_times)
    decode_s = predicted.get("decode_s")
    tail = tail_s or {}
    after_decode = sum(tail.get(stage, 0.0) for stage in ("export_video", "quality_scoring") if stage not in clock.stages)
    if done:
        recent = _pace(clock, predicted)
        decode = decode_s if decode_s is not None else _AFTER_LOOP_FRACTION * recent * total
        if clock.current in ("decode_video", "export_video", "quality_scoring"):
            return max(0.0, decode - clock.stages.get("decode_video", 0.0)) + after_decode
        # the step under way has already run part of its time
        under_way = min(clock.open_step_elapsed, recent) if done < total else 0.0
        return max(0.0, (total - done) * recent - under_way + decode + after_decode)
    seconds = predicted.get("seconds")
    if seconds is not None:
        return max(0.0, float(seconds) - elapsed_s)
    return None


def _pace(clock: StageClock, predicted: dict) -> float:
    """Seconds per step from here on. The first step also pays one-time work — a compile of a new shape
    in speed mode (minutes), CUDA's first kernel loads — so it is the pace only when nothing else is known."""
    times = clock.completed_step_times
    if len(times) >= 2:
        return statistics.median(times[1:][-5:])
    s_per_step = predicted.get("s_per_step")
    return float(s_per_step) if s_per_step is not None else times[0]
