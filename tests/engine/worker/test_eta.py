"""The ETA: the prediction before the first step, this job's own step times after, smoothed into readings a person
can plan with; replayed over recorded step-time traces (steady, a compile in step 1, a load spike, an expert switch,
a long decode)."""

from __future__ import annotations

from engine.worker.clock import StageClock
from engine.worker.eta import EtaSmoother, JobTrace, estimate, remaining_seconds


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


# -- recorded step-time traces, replayed with a reading every second ---------------------------------------------


def replay(step_times: list[float], decode_s: float, predicted: dict, *, experts: list[str] | None = None,
           decoder_compile_s: float = 0.0) -> list[tuple[float, int, float, float, float]]:
    """(t, steps done, real time left, ETA, margin) at every second of a job whose steps took `step_times` and
    whose decode took `decode_s` (of which `decoder_compile_s` compiled the decoder, expected as much)."""
    experts = experts or ["unet"] * len(step_times)
    ends, t = [], 0.0
    for step in step_times:
        t += step
        ends.append(t)
    loop_end, end = t, t + decode_s
    smoother, readings, now = EtaSmoother(), [], 0.5
    while now < end:
        done = sum(1 for e in ends if e <= now)
        if done < len(step_times):
            open_s = now - (ends[done - 1] if done else 0.0)
            trace = JobTrace(len(step_times), step_times[:done], experts[:done], "denoising_loop", now, open_s, {}, now)
        else:
            trace = JobTrace(len(step_times), step_times, experts, "decode_video", now - loop_end, 0.0,
                             {"denoising_loop": loop_end}, now)
        reading = smoother.update(now, estimate(trace, predicted, decoder_compile_s=decoder_compile_s))
        readings.append((now, done, end - now, reading.eta_s, reading.margin_s))
        now += 1.0
    return readings


def largest_jump(readings: list[tuple], at_least_s: float = 5.0) -> float:
    """The largest factor between consecutive ETAs a second apart (both above `at_least_s`: below it the countdown
    itself halves the time left in a second or two)."""
    pairs = [(a[3], b[3]) for a, b in zip(readings, readings[1:]) if min(a[3], b[3]) >= at_least_s]
    return max(max(x / y, y / x) for x, y in pairs)


def test_steady_steps_give_the_real_time_left_from_the_third_step_with_a_small_margin():
    readings = replay([1.0] * 50, 3.0, {"seconds": 53.0, "s_per_step": 1.0, "decode_s": 3.0})
    for _t, done, real, eta, margin in readings:
        if done >= 3:
            assert abs(eta - real) <= 0.1 * real + 0.5
        if done >= 6:
            assert margin < 0.05 * real + 1.0
    assert readings[-1][3] < 1.0


def test_a_compile_in_the_first_step_does_not_set_the_pace():
    # the first step compiles for 30 s; the prediction did not know
    readings = replay([30.0] + [0.5] * 40, 2.0, {"seconds": 22.0, "s_per_step": 0.5, "decode_s": 2.0})
    after_third = [r for r in readings if r[1] >= 3]
    assert all(abs(eta - real) <= 0.1 * real + 0.5 for _, _, real, eta, _ in after_third)
    during = [r for r in readings if r[1] == 0]
    # while it overruns the ETA does not reach zero, and its margin grows to say it is unsure
    assert min(eta for *_, eta, _ in during) > 15.0 and during[-1][4] > 3 * during[0][4]
    assert largest_jump(readings) <= 2.0


def test_a_load_spike_of_a_few_steps_moves_the_eta_less_than_twofold_and_does_not_stick():
    steps = [1.0] * 10 + [4.0] * 3 + [1.0] * 20
    readings = replay(steps, 2.0, {"seconds": 35.0, "s_per_step": 1.0, "decode_s": 2.0})
    assert largest_jump(readings) <= 2.0
    after = [r for r in readings if r[1] >= 17]  # four fast steps after the spike
    assert all(abs(eta - real) <= 0.1 * real + 0.5 for _, _, real, eta, _ in after)
    spiking = [r for r in readings if 10 <= r[1] < 13]
    assert max(margin for *_, margin in spiking) > 2.0  # the spike widens the stated margin


def test_a_machine_whose_load_triples_for_good_never_jumps_twofold_between_readings():
    steps = [1.0] * 10 + [3.0] * 30
    readings = replay(steps, 2.0, {"seconds": 42.0, "s_per_step": 1.0, "decode_s": 2.0})
    assert largest_jump(readings) <= 2.0
    settled = [r for r in readings if r[1] >= 16 and r[2] > 20]  # the decode's share (a guess under load) aside
    assert all(abs(eta - real) <= 0.1 * real + 0.5 for _, _, real, eta, _ in settled)


