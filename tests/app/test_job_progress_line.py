"""The running job's progress line: step, stage in words, elapsed, ETA."""

from __future__ import annotations

from datetime import datetime, timezone

from app.views.job_panel import progress_line
from engine.queue.models import COMPILING_DECODER_STAGE, COMPILING_STAGE, Job, JobParams, Progress


def running_job(stage: str) -> Job:
    params = JobParams(model="i2vgen-xl", prompt="p", height=512, width=512, frames=16, steps=50, guidance=9.0,
                       seed=0, fps=16, decode_chunk_size=1)
    return Job(id="j", state="running", params=params, input_image="x.png",
               started_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
               progress=Progress(stage=stage, step=0, total_steps=50, eta_s=None, elapsed_s=75.0))


def test_a_compiling_job_says_it_is_compiling_and_that_it_happens_once():
    fraction, line = progress_line(running_job(COMPILING_STAGE))
    assert fraction == 0.0
    assert "compiling the model for this resolution" in line and "once per machine" in line
    assert COMPILING_STAGE not in line


def test_a_job_compiling_its_vae_decoder_says_so_and_that_it_takes_seconds():
    _, line = progress_line(running_job(COMPILING_DECODER_STAGE))
    assert "compiling the VAE decoder" in line and "15–30 s" in line
    assert COMPILING_DECODER_STAGE not in line


def test_other_stages_are_shown_by_their_name():
    assert "denoising_loop" in progress_line(running_job("denoising_loop"))[1]
