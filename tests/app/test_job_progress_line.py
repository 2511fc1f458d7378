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


GIB = 2**30


def queued_job(predicted: dict) -> Job:
    params = JobParams(model="svd", prompt="", height=576, width=1024, frames=14, steps=25, guidance=3.0,
                       seed=0, fps=7, decode_chunk_size=14)
    return Job(id="q", state="queued", params=params, input_image="x.png", predicted=predicted,
               created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_a_queued_job_too_large_for_every_serving_gpu_says_what_it_waits_for():
    _, line = progress_line(queued_job({"peak_reserved_bytes": 40 * GIB}), largest_gpu_bytes=23 * GIB)
    assert "waiting for a GPU that holds 40.0 GiB" in line and "up to 23.0 GiB" in line


def test_a_queued_job_that_fits_or_was_forced_just_waits_for_a_worker():
    for predicted in ({"peak_reserved_bytes": 20 * GIB}, {"peak_reserved_bytes": 40 * GIB, "forced": True}, {}):
        _, line = progress_line(queued_job(predicted), largest_gpu_bytes=23 * GIB)
        assert line.endswith("waiting for an engine worker"), line


def test_the_queue_table_shows_why_a_waiting_job_waits():
    from app.views.queue_table import _table

    table = _table([], [queued_job({"peak_reserved_bytes": 40 * GIB}), queued_job({})], [], largest_gpu_bytes=23 * GIB)
    assert "waiting for a GPU that holds 40.0 GiB" in table["status"][0]
    assert table["status"][1].endswith("waiting for an engine worker")
