"""The stage clock times the steps by marks in the device's queue, read a step late, so that timing a step never
leaves the GPU idle; around the loop it still synchronises (a few times a job)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from engine.pipelines.clock import HostMarks, StageClock


class QueueMarks:
    """A device queue in miniature: each mark is stamped with the device time at which the work before it is done;
    `seconds` records which marks the host waited for."""

    def __init__(self) -> None:
        self.device_time = 0.0
        self.made: list[float] = []
        self.waited: list[int] = []

    def run(self, seconds: float) -> None:  # work queued on the device
        self.device_time += seconds

    def mark(self) -> int:
        self.made.append(self.device_time)
        return len(self.made) - 1

    def seconds(self, start: int, end: int) -> float:
        self.waited.append(end)
        return self.made[end] - self.made[start]




def run_loop(step_s: list[float], scheduler_s: float = 0.0):
    marks = QueueMarks()
    seen = []
    clock = StageClock(marks=marks, on_progress=lambda c: seen.append((len(marks.made), len(c.step_times),
                                                                        list(marks.waited))))
    denoiser = torch.nn.Identity()
    pipe = SimpleNamespace(unet=denoiser)
    # Queue each step's work inside the forward, so the end mark comes after it.
    denoiser.register_forward_hook(lambda *_: marks.run(step_s[len(marks.made) // 2]))
    clock.install(pipe, denoiser="unet", encoders={})
    with clock.pipeline_call(len(step_s)):
        for _ in step_s:
            denoiser(torch.zeros(1))
            marks.run(scheduler_s)  # guidance and the scheduler's update, between the steps
        marks.run(0.5)  # the decode
    clock.remove()
    return clock, marks, seen


def test_each_step_is_its_full_iteration_and_the_last_ends_with_the_denoiser():
    clock, _, _ = run_loop([1.0, 2.0, 3.0], scheduler_s=0.25)
    assert clock.step_times == [1.25, 2.25, 3.0]


def test_timing_a_step_never_waits_for_the_step_being_queued():
    clock, marks, seen = run_loop([1.0, 2.0, 3.0, 4.0])
    # At the end of step k (marks 2k: its start, 2k+1: its end) only earlier steps are measured, by waiting for
    # step k's start at the latest: its own work stays queued on the GPU.
    step_ends = [(measured, waited) for made, measured, waited in seen if made and made % 2 == 0]
    assert len(step_ends) == 4
    for k, (measured, waited) in enumerate(step_ends):
        assert measured == k
        assert all(mark <= 2 * k for mark in waited)


def test_the_stages_still_partition_the_call():
    clock, _, _ = run_loop([1.0, 2.0], scheduler_s=0.5)
    assert clock.stages["denoising_loop"] == 1.0 + 0.5 + 2.0
    assert clock.stages["decode_video"] == 0.5 + 0.5  # the scheduler's last update, then the decode
    assert clock.stages["prepare_latents"] >= 0.0


def test_on_the_host_clock_a_step_is_timed_as_before():
    synced = []
    clock = StageClock(marks=HostMarks(lambda: synced.append(1)))
    denoiser = torch.nn.Identity()
    clock.install(SimpleNamespace(unet=denoiser), denoiser="unet", encoders={})
    with clock.pipeline_call(3):
        for _ in range(3):
            denoiser(torch.zeros(1))
    clock.remove()
    assert len(clock.step_times) == 3 and all(t >= 0 for t in clock.step_times)
    assert len(synced) == 2 * 3 + 1  # a synchronisation per mark: how steps were timed before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_event_marks_time_the_steps_as_synchronising_does():
    from engine.pipelines.clock import step_marks

    a = torch.randn(4096, 4096, device="cuda", dtype=torch.float16)
    denoiser = torch.nn.Identity()
    denoiser.register_forward_hook(lambda *_: [a @ a for _ in range(20)] and None)  # ~2-5 ms of work a step

    def step_times(marks) -> list[float]:
        clock = StageClock(sync=torch.cuda.synchronize, marks=marks)
        clock.install(SimpleNamespace(unet=denoiser), denoiser="unet", encoders={})
        with clock.pipeline_call(8):
            for _ in range(8):
                denoiser(a)
        clock.remove()
        return clock.step_times

    step_times(step_marks("cuda"))  # warm-up
    events = sorted(step_times(step_marks("cuda")))[1:-1]
    synced = sorted(step_times(HostMarks(torch.cuda.synchronize)))[1:-1]
    assert abs(sum(events) - sum(synced)) / sum(synced) < 0.15
