"""The stage clock: a job stopped in its denoising loop has no decode in its timeline."""

from __future__ import annotations

import pytest

from engine.worker.clock import JobCancelled, StageClock


class _Pipe:
    """A denoiser called once a step, then the VAE's decode, as a pipeline runs them."""

    def __init__(self) -> None:
        import torch

        class Denoiser(torch.nn.Module):
            def forward(self, x):
                return x

        class Vae:
            def encode(self, x):
                return x

            def decode(self, x):
                return x

        self.unet, self.vae = Denoiser(), Vae()

    def __call__(self, steps: int) -> None:
        import torch

        for _ in range(steps):
            self.unet(torch.zeros(1))
        self.vae.decode(None)


def run(clock: StageClock, steps: int) -> None:
    pipe = _Pipe()
    clock.install(pipe, denoiser="unet", encoders={})
    try:
        with clock.pipeline_call(steps):
            pipe(steps)
    finally:
        clock.remove()


def test_a_finished_call_times_its_loop_and_its_decode():
    clock = StageClock()
    run(clock, 3)
    assert {"denoising_loop", "decode_video"} <= set(clock.stages)


def test_a_job_cancelled_in_its_loop_lists_no_decode():
    reasons = iter([None] * 5)  # prepare_latents, the loop, its first steps; then a cancel
    clock = StageClock(should_cancel=lambda: next(reasons, "cancelled by user"))
    with pytest.raises(JobCancelled):
        run(clock, 5)
    assert "denoising_loop" in clock.stages and "decode_video" not in clock.stages