def test_after_a_mixture_of_experts_hands_over_the_pace_is_the_new_experts():
    # high-noise expert at 2.0 s a step, then the low-noise one: its first step 8 s (first use), then 2.4 s
    experts = ["transformer"] * 20 + ["transformer_2"] * 20
    steps = [4.0] + [2.0] * 19 + [8.0] + [2.4] * 19
    readings = replay(steps, 5.0, {"seconds": 90.0, "s_per_step": 2.0, "decode_s": 5.0}, experts=experts)
    assert largest_jump(readings) <= 2.0
    for _t, done, real, eta, _ in readings:
        if 22 <= done < 40:  # one full step of the new expert after its first, while steps remain
            assert abs(eta - real) <= 0.1 * real + 0.5


def test_a_decode_far_longer_than_predicted_never_reads_zero_and_widens_its_margin():
    readings = replay([0.5] * 20, 20.0, {"seconds": 12.0, "s_per_step": 0.5, "decode_s": 2.0})
    decoding = [r for r in readings if r[1] == 20]
    assert all(eta > 0.0 for *_, eta, _ in decoding)
    assert decoding[-1][3] > decoding[3][3]  # it overran: the ETA rose with it
    assert decoding[-1][4] >= 5.0
    assert largest_jump(readings) <= 2.0


def test_a_pending_decoder_compile_is_in_the_eta_of_the_first_job_at_a_new_shape():
    # the first job at a new resolution: after the steps, the VAE decoder compiles (17 s), then decodes (2 s)
    readings = replay([0.5] * 50, 19.0, {"seconds": 27.0, "s_per_step": 0.5, "decode_s": 2.0}, decoder_compile_s=17.0)
    for _t, done, real, eta, _ in readings:
        if done >= 3:
            assert abs(eta - real) <= 0.1 * real + 0.5
    without = replay([0.5] * 50, 19.0, {"seconds": 27.0, "s_per_step": 0.5, "decode_s": 2.0})
    assert without[10][3] < 0.7 * without[10][2]  # what it read before: the compile left out


def test_the_prediction_stated_error_is_the_margin_before_the_first_step():
    trace = JobTrace(50, stage="text_encoding", stage_elapsed_s=0.1, elapsed_s=1.0)
    reading = estimate(trace, {"seconds": 100.0, "s_per_step": 1.8, "decode_s": 10.0, "expected_error": 0.12})
    assert abs(reading.eta_s - 99.0) < 1e-9 and abs(reading.margin_s - 12.0) < 1e-9


def test_the_worker_publishes_the_eta_with_its_margin_and_the_decoders_compile_once_the_denoiser_compiled():
    from types import SimpleNamespace

    from engine.queue.models import Job, JobParams
    from engine.speed.mode import AppliedSpeed, SpeedParts
    from engine.worker.worker import Heartbeat

    class Forward:  # a precompiled module's forward, as engine.speed.precompile leaves it
        level, compiling, compile_seconds, last_event = "precompiled", False, 0.0, {}

    denoiser, decoder = Forward(), Forward()

    applied = AppliedSpeed(SpeedParts(compile=True), SimpleNamespace(forward=denoiser), SimpleNamespace(forward=decoder))
    worker = SimpleNamespace(cache=SimpleNamespace(speed=applied), last_stages={}, decoder_compile_s=17.0,
                             device=SimpleNamespace(index=None), settings=SimpleNamespace(engine=SimpleNamespace(watchdog=False)))
    job = Job("j", "running", JobParams(model="tiny", steps=10), "/in.png",
              predicted={"seconds": 12.0, "s_per_step": 1.0, "decode_s": 2.0})
    beat = Heartbeat(worker, job, _clock(4, 10, 1.0))
    assert beat.decoder_compile_in_job_s() == 0.0  # nothing compiled in this job: the decoder's shape is known
    denoiser.compile_seconds = 150.0  # the denoiser compiled a new shape in step 1
    assert beat.decoder_compile_in_job_s() == 17.0
    progress = beat.progress()
    assert abs(progress.eta_s - (6 * 1.0 + 2.0 + 17.0)) < 1e-6 and progress.eta_margin_s > 0
    decoder.compile_seconds = 15.0  # compiled: as measured from then on
    assert beat.decoder_compile_in_job_s() == 15.0


def test_while_the_worker_starts_a_job_the_whole_job_is_still_to_come():
    trace = JobTrace(50, stage=None, elapsed_s=6.0)  # six seconds of imports on a loaded machine
    reading = estimate(trace, {"seconds": 10.0}, {"model_load": 2.0, "export_video": 0.5})
    assert reading.eta_s == 12.5


def test_before_the_first_step_the_prediction_counts_down_from_the_pipeline_calls_start():
    # 8 s of start-up and loading on a loaded machine, then 1 s into the pipeline call (the encoders)
    trace = JobTrace(50, stage="image_encoding", stages={"model_load": 3.0}, elapsed_s=9.0, pipeline_elapsed_s=1.0)
    assert estimate(trace, {"seconds": 20.0}).eta_s == 19.0
