"""The ETA: the prediction before the first step, this job's own step times after."""

from __future__ import annotations

from engine.worker.clock import StageClock
from engine.worker.eta import remaining_seconds


def _clock(steps_done: int, total: int, step_s: float, current: str = "denoising_loop") -> StageClock:
    clock = StageClock()
    clock.total_steps = total
    clock.step_times = [step_s] * steps_done
    clock.current = current
    return clock


def test_before_the_first_step_the_eta_is_the_prediction_minus_elapsed():
    assert remaining_seconds(_clock(0, 50, 0), 2.0, {"seconds": 12.0}) == 10.0


def test_without_a_prediction_or_a_step_there_is_no_eta():
    assert remaining_seconds(_clock(0, 50, 0), 2.0, {}) is None


def test_after_steps_the_eta_uses_this_jobs_step_times_plus_decode_export_and_scoring():
    eta = remaining_seconds(_clock(10, 50, 0.2), 5.0, {"decode_s": 0.4}, {"export_video": 0.7, "quality_scoring": 0.9})
    assert abs(eta - (40 * 0.2 + 0.4 + 0.7 + 0.9)) < 1e-9


def test_during_decode_only_what_follows_is_left():
    clock = _clock(50, 50, 0.2, current="decode_video")
    clock.stages["decode_video"] = 0.1
    assert abs(remaining_seconds(clock, 12.0, {"decode_s": 0.4}, {"export_video": 0.7}) - 1.0) < 1e-9


def test_a_slow_first_step_such_as_a_compile_does_not_set_the_pace():
    clock = _clock(3, 50, 0.2)
    clock.step_times[0] = 150.0
    assert abs(remaining_seconds(clock, 151.0, {"decode_s": 0.4}) - (47 * 0.2 + 0.4)) < 1e-9


def test_after_only_the_first_step_the_predicted_pace_is_used():
    clock = _clock(1, 50, 150.0)
    assert abs(remaining_seconds(clock, 151.0, {"decode_s": 0.4, "s_per_step": 0.2}) - (49 * 0.2 + 0.4)) < 1e-9


class _TwoCallsAStep:
    """A pipeline shaped like Wan's: classifier-free guidance as two denoiser calls, then the scheduler's step;
    each call takes `call_s` of a fake clock."""

    def __init__(self, call_s: float, now: list[float]) -> None:
        import torch

        self.now, self.call_s = now, call_s
        outer = self

        class Denoiser(torch.nn.Module):
            def forward(self, x):
                outer.now[0] += outer.call_s
                return x

        class Scheduler:
            def step(self):
                return None

        self.transformer = Denoiser()
        self.scheduler = Scheduler()

    def run_step(self, on_first_call_end) -> None:
        import torch

        self.transformer(torch.zeros(1))
        on_first_call_end()
        self.transformer(torch.zeros(1))
        self.scheduler.step()


def test_a_reading_between_the_two_calls_of_a_step_does_not_halve_the_pace(monkeypatch):
    import engine.worker.clock as clock_module

    now = [0.0]
    monkeypatch.setattr(clock_module.time, "perf_counter", lambda: now[0])
    pipe = _TwoCallsAStep(call_s=1.0, now=now)
    clock = StageClock()
    clock.install(pipe, denoisers=("transformer",), encoders={})
    readings = []
    with clock.pipeline_call(10):
        for _ in range(10):
            pipe.run_step(lambda: readings.append((now[0], remaining_seconds(clock, now[0], {"decode_s": 0.0}))))
    clock.remove()
    end = now[0]
    # from the third step on, the reading (taken half-way through a step) is the time really left
    for at, eta in readings[2:]:
        assert abs(eta - (end - at)) < 1e-6
