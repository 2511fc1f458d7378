"""Every pipeline family runs through the engine's runner with its stages timed (tiny models, in-process)."""

from __future__ import annotations

import pytest

from config import load_settings
from engine.intake.validation import check_params
from engine.queue.models import Job
from engine.worker.clock import StageClock
from engine.worker.runner import PipelineCache, run_job


@pytest.mark.parametrize("model, encoders", [
    ("tiny-svd", {"image_encoding"}),
    ("tiny-ltx", {"text_encoding", "image_encoding"}),
])
def test_each_family_runs_with_every_stage_timed(model, encoders, data_dir, png_file, tmp_path):
    settings = load_settings(quality={"enabled": False})
    params = check_params({"model": model, "prompt": "a boat drifting", "steps": 2})
    job = Job(id="0" * 32, state="running", params=params, input_image=str(png_file))
    clock = StageClock()
    output = run_job(job, cache=PipelineCache(settings, "cpu", None), clock=clock, job_dir=tmp_path, settings=settings)
    assert encoders <= set(clock.stages)
    assert {"model_load", "image_preprocess", "prepare_latents", "denoising_loop", "decode_video", "export_video"} <= set(clock.stages)
    assert len(clock.step_times) == 2
    assert output.smoke_test and output.video_path.stat().st_size > 0


def test_a_job_records_the_seconds_it_spent_compiling_and_the_next_job_at_its_shape_none(data_dir, png_file, tmp_path):
    # Speed mode is GPU-only in the engine; here the tiny DiT is compiled on the CPU the same way, by hand.
    from engine.registry import get_model
    from engine.speed.mode import SpeedParts, apply_speed_mode
    from engine.worker.run_record import build_run_record

    settings = load_settings(quality={"enabled": False})
    params = check_params({"model": "tiny-ltx", "prompt": "a boat drifting", "steps": 2})
    cache = PipelineCache(settings, "cpu", None)
    pipe = cache.get(get_model("tiny-ltx"), "none")
    cache.speed = apply_speed_mode(pipe, denoiser=get_model("tiny-ltx").denoiser, parts=SpeedParts(compile=True, precompile=True),
                                   cache_dir=tmp_path / "cache")

    def job_output(n: int):
        job = Job(id=f"{n}" * 32, state="running", params=params, input_image=str(png_file))
        output = run_job(job, cache=cache, clock=StageClock(), job_dir=tmp_path / str(n), settings=settings)
        return job, output

    job, first = job_output(1)
    _, second = job_output(2)
    assert first.compile_s > 1.0
    assert second.compile_s == 0.0
    assert build_run_record(job, settings, StageClock(), first, device_name="cpu").compile_s == first.compile_s


def test_without_speed_mode_a_job_records_no_compile_time(data_dir, png_file, tmp_path):
    settings = load_settings(quality={"enabled": False})
    params = check_params({"model": "tiny", "prompt": "a boat drifting", "steps": 2})
    job = Job(id="0" * 32, state="running", params=params, input_image=str(png_file))
    output = run_job(job, cache=PipelineCache(settings, "cpu", None), clock=StageClock(), job_dir=tmp_path, settings=settings)
    assert output.compile_s is None
